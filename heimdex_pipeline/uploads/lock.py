"""An API upload's write lock, and its termination: one request at a time writes or ends an upload's files.

The lock is a lease on the upload's catalog row (`lock_token`, `lock_until`), taken and renewed by
atomic UPDATEs, so it holds across every API process over one catalog. A writer (a PUT, a tus
PATCH) takes it on a `pending` upload and renews it while it writes; a renewal that finds the
upload ended (`terminating`, or gone) tells the writer to stop and forget its bytes. Ending an
upload marks it `terminating` first (no writer takes it from then on), waits for the writer in
flight to let go, takes the lock itself, removes the files, and deletes the row. A lock whose
holder died lapses after its lease.
"""

import time
from datetime import timedelta
from enum import Enum
from uuid import uuid4

from sqlalchemy import delete, or_, select, update

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Upload, utcnow
from heimdex_pipeline.storage import ObjectStore

PENDING, TERMINATING = "pending", "terminating"
# How often a waiting termination looks whether the writer has let go.
POLL_S = 0.1


def upload_key(upload: Upload) -> str:
    """The key of the upload's file: `uploads/<org>/<upload_id>/<source_name>`."""
    return f"{upload.prefix}{upload.source_name}"


def new_token() -> str:
    return uuid4().hex


def take_lock(catalog_url: str, upload_id: str, token: str, lease_s: float, status: str = PENDING) -> bool:
    """Take the upload's lock for `token` if the upload has `status` and no live lock; whether it was taken."""
    now = utcnow()
    with session_scope(catalog_url) as session:
        return session.execute(
            update(Upload).where(Upload.upload_id == upload_id, Upload.status == status,
                                 or_(Upload.lock_token.is_(None), Upload.lock_until < now))
            .values(lock_token=token, lock_until=now + timedelta(seconds=lease_s))).rowcount == 1


def renew_lock(catalog_url: str, upload_id: str, token: str, lease_s: float) -> bool:
    """Extend `token`'s lease; False once the upload was ended (or the lock lapsed and was taken): stop writing."""
    with session_scope(catalog_url) as session:
        return session.execute(
            update(Upload).where(Upload.upload_id == upload_id, Upload.lock_token == token,
                                 Upload.status != TERMINATING)
            .values(lock_until=utcnow() + timedelta(seconds=lease_s))).rowcount == 1


def release_lock(catalog_url: str, upload_id: str, token: str) -> None:
    """Let go of the lock (nothing happens unless `token` holds it)."""
    with session_scope(catalog_url) as session:
        session.execute(update(Upload).where(Upload.upload_id == upload_id, Upload.lock_token == token)
                        .values(lock_token=None, lock_until=None))


def remove_upload_files(store: ObjectStore, upload: Upload) -> None:
    """Remove everything the upload holds: its receiver's partial state (on S3 every multipart upload
    of its key too), its file, and whatever else is under its prefix."""
    # The receiver first: on S3 its hidden state names the multipart upload to abort.
    store.receiver(upload_key(upload), upload.content_length).terminate()
    for stored in list(store.list(upload.prefix)):
        store.delete(stored.key)


class Ending(Enum):
    """What `end_upload` did."""

    ENDED = "ended"          # the files are gone and the row with them
    GONE = "gone"            # there was no such upload
    COMMITTED = "committed"  # a commit has it: it is not ended
    BUSY = "busy"            # the lock stayed held past the wait: marked ended, finish it later


def end_upload(catalog_url: str, store: ObjectStore, upload_id: str, lease_s: float,
               wait_s: float | None = None) -> Ending:
    """End a pending upload (or finish ending one a crashed request left `terminating`).

    Blocks until the writer in flight, if any, has let go of the lock (it notices within its
    renewal period; a dead one's lease lapses), at most `wait_s` (a lease and a little by default),
    then removes the files under the lock and deletes the row.
    """
    with session_scope(catalog_url) as session:
        session.execute(update(Upload).where(Upload.upload_id == upload_id, Upload.status == PENDING)
                        .values(status=TERMINATING))
        status = session.scalar(select(Upload.status).where(Upload.upload_id == upload_id))
    if status is None:
        return Ending.GONE
    if status != TERMINATING:
        return Ending.COMMITTED
    token, deadline = new_token(), time.monotonic() + (lease_s + 2 if wait_s is None else wait_s)
    while not take_lock(catalog_url, upload_id, token, lease_s, status=TERMINATING):
        with session_scope(catalog_url) as session:
            if session.get(Upload, upload_id) is None:
                return Ending.ENDED  # another termination (a retry, the sweep) finished it
        if time.monotonic() > deadline:
            return Ending.BUSY
        time.sleep(POLL_S)
    try:
        with session_scope(catalog_url) as session:
            upload = session.get(Upload, upload_id)
            session.expunge(upload)
        remove_upload_files(store, upload)
        with session_scope(catalog_url) as session:
            session.execute(delete(Upload).where(Upload.upload_id == upload_id, Upload.lock_token == token))
    except BaseException:
        release_lock(catalog_url, upload_id, token)
        raise
    return Ending.ENDED
