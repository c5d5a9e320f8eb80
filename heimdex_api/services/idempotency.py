"""`Idempotency-Key`: one job per org, key and request, even for concurrent requests."""

import hashlib
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import Conflict, Unprocessable
from heimdex_api.models import IdempotencyKey
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import utcnow
from heimdex_pipeline.core.pauses import doubling_pauses

MAX_KEY_LENGTH = 255
# A request waiting for another with its key looks again after these pauses. Waiters mostly sit in the
# process that runs the awaited job (in immediate mode, the run itself): polling every 0.1 s, 47 of them
# made that run 6.6 times slower (30.3 s against 4.6 s), and past `idempotency_wait_s` on a busy machine.
_FIRST_POLL_S, _LONGEST_POLL_S = 0.05, 1.0
# Told whenever a request of this process answers or gives its key back: its waiters here look at once;
# those in other API processes find out at their next look.
_settled = threading.Condition()


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


def _claim(url: str, org_id: str, key: str, endpoint: str, fingerprint: str,
           lease_s: float) -> tuple[str | None, IdempotencyKey | None]:
    """Claim the key: answer our claim token, or the row of the request that holds or answered it.

    A claim left unanswered longer than the lease (its request died) is taken over by one
    atomic UPDATE, so that of two requests arriving after a crash only one takes it.
    """
    token, now = uuid4().hex, utcnow()
    claim = {"endpoint": endpoint, "fingerprint": fingerprint, "claim_token": token, "created_at": now}
    with session_scope(url) as session:
        row = session.get(IdempotencyKey, (org_id, key))
        if row is not None and row.response is None:
            taken = session.execute(update(IdempotencyKey).where(
                IdempotencyKey.org_id == org_id, IdempotencyKey.key == key, IdempotencyKey.response.is_(None),
                IdempotencyKey.created_at < now - timedelta(seconds=lease_s),
            ).values(**claim).execution_options(synchronize_session=False)).rowcount
            if taken == 1:
                return token, None
        if row is not None:
            return None, row
    try:
        with session_scope(url) as session:
            session.add(IdempotencyKey(org_id=org_id, key=key, **claim))
        return token, None
    except IntegrityError:
        # Another request inserted it between our read and our insert: read it next time round.
        return None, None


def once(settings: ApiSettings, org_id: str, key: str, endpoint: str, body: dict[str, Any],
         start: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Answer `start()`'s response the first time the key is used, and that same response after.

    The key is looked at before anything else, so a replay answers without reading the media
    again, and the same key with another endpoint or body is a 409 `idempotency_conflict`
    whatever that body holds. A request that finds the key claimed but unanswered waits for the
    first one (up to `HEIMDEX_IDEMPOTENCY_WAIT_S`), or takes the claim over once its lease is out.
    """
    url, fingerprint = settings.catalog_url, request_fingerprint(endpoint, body)
    deadline, pauses = time.monotonic() + settings.idempotency_wait_s, doubling_pauses(_FIRST_POLL_S, _LONGEST_POLL_S)
    while True:
        token, row = _claim(url, org_id, key, endpoint, fingerprint, settings.claim_lease_s)
        if token is not None:
            break
        if row is not None:
            if row.fingerprint != fingerprint:
                raise Conflict("this Idempotency-Key was used for another request", code="idempotency_conflict")
            if row.response is not None:
                return row.response
        if time.monotonic() > deadline:
            raise Conflict("a request with this Idempotency-Key is still running", code="idempotency_in_progress")
        if row is not None:
            with _settled:  # never past the deadline: the bound is `idempotency_wait_s`, not a pause more
                _settled.wait(min(next(pauses), max(0.0, deadline - time.monotonic())))
    ours = (IdempotencyKey.org_id == org_id, IdempotencyKey.key == key, IdempotencyKey.claim_token == token)
    try:
        response = start()
    except BaseException:
        # Nothing was started: free the key so that a retry may start it.
        with session_scope(url) as session:
            session.execute(delete(IdempotencyKey).where(*ours))
        _tell_waiters()
        raise
    with session_scope(url) as session:
        session.execute(update(IdempotencyKey).where(*ours).values(job_id=response.get("job_id"), response=response))
    _tell_waiters()
    return response


def _tell_waiters() -> None:
    """Wake this process's requests waiting for a key: one of them may be answered or free now."""
    with _settled:
        _settled.notify_all()


def forget_jobs(settings: ApiSettings, org_id: str, job_ids: list[str]) -> None:
    """Drop the org's keys that started one of `job_ids` (deleted jobs): a replay must not answer them."""
    if job_ids:
        with session_scope(settings.catalog_url) as session:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.org_id == org_id,
                                                         IdempotencyKey.job_id.in_(job_ids)))
