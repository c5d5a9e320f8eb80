"""Webhook signatures: `Heimdex-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.

The timestamp is signed with the body, so a receiver that refuses old timestamps (5 minutes is
the usual tolerance) cannot be fed a captured request again later. While a rotated secret's
predecessor is still valid the header carries a `v1` for each, and a receiver accepts either.
"""

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from datetime import datetime

from heimdex_pipeline.catalog.models import as_utc, utcnow

SIGNATURE_HEADER = "Heimdex-Signature"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300


def new_secret() -> str:
    """A fresh signing secret: 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def previous_in_force(expires_at: datetime | None) -> bool:
    """Whether a rotated secret's predecessor, kept until `expires_at` (None: not kept), still signs."""
    return expires_at is not None and as_utc(expires_at) > utcnow()


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | Sequence[str], body: bytes, timestamp: int | None = None) -> str:
    """The `Heimdex-Signature` value of `body` sent at `timestamp` (now by default): one `v1` per secret,
    as while a rotated secret's predecessor still signs."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    keys = [secret] if isinstance(secret, str) else list(secret)
    return f"t={timestamp}," + ",".join(f"v1={_digest(key, timestamp, body)}" for key in keys)


def verify(secret: str, header: str, body: bytes, tolerance_s: float = DEFAULT_TOLERANCE_S,
           now: float | None = None) -> bool:
    """Whether `header` signs `body` with `secret`, at a time within `tolerance_s` of `now`."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body)
    # Several v1 values are allowed, as when a secret is being rolled over.
    return any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", []))
