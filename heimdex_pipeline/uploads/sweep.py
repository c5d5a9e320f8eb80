"""The sweep of what abandoned API uploads leave: terminations that did not finish, and partial
state past its age (partial files on disk; `.tus/` objects and multipart uploads in a bucket).

An upload's partial state can be resumed only through its URLs, which expire
`HEIMDEX_UPLOAD_URL_TTL_S` after init; state last written longer ago than
`HEIMDEX_UPLOAD_SWEEP_AGE_S` (at least that TTL) belongs to no upload a client can still
finish, or to none at all (a request that died). Whole files are never swept: a committed or
committable upload keeps its file. Sweeping twice removes nothing the second time.
"""

from dataclasses import dataclass

from sqlalchemy import select

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Upload
from heimdex_pipeline.storage import ObjectStore
from heimdex_pipeline.storage.layout import UPLOADS
from heimdex_pipeline.uploads.lock import TERMINATING, Ending, end_upload


@dataclass(frozen=True)
class SweepReport:
    """What a sweep removed: uploads whose termination it finished, and pieces of partial state."""

    ended: int
    removed: int


def sweep_uploads(catalog_url: str, store: ObjectStore, before: float, lease_s: float) -> SweepReport:
    """Finish the terminations left undone (their request died, or answered busy), then remove the
    partial state under `uploads/` last written before `before` (POSIX seconds)."""
    with session_scope(catalog_url) as session:
        ending = list(session.scalars(select(Upload.upload_id).where(Upload.status == TERMINATING)))
    # wait_s=0: an upload whose lock is held (a termination at work) is left to it, or to the next sweep.
    ended = sum(end_upload(catalog_url, store, upload_id, lease_s, wait_s=0) is Ending.ENDED for upload_id in ending)
    return SweepReport(ended, store.sweep_partial_uploads(f"{UPLOADS}/", before))
