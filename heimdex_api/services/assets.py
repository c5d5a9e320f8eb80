"""The asset endpoints: start a sidecar or thumbnails job on a video, read a video and its sidecar."""

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster import DagsterInstance
from sqlalchemy.orm import Session

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import Conflict, NotFound, Unprocessable
from heimdex_api.schemas import SidecarRequest, SourceRequest, ThumbnailsRequest
from heimdex_api.services import idempotency
from heimdex_api.services.checks import check_summary
from heimdex_api.services.job_state import latest_run_status
from heimdex_api.services.launchers import JOB_NAMES, JobLauncher, JobRequest, start_run
from heimdex_api.services.media import IdentifiedSource, identify_request
from heimdex_api.services.scene_lists import scene_list_refs
from heimdex_api.services.qc import qc_summary
from heimdex_api.services.sources import source_key
from heimdex_api.services.storyboards import storyboard_ref
from heimdex_api.services.urls import DownloadUrls
from heimdex_pipeline.admin.delete import Deletion, VideoBusyError, delete_video
from heimdex_pipeline.catalog.claims import AssetBusyError, asset_claim
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Video
from heimdex_pipeline.catalog.repository import get_video, register_source
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.media.fingerprint import ASSET_ID_PATTERN
from heimdex_pipeline.storage import ObjectNotFoundError, ObjectStore
from heimdex_pipeline.storage.layout import sidecar_key, sidecar_storage_key

# What an asset without a sidecar says, by the state of its newest run.
_PENDING_STATUS = {"running": "processing", "failed": "failed", "canceled": "failed"}


def find_video(session: Session, asset_id: str, org_id: str) -> Video:
    """The org's video; 404 for unknown ids and other orgs' videos alike."""
    video = get_video(session, asset_id) if ASSET_ID_PATTERN.match(asset_id) else None
    if video is None or video.org_id != org_id:
        raise NotFound("no such asset", code="asset_not_found")
    return video


def asset_status(store: ObjectStore, org_id: str, asset_id: str) -> str:
    """`ready` once the video's sidecar exists, else `queued`."""
    return "ready" if store.stat(sidecar_key(org_id, asset_id)) is not None else "queued"


def thumbnail_config(body: ThumbnailsRequest) -> dict[str, Any]:
    """The run config of the `thumbnails` asset for the request's policy (unset fields keep defaults)."""
    policy = body.policy.model_dump(exclude_none=True) if body.policy else {}
    return {"ops": {"thumbnails": {"config": policy}}} if policy else {}


def sidecar_config(body: SidecarRequest) -> dict[str, Any]:
    """The run config of the `scene_sidecar` asset for the request's detector (none: the deployment's)."""
    if body.detector is None:
        return {}
    # Nulls left out (they are the defaults, as `kernel_size`): Dagster's config refuses a null in a map.
    return {"ops": {"scene_sidecar": {"config": {"detector": body.detector.model_dump(mode="json", exclude_none=True)}}}}


def _identify(settings: ApiSettings, store: ObjectStore, body: SourceRequest) -> IdentifiedSource:
    key = source_key(store, body.source_uri, body.org_id)
    return identify_request(settings, store, body.org_id, key, body.weak_threshold_bytes)


def prepare_job(settings: ApiSettings, store: ObjectStore, asset_id: str, body: SourceRequest,
                job_type: str) -> JobRequest:
    """Check that `source_uri` is the asset's content in the org's uploads, and say which run to start.

    An asset not catalogued yet whose content `source_uri` holds is registered by the start of
    its job (as a commit would). Any other id the org does not hold, unknown or another org's,
    answers the same 404 after the same work, whatever `source_uri` is, so that the answer and
    its time tell nothing about other orgs' files.
    """
    if not ASSET_ID_PATTERN.match(asset_id):
        raise NotFound("no such asset", code="asset_not_found")
    with session_scope(settings.catalog_url) as session:
        video = get_video(session, asset_id)
    if video is not None and video.org_id == body.org_id:
        source = _identify(settings, store, body)
        if source.asset_id != asset_id:
            raise Unprocessable({"message": "source_uri holds other content than this asset",
                                 "asset_id": source.asset_id}, code="source_mismatch")
    else:
        try:
            source = _identify(settings, store, body)
        except (NotFound, Unprocessable):
            source = None
        # An asset id names one org's content: another org's video can never match the caller's file.
        if source is None or source.asset_id != asset_id or video is not None:
            raise NotFound("no such asset", code="asset_not_found")
    with session_scope(settings.catalog_url) as session:
        register_source(session, store, source.file, asset_id, source.content, origin="api")
    job_name, run_config = JOB_NAMES[job_type], {}
    if isinstance(body, SidecarRequest):
        run_config = sidecar_config(body)
    if isinstance(body, ThumbnailsRequest):
        run_config = thumbnail_config(body)
        if asset_status(store, body.org_id, asset_id) != "ready":
            # The thumbnails need the scenes: without a sidecar, run the whole ingest with this policy.
            job_name = JOB_NAMES["ingest"]
    return JobRequest(job_type=job_type, asset_id=asset_id, org_id=body.org_id, job_name=job_name,
                      run_config=run_config)


