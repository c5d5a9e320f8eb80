"""`Idempotency-Key`: one job per org, key and request, even for concurrent requests."""

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from heimdex_api.core.errors import Conflict, Unprocessable
from heimdex_api.models import IdempotencyKey
from heimdex_pipeline.catalog.db import session_scope

MAX_KEY_LENGTH = 255
_POLL_S = 0.1


def check_key(key: str) -> str:
    """The key if it is 1..255 printable ASCII characters; 422 otherwise."""
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all(32 < ord(c) < 127 for c in key):
        raise Unprocessable(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
                            code="invalid_idempotency_key")
    return key


def request_fingerprint(endpoint: str, body: dict[str, Any]) -> str:
    """SHA-256 of the endpoint and the canonical JSON of the body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{endpoint}\n{canonical}".encode()).hexdigest()


def _claim(url: str, org_id: str, key: str, endpoint: str, fingerprint: str) -> IdempotencyKey | None:
    """Insert the key's placeholder row and answer None, or answer the row already there."""
    with session_scope(url) as session:
        row = session.get(IdempotencyKey, (org_id, key))
        if row is not None:
            return row
    try:
        with session_scope(url) as session:
            session.add(IdempotencyKey(org_id=org_id, key=key, endpoint=endpoint, fingerprint=fingerprint))
        return None
    except IntegrityError:
        # Another request inserted it between our read and our insert: read it next time round.
        with session_scope(url) as session:
            return session.get(IdempotencyKey, (org_id, key))


def once(url: str, org_id: str, key: str, endpoint: str, body: dict[str, Any],
         start: Callable[[], dict[str, Any]], wait_s: float) -> dict[str, Any]:
    """Answer `start()`'s response the first time the key is used, and that same response after.

    The same key with another endpoint or body is a 409 `idempotency_conflict`. A request that
    finds the key claimed but unanswered waits for the first one (up to `wait_s`).
    """
    fingerprint = request_fingerprint(endpoint, body)
    deadline = time.monotonic() + wait_s
    while (row := _claim(url, org_id, key, endpoint, fingerprint)) is not None:
        if row.fingerprint != fingerprint:
            raise Conflict("this Idempotency-Key was used for another request", code="idempotency_conflict")
        if row.response is not None:
            return row.response
        if time.monotonic() > deadline:
            raise Conflict("a request with this Idempotency-Key is still running", code="idempotency_in_progress")
        time.sleep(_POLL_S)
    try:
        response = start()
    except BaseException:
        # Nothing was started: free the key so that a retry may start it.
        with session_scope(url) as session:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.org_id == org_id, IdempotencyKey.key == key))
        raise
    with session_scope(url) as session:
        session.execute(update(IdempotencyKey)
                        .where(IdempotencyKey.org_id == org_id, IdempotencyKey.key == key)
                        .values(job_id=response.get("job_id"), response=response))
    return response

