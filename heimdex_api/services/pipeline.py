"""Starting and reading Dagster runs: a job id is a run id, and its state lives in Dagster only.

Two launchers, chosen by `HEIMDEX_JOB_QUEUE_BACKEND`: `immediate` executes the run before the
request answers (still a real run of the instance, visible in the UI); `dagster` submits it to
the webserver, whose run coordinator queues it for the daemon.
"""

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    ExecuteInProcessResult,
    RunRecord,
    RunsFilter,
)
from dagster_shared.error import SerializableErrorInfo

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import NotFound, Unavailable
from heimdex_api.services.urls import DownloadUrls
from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import as_utc
from heimdex_pipeline.catalog.repository import mark_run_launched, run_progress
from heimdex_pipeline.definitions import defs
from heimdex_pipeline.pools import prepare_pools
from heimdex_pipeline.resources import resources_from
from heimdex_pipeline.runs import run_error
from heimdex_pipeline.storage import ObjectNotFoundError, ObjectStore
from heimdex_pipeline.storage.layout import sidecar_key, sidecar_storage_key
from heimdex_pipeline.tags import (
    ORG_TAG,
    PARENT_RUN_TAG,
    PARTITION_TAG,
    RETRY_NUMBER_TAG,
    ROOT_RUN_TAG,
    TYPE_TAG,
    run_tags,
)

JOB_NAMES = {"ingest": "ingest_video", "sidecar": "sidecar_job", "thumbnails": "thumbnails_job"}

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


@dataclass(frozen=True)
class JobRequest:
    """A run to start: which Heimdex job, on which video of which org, with which run config."""

    job_type: str
    asset_id: str
    org_id: str
    job_name: str
    run_config: dict[str, Any] = field(default_factory=dict)

    @property
    def tags(self) -> dict[str, str]:
        return run_tags(self.org_id, self.job_type, origin="api")


class JobLauncher(Protocol):
    """Starts a run for a request and answers its run id."""

    def launch(self, request: JobRequest) -> str: ...


def pipeline_definitions(settings: ApiSettings) -> Definitions:
    """The pipeline's assets, checks and jobs, their resources configured by the API's settings (its catalog,
    storage and media limits), not by the process's environment."""
    return Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        resources=resources_from(settings),
    )


class ImmediateLauncher:
    """Executes each run on the given instance before answering, one run at a time.

    Every run goes through one thread: Dagster's in-process execution reconfigures logging
    (`logging.config.dictConfig` under logging's global lock) while another run's log handler
    holds its own lock and SQLite's event-log lock, so two runs in two request threads can
    deadlock the process for good.
    """

    def __init__(self, definitions: Definitions, instance: DagsterInstance) -> None:
        self._definitions = definitions
        self._instance = instance
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="heimdex-run")

    def launch(self, request: JobRequest) -> str:
        return self._runner.submit(self._execute, request).result()

    def _execute(self, request: JobRequest) -> str:
        job = self._definitions.resolve_job_def(request.job_name)
        tags, root = request.tags, None
        retries = self._instance.run_retries_max_retries if self._instance.run_retries_enabled else 0
        for retry in range(retries + 1):
            # A failed run is an answer (the job says `failed`), not an error of the request.
            result = job.execute_in_process(instance=self._instance, partition_key=request.asset_id,
                                            run_config=request.run_config, tags=tags, raise_on_error=False)
            if result.success or not _lost_the_database(result):
                break
            # The run's own event writes lost the database (a restart cuts the statement in
            # flight, which Dagster's storage does not retry): a new run, as the daemon's run
            # retries start one for a crashed worker, which an in-process run has no daemon for.
            root = root or result.run_id
            tags = {**request.tags, PARENT_RUN_TAG: result.run_id, ROOT_RUN_TAG: root,
                    RETRY_NUMBER_TAG: str(retry + 1)}
            time.sleep(_RUN_RETRY_DELAY_S)
        return result.run_id


# Driver errors that say the database went away; a video's own failures never raise them.
_DATABASE_LOST = {"OperationalError", "InterfaceError"}
_RUN_RETRY_DELAY_S = 2.0


def _causes(error: SerializableErrorInfo | None) -> Iterator[SerializableErrorInfo]:
    while error is not None:
        yield error
        error = error.cause or error.context


def _lost_the_database(result: ExecuteInProcessResult) -> bool:
    """Whether the run failed because its storage lost the database, in a step or in the run itself."""
    failures = [event.step_failure_data.error for event in result.get_step_failure_events()]
    failures += [event.event_specific_data.error for event in result.all_events
                 if event.event_type == DagsterEventType.RUN_FAILURE and event.event_specific_data is not None]
    return any(cause.cls_name in _DATABASE_LOST for error in failures for cause in _causes(error))


class DagsterLauncher:
    """Submits the run to the Dagster webserver; its run coordinator queues it for the daemon."""

    def __init__(self, settings: ApiSettings) -> None:
        self._settings = settings

    def launch(self, request: JobRequest) -> str:
        from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

        url = urlsplit(self._settings.dagster_webserver_url)
        client = DagsterGraphQLClient(url.hostname or "127.0.0.1", port_number=url.port,
                                      use_https=url.scheme == "https", path_prefix=url.path.rstrip("/"), timeout=30)
        try:
            return client.submit_job_execution(
                request.job_name,
                repository_location_name=self._settings.dagster_location_name,
                repository_name=self._settings.dagster_repository_name,
                run_config=request.run_config,
                tags={PARTITION_TAG: request.asset_id, **request.tags},
            )
        except (DagsterGraphQLClientError, OSError) as exc:
            raise Unavailable(f"the Dagster webserver did not take the run: {exc}", code="dagster_unavailable") from exc


def make_launcher(settings: ApiSettings, instance: Callable[[], DagsterInstance]) -> JobLauncher:
    """The launcher `HEIMDEX_JOB_QUEUE_BACKEND` names; `instance` makes the instance that runs executed
    in this process write through, called only for those."""
    if settings.job_queue_backend == "dagster":
        return DagsterLauncher(settings)
    runs = instance()
    # This process executes runs itself, so no earlier step may have set the pools up for them.
    prepare_pools(runs)
    return ImmediateLauncher(pipeline_definitions(settings), runs)


def ensure_partition(instance: DagsterInstance, asset_id: str) -> None:
    """Add the video's partition unless the instance already has it."""
    name = videos_partitions.name
    if not instance.has_dynamic_partition(name, asset_id):
        instance.add_dynamic_partitions(name, [asset_id])


def start_run(settings: ApiSettings, instance: DagsterInstance, launcher: JobLauncher, request: JobRequest) -> str:
    """Add the video's partition, launch the run, and record on the video that its run was launched."""
    ensure_partition(instance, request.asset_id)
    job_id = launcher.launch(request)
    with session_scope(settings.catalog_url) as session:
        mark_run_launched(session, request.asset_id)
    return job_id


def remove_partition(instance: DagsterInstance, asset_id: str) -> None:
    """Undo `ensure_partition` for a video whose registration was rolled back."""
    if instance.has_dynamic_partition(videos_partitions.name, asset_id):
        instance.delete_dynamic_partition(videos_partitions.name, asset_id)


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
