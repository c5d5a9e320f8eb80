"""Per-video claims in the catalog: a deletion and what may bring a video into being take turns.

A deletion of a video, and a commit or a job request that catalogues it, adds its partition and
launches its run, must never interleave: a run launched into a partition the deletion removes
fails (`Partition range … is not valid`) and leaves a video whose job failed. Each takes the
video's claim first, one row of `asset_claims`, and keeps it until it is done. The claim lives in
the catalog so that it holds across processes (several API workers, the daemon's sensor, an
operator's deletion) on SQLite and PostgreSQL alike: it is taken by one atomic upsert, and only
where nobody holds it or its holder's lease ran out. A holder renews its lease while it works,
so the lease ends only for a holder that died.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from uuid import uuid4

from sqlalchemy import delete, or_, update

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import AssetClaim, utcnow
from heimdex_pipeline.catalog.repository import insert_statement
from heimdex_pipeline.core.pauses import doubling_pauses

# Waits between two tries: short at first (most holders are done in a moment), then a poll.
_FIRST_RETRY_S, _LONGEST_RETRY_S = 0.02, 0.25


class AssetBusyError(Exception):
    """Another holds the video's claim for longer than the caller waits."""

    def __init__(self, asset_id: str, holder: str) -> None:
        super().__init__(f"{asset_id} is being deleted or brought in by another request ({holder.partition(':')[0]})")
        self.asset_id, self.holder = asset_id, holder


def new_holder(kind: str) -> str:
    """A holder's name: what it is (`delete`, `commit`, `job`, `upload_sensor`) and a token of this holding."""
    return f"{kind}:{uuid4().hex}"


def try_claim(catalog_url: str, asset_id: str, holder: str, lease_s: float) -> str | None:
    """Take the video's claim for `holder` if nobody else holds it (or its holder's lease ran out): None
    when taken (or held by `holder` already), else who holds it. One statement: racing callers cannot
    both take it."""
    now = utcnow()
    expires = now + timedelta(seconds=lease_s)
    with session_scope(catalog_url) as session:
        taken = session.execute(
            insert_statement(session, AssetClaim).values(asset_id=asset_id, holder=holder, expires_at=expires)
            .on_conflict_do_update(index_elements=[AssetClaim.asset_id],
                                   set_={"holder": holder, "expires_at": expires},
                                   where=or_(AssetClaim.expires_at < now, AssetClaim.holder == holder))
            .returning(AssetClaim.holder)).first()
        if taken is not None:
            return None
        current = session.get(AssetClaim, asset_id)
    return current.holder if current is not None else ""


def renew_claim(catalog_url: str, asset_id: str, holder: str, lease_s: float) -> bool:
    """Push the claim's lease on; False when `holder` no longer holds it."""
    with session_scope(catalog_url) as session:
        return session.execute(
            update(AssetClaim).where(AssetClaim.asset_id == asset_id, AssetClaim.holder == holder)
            .values(expires_at=utcnow() + timedelta(seconds=lease_s))).rowcount == 1


def release_claims(catalog_url: str, holder_prefix: str, asset_id: str | None = None) -> None:
    """Give back the claims whose holder starts with `holder_prefix` (of `asset_id` only, if given)."""
    query = delete(AssetClaim).where(AssetClaim.holder.startswith(holder_prefix, autoescape=True))
    if asset_id is not None:
        query = query.where(AssetClaim.asset_id == asset_id)
    with session_scope(catalog_url) as session:
        session.execute(query)


@contextmanager
def asset_claim(catalog_url: str, asset_id: str, kind: str, wait_s: float, lease_s: float) -> Iterator[str]:
    """Hold the video's claim for the block: wait for it up to `wait_s` (AssetBusyError after), renew it
    every third of `lease_s` while the block runs, give it back at the end. Yields the holder's name."""
    holder = new_holder(kind)
    deadline, pauses = time.monotonic() + wait_s, doubling_pauses(_FIRST_RETRY_S, _LONGEST_RETRY_S)
    while (current := try_claim(catalog_url, asset_id, holder, lease_s)) is not None:
        pause = next(pauses)
        if time.monotonic() + pause > deadline:
            raise AssetBusyError(asset_id, current)
        time.sleep(pause)
    done = threading.Event()

    def renew() -> None:
        while not done.wait(lease_s / 3):
            try:
                if not renew_claim(catalog_url, asset_id, holder, lease_s):
                    return
            except Exception:  # the database away a moment: the next renewal may pass, within the lease
                continue

    renewer = threading.Thread(target=renew, name=f"claim-{asset_id}", daemon=True)
    renewer.start()
    try:
        yield holder
    finally:
        done.set()
        renewer.join()
        release_claims(catalog_url, holder, asset_id)
