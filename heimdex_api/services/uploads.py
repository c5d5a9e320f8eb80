"""The ingest endpoints: reserve an upload, commit it (identify, register, run), probe a file."""

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from dagster import DagsterInstance
from sqlalchemy import and_, delete, or_, select, update

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import Conflict, NotFound, Unprocessable
from heimdex_api.schemas import UPLOAD_ID_PATTERN, CommitRequest, InitRequest, SourceRequest
from heimdex_api.services import tus
from heimdex_api.services.assets import asset_status, video_turn
from heimdex_api.services.launchers import JOB_NAMES, JobLauncher, JobRequest, remove_partition, start_run
from heimdex_api.services.media import IdentifiedSource, identify_request
from heimdex_api.services.sources import check_source_name, source_key
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Source, Upload, Video
from heimdex_pipeline.catalog.repository import register_source
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.storage import PRESIGNED_PUT_HEADERS, InvalidKeyError, ObjectStore
from heimdex_pipeline.storage.layout import upload_prefix


def init_upload(settings: ApiSettings, store: ObjectStore, body: InitRequest, base_url: str) -> dict[str, Any]:
    """Reserve `uploads/<org>/<upload_id>/` (the sensor leaves it alone while pending), record it, and sign
    its upload URLs (`base_url`: the request's, unless HEIMDEX_PUBLIC_URL says otherwise)."""
    name = check_source_name(body.source_name)
    if body.content_length > settings.max_upload_bytes:
        # 422, not 413: the request itself is small, its field is above the maximum the document states.
        raise Unprocessable(f"content_length exceeds {settings.max_upload_bytes} bytes", code="upload_too_large")
    upload_id = f"up_{uuid4().hex}"
    prefix = upload_prefix(body.org_id, upload_id)
    # Recorded first: the sensor leaves the prefix alone from the moment anything can be placed there.
    with session_scope(settings.catalog_url) as session:
        session.add(Upload(upload_id=upload_id, org_id=body.org_id, source_name=name,
                           content_length=body.content_length, content_type=body.content_type,
                           prefix=prefix, status="pending"))
    try:
        store.prepare_prefix(prefix)
    except BaseException:
        with session_scope(settings.catalog_url) as session:
            session.execute(delete(Upload).where(Upload.upload_id == upload_id))
        raise
    get_logger("api", org_id=body.org_id, upload_id=upload_id).info("ingest.init", content_length=body.content_length)
    key = prefix + name
    urls = tus.sign_upload(settings, base_url, body.org_id, upload_id)
    # S3: the bucket's own presigned PUT; local: the API's signed PUT (the store has no URLs of its own).
    upload_url = store.presigned_put(key, settings.upload_url_ttl_s, body.content_type, body.content_length)
    headers = {"Content-Type": body.content_type} if body.content_type else {}
    if upload_url:  # signed into the store's URL: the PUT must send them (the API's own PUT needs none)
        headers.update(PRESIGNED_PUT_HEADERS)
    return {"upload_id": upload_id, "presigned": {
        "asset_uri": store.uri(key),
        "upload_url": upload_url or urls.upload_url,
        "upload_headers": headers,
        "resumable_url": urls.resumable_url,
        "expires_at": datetime.fromtimestamp(urls.expires, UTC).isoformat().replace("+00:00", "Z"),
    }}


def _claim(settings: ApiSettings, upload: Upload) -> datetime:
    """Take the upload for this commit (pending, or held by a commit that died longer than the lease ago).

    One atomic UPDATE decides between racing commits: the others answer 409 before touching the file.
    """
    now = datetime.now(UTC)
    with session_scope(settings.catalog_url) as session:
        claimed = session.execute(
            update(Upload).where(Upload.upload_id == upload.upload_id, or_(
                Upload.status == "pending",
                and_(Upload.status == "committing",
                     Upload.committed_at < now - timedelta(seconds=settings.claim_lease_s))))
            .values(status="committing", committed_at=now)
        ).rowcount
        status = session.scalar(select(Upload.status).where(Upload.upload_id == upload.upload_id))
    if status in (None, "terminating"):  # ended (tus DELETE) since it was read
        raise NotFound("no such upload", code="upload_not_found")
    if claimed != 1:
        raise Conflict({"message": "the upload is already committed", "asset_id": upload.asset_id},
                       code="upload_already_committed")
    return now


def _release(settings: ApiSettings, upload_id: str, claimed_at: datetime) -> None:
    """Give the upload back (pending) after a commit that failed before registering it, unless another took it."""
    with session_scope(settings.catalog_url) as session:
        session.execute(update(Upload).where(Upload.upload_id == upload_id, Upload.status == "committing",
                                             Upload.committed_at == claimed_at)
                        .values(status="pending", committed_at=None))


