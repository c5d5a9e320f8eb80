"""A job's state as Dagster's storage has it (a job id is a run id), with its sidecar's result and its
progress from the catalog, and the contract's job answer."""

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from dagster import DagsterInstance, DagsterRunStatus, RunRecord, RunsFilter

from heimdex_api.core.errors import NotFound
from heimdex_api.services.urls import DownloadUrls
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import as_utc
from heimdex_pipeline.catalog.repository import run_progress
from heimdex_pipeline.runs.outcome import run_error
from heimdex_pipeline.runs.tags import ORG_TAG, PARTITION_TAG, TYPE_TAG
from heimdex_pipeline.storage import ObjectNotFoundError, ObjectStore
from heimdex_pipeline.storage.layout import sidecar_key, sidecar_storage_key

_STATUS = {
    DagsterRunStatus.QUEUED: "queued",
    DagsterRunStatus.NOT_STARTED: "queued",
    DagsterRunStatus.STARTING: "queued",
    DagsterRunStatus.STARTED: "running",
    DagsterRunStatus.SUCCESS: "succeeded",
    DagsterRunStatus.FAILURE: "failed",
    DagsterRunStatus.CANCELING: "canceled",
    DagsterRunStatus.CANCELED: "canceled",
}


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp else None


def find_run(instance: DagsterInstance, run_id: str, org_id: str) -> RunRecord:
    """The run record of one of the org's jobs; 404 for unknown runs and other orgs' runs alike."""
    record = instance.get_run_record_by_id(run_id)
    if record is None or record.dagster_run.tags.get(ORG_TAG) != org_id:
        raise NotFound("no such job", code="job_not_found")
    return record


@dataclass(frozen=True)
class JobState:
    """A job's answer without its `url`s: what Dagster and the sidecar say of it. Once its run has
    finished (`finished`), nothing of it changes."""

    org_id: str
    job_id: str
    type: str | None
    asset_id: str | None
    status: str
    started_at: str | None
    finished_at: str | None
    finished: bool
    sidecar_uri: str | None = None  # a succeeded job's sidecar, and its thumbnails
    thumbnails: tuple[dict[str, Any], ...] = ()
    error: dict[str, str] | None = None
    progress: dict[str, Any] | None = None  # a running job's current step, as far as it has said


def read_job_state(instance: DagsterInstance, run_id: str, org_id: str) -> JobState:
    """What Dagster's storage has of one of the org's jobs; 404 for unknown runs and other orgs' runs alike."""
    record = find_run(instance, run_id, org_id)
    run = record.dagster_run
    status = _STATUS.get(run.status, "queued")
    return JobState(org_id=org_id, job_id=run.run_id, type=run.tags.get(TYPE_TAG),
                    asset_id=run.tags.get(PARTITION_TAG), status=status, started_at=_iso(record.start_time),
                    finished_at=_iso(record.end_time), finished=run.is_finished,
                    error=run_error(instance, run_id) if status == "failed" else None)


def with_result(job: JobState, store: ObjectStore) -> JobState:
    """A succeeded job with its sidecar's location and thumbnails; any other job as it is."""
    if job.status != "succeeded" or not job.asset_id:
        return job
    key = sidecar_key(job.org_id, job.asset_id)
    try:
        thumbnails = store.read_json(key).get("thumbnails", [])
    except ObjectNotFoundError:
        thumbnails = []
    return replace(job, sidecar_uri=store.uri(key), thumbnails=tuple(thumbnails))


def with_progress(job: JobState, catalog_url: str) -> JobState:
    """A running job with how far its current step is; any other job as it is."""
    if job.status != "running":
        return job
    with session_scope(catalog_url) as session:
        row = run_progress(session, job.job_id)
    if row is None:
        return job
    updated_at = as_utc(row.updated_at)
    progress = {"step": row.step, "unit": row.unit, "done": row.done, "total": row.total or None,
                "fraction": round(row.done / row.total, 4) if row.total else 0.0, "updated_at": updated_at.isoformat()}
    return replace(job, progress=progress)


def job_view(job: JobState, urls: DownloadUrls) -> dict[str, Any]:
    """The contract's job answer, with the `url`s of its sidecar and thumbnails."""
    result = None
    if job.sidecar_uri is not None:
        result = {"sidecar_uri": job.sidecar_uri,
                  "sidecar_url": urls.url(job.org_id, sidecar_storage_key(job.asset_id)),
                  "thumbnails": urls.thumbnails(job.org_id, list(job.thumbnails))}
    return {"job_id": job.job_id, "type": job.type, "asset_id": job.asset_id, "status": job.status,
            "started_at": job.started_at, "finished_at": job.finished_at, "result": result, "error": job.error,
            "progress": job.progress}


def latest_run_status(instance: DagsterInstance, asset_id: str) -> str | None:
    """The job status of the newest run on a video (the API's or the sensor's), if any."""
    records = instance.get_run_records(RunsFilter(tags={PARTITION_TAG: asset_id}), limit=1)
    return _STATUS.get(records[0].dagster_run.status) if records else None