def start_job(settings: ApiSettings, instance: DagsterInstance, launcher: JobLauncher,
              request: JobRequest) -> dict[str, Any]:
    """Start the run and answer the contract's 202 body."""
    job_id = start_run(settings, instance, launcher, request)
    get_logger("api", org_id=request.org_id, asset_id=request.asset_id, job_id=job_id).info(
        "job.run_started", job_type=request.job_type, job_name=request.job_name)
    return {"job_id": job_id, "location": f"/v1/jobs/{job_id}"}


def _sidecar_bytes(store: ObjectStore, video: Video) -> bytes | None:
    try:
        return store.read_bytes(sidecar_key(video.org_id, video.asset_id))
    except ObjectNotFoundError:
        return None


def asset_view(session: Session, instance: DagsterInstance, store: ObjectStore, urls: DownloadUrls,
               video: Video) -> dict[str, Any]:
    """The contract's asset answer: `ready` once the sidecar exists, else the state of its newest run; the
    sidecar, each thumbnail, the storyboard's sprite and the QC document with the `url` of its bytes; what the
    video's asset checks say."""
    raw = _sidecar_bytes(store, video)
    sidecar, thumbnails = None, []
    if raw is not None:
        document = json.loads(raw)
        storage_key = sidecar_storage_key(video.asset_id)
        sidecar = {"schema_version": document["schema_version"], "storage_key": storage_key,
                   "etag": hashlib.sha256(raw).hexdigest(), "url": urls.url(video.org_id, storage_key)}
        thumbnails = urls.thumbnails(video.org_id, document.get("thumbnails", []))
        status = "ready"
    else:
        run_status = latest_run_status(instance, video.asset_id)
        status = _PENDING_STATUS.get(run_status or "", "queued")
    return {"asset_id": video.asset_id, "org_id": video.org_id, "source_uri": store.uri(video.source_key),
            "size_bytes": video.size_bytes, "hash": video.hash, "hash_quality": video.hash_quality,
            "status": status, "sidecar": sidecar, "thumbnails": thumbnails,
            "storyboard": storyboard_ref(store, urls, video), "qc": qc_summary(store, urls, video),
            "checks": check_summary(session, video.asset_id),
            "scene_lists": scene_list_refs(urls, video.org_id, video.asset_id) if raw is not None else None}


def sidecar_document(store: ObjectStore, urls: DownloadUrls, video: Video) -> dict[str, Any]:
    """The sidecar as stored, each thumbnail entry with the `url` of its bytes; 404 until the pipeline wrote it."""
    raw = _sidecar_bytes(store, video)
    if raw is None:
        raise NotFound("the sidecar does not exist yet", code="sidecar_not_found")
    document = json.loads(raw)
    document["thumbnails"] = urls.thumbnails(video.org_id, document.get("thumbnails", []))
    return document


def delete_asset(settings: ApiSettings, store: ObjectStore, instance: DagsterInstance, asset_id: str,
                 org_id: str) -> Deletion:
    """Delete the org's video whole (`heimdex_pipeline.admin.delete`) and the idempotency keys of its jobs; 404 for
    another org's; 409 `asset_busy` while a job of it is queued or running, or being started. A video a
    racing deletion removed first comes back with no `org_id`."""
    with session_scope(settings.catalog_url) as session:
        find_video(session, asset_id, org_id)
    try:
        deletion = delete_video(instance, store, settings.catalog_url, asset_id,
                                settings.asset_claim_wait_s, settings.asset_claim_lease_s)
    except VideoBusyError as exc:
        raise Conflict({"message": "a job of this asset is queued, running or being started: wait for it to end, "
                                   "then delete", "job_ids": exc.run_ids}, code="asset_busy") from None
    idempotency.forget_jobs(settings, org_id, deletion.run_ids)
    return deletion


@contextmanager
def video_turn(settings: ApiSettings, asset_id: str, kind: str) -> Iterator[None]:
    """Hold the video's claim (`catalog.claims`) from cataloguing it to launching its run, so that a
    deletion never runs in between; 409 `asset_busy` after `asset_claim_wait_s`."""
    if not ASSET_ID_PATTERN.match(asset_id):
        raise NotFound("no such asset", code="asset_not_found")
    try:
        with asset_claim(settings.catalog_url, asset_id, kind, settings.asset_claim_wait_s,
                         settings.asset_claim_lease_s):
            yield
    except AssetBusyError:
        raise Conflict("the asset is being deleted, or its job started, by another request: try again",
                       code="asset_busy") from None