def _register(settings: ApiSettings, store: ObjectStore, upload_id: str, claimed_at: datetime,
              source: IdentifiedSource) -> bool:
    """In one transaction: catalogue the file and mark the claimed upload committed; answer whether the video is new."""
    with session_scope(settings.catalog_url) as session:
        _, created = register_source(session, store, source.file, source.asset_id, source.content, origin="api")
        committed = session.execute(
            update(Upload).where(Upload.upload_id == upload_id, Upload.status == "committing",
                                 Upload.committed_at == claimed_at)
            .values(status="committed", asset_id=source.asset_id, committed_at=datetime.now(UTC))
        ).rowcount
        if committed != 1:
            # Our claim outlived its lease and another commit took the upload: raising rolls our writes back.
            raise Conflict("the upload is already committed", code="upload_already_committed")
    return created


def _unregister(settings: ApiSettings, upload_id: str, source: IdentifiedSource) -> None:
    """Undo `_register` after the run could not be started, so that a retry starts afresh."""
    with session_scope(settings.catalog_url) as session:
        session.execute(update(Upload).where(Upload.upload_id == upload_id)
                        .values(status="pending", asset_id=None, committed_at=None))
        session.execute(delete(Source).where(Source.key == source.file.key))
        session.execute(delete(Video).where(Video.asset_id == source.asset_id))


def _check_complete(store: ObjectStore, upload: Upload) -> None:
    """409 `upload_incomplete` when the upload holds some of its bytes but not all: kept by its URLs (a
    PUT or PATCH that ended short), or a shorter object at its key (a copy or a bucket PUT that
    stopped short)."""
    try:
        receiver = tus.upload_receiver(store, upload)
    except InvalidKeyError:
        return  # a folder tampered with on disk: reading the source answers for it (422 invalid_source_uri)
    if not receiver.is_complete():
        offset = receiver.offset()
        if not offset and (found := store.stat(receiver.key)) is not None and found.size_bytes < upload.content_length:
            offset = found.size_bytes
        if offset:
            raise Conflict({"message": f"the upload holds {offset} of its {upload.content_length} bytes: finish "
                                       "it (PUT again, or resume at the tus URL), then commit", "offset": offset},
                           code="upload_incomplete")


def commit_upload(settings: ApiSettings, store: ObjectStore, instance: DagsterInstance, launcher: JobLauncher,
                  body: CommitRequest) -> dict[str, Any]:
    """Claim the upload, identify its file, register it and start its ingest unless the content is known."""
    log = get_logger("api", org_id=body.org_id, upload_id=body.upload_id)
    with session_scope(settings.catalog_url) as session:
        upload = session.get(Upload, body.upload_id) if UPLOAD_ID_PATTERN.match(body.upload_id) else None
    if upload is None or upload.org_id != body.org_id or upload.status == "terminating":
        raise NotFound("no such upload", code="upload_not_found")
    claimed_at = _claim(settings, upload)
    turn = ExitStack()
    try:
        _check_complete(store, upload)
        key = source_key(store, body.source_uri, body.org_id, upload.prefix)
        source = identify_request(settings, store, body.org_id, key, body.weak_threshold_bytes,
                                  expected_size=upload.content_length)
        # Cataloguing, the partition and the launch hold the video's turn: a deletion of the same
        # content comes wholly before (the video is then new) or after (it finds the run).
        turn.enter_context(video_turn(settings, source.asset_id, "commit"))
        created = _register(settings, store, upload.upload_id, claimed_at, source)
    except BaseException:
        turn.close()
        _release(settings, upload.upload_id, claimed_at)
        raise
    with turn:
        log = log.bind(asset_id=source.asset_id)
        log.info("ingest.commit", created=created, hash_quality=source.content.quality)
        answer = {"asset_id": source.asset_id, "source_uri": store.uri(key), "job_id": None}
        if created:
            try:
                answer["job_id"] = start_run(settings, instance, launcher,
                                             JobRequest("ingest", source.asset_id, body.org_id, JOB_NAMES["ingest"]))
            except BaseException:
                _unregister(settings, upload.upload_id, source)
                remove_partition(instance, source.asset_id)
                raise
            log.info("ingest.run_started", job_id=answer["job_id"])
    return {**answer, "status": asset_status(store, body.org_id, source.asset_id)}


def probe_source(settings: ApiSettings, store: ObjectStore, body: SourceRequest) -> dict[str, Any]:
    """The probe document of a file in the org's uploads, with its hash and asset id; changes nothing."""
    key = source_key(store, body.source_uri, body.org_id)
    source = identify_request(settings, store, body.org_id, key, body.weak_threshold_bytes)
    return {**source.probe, "asset_id": source.asset_id, "hash": source.content.value,
            "hash_quality": source.content.quality, "size_bytes": source.content.size_bytes}
