"""Starting Dagster runs for the API's jobs: a job id is a run id (`job_state` reads it back).

Two launchers, chosen by `HEIMDEX_JOB_QUEUE_BACKEND`: `immediate` executes the run before the
request answers (still a real run of the instance, visible in the UI); `dagster` submits it to
the webserver, whose run coordinator queues it for the daemon.
"""

import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit
from uuid import uuid4

from dagster import DagsterEventType, DagsterInstance, Definitions, ExecuteInProcessResult, RunsFilter
from dagster_shared.error import SerializableErrorInfo

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import Unavailable
from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.repository import mark_run_launched
from heimdex_pipeline.core.pauses import doubling_pauses
from heimdex_pipeline.definitions import defs
from heimdex_pipeline.resources import resources_from
from heimdex_pipeline.runs.pools import prepare_pools
from heimdex_pipeline.runs.tags import (
    PARENT_RUN_TAG,
    PARTITION_TAG,
    RETRY_NUMBER_TAG,
    ROOT_RUN_TAG,
    SUBMISSION_TAG,
    run_tags,
)

JOB_NAMES = {"ingest": "ingest_video", "sidecar": "sidecar_job", "thumbnails": "thumbnails_job"}

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


# What the webserver answers for a request it will never take, however often it is sent again.
_REFUSALS = {"InvalidStepError", "InvalidOutputError", "RunConfigValidationInvalid", "PipelineConfigValidationInvalid",
             "JobNotFoundError", "PipelineNotFoundError", "RunConflict", "UnauthorizedError",
             "ConflictingExecutionParamsError", "PresetNotFoundError"}
_FIRST_PAUSE_S = 0.5
_LONGEST_PAUSE_S = 5.0


class DagsterLauncher:
    """Submits the run to the Dagster webserver; its run coordinator queues it for the daemon.

    A slow webserver is waited for, and one that fails is asked again, within
    `dagster_submit_timeout_s`: a busy machine made it answer 20 submissions at once in more than
    the 30 s a submission had, and every commit was refused (docs/benchmarks.md, "A crowd"). Each
    run carries its submission's id, so that a run the webserver made without answering in time is
    found in `instance`'s runs and answered, never submitted twice.
    """

    def __init__(self, settings: ApiSettings, instance: Callable[[], DagsterInstance]) -> None:
        self._settings = settings
        self._instance = instance

    def launch(self, request: JobRequest) -> str:
        from dagster_graphql import DagsterGraphQLClientError

        submission = uuid4().hex
        tags = {PARTITION_TAG: request.asset_id, **request.tags, SUBMISSION_TAG: submission}
        deadline = time.monotonic() + self._settings.dagster_submit_timeout_s
        pauses = doubling_pauses(_FIRST_PAUSE_S, _LONGEST_PAUSE_S)
        while True:
            try:
                return self._submit(request, tags, timeout_s=max(1.0, deadline - time.monotonic()))
            except (DagsterGraphQLClientError, OSError) as exc:
                if isinstance(exc, DagsterGraphQLClientError) and exc.args and exc.args[0] in _REFUSALS:
                    raise Unavailable(f"the Dagster webserver refused the run: {exc}",
                                      code="dagster_unavailable") from exc
                error = exc
            made = self._submitted(submission)
            if made is not None:
                return made
            pause = next(pauses)
            if time.monotonic() + pause > deadline:
                raise Unavailable(f"the Dagster webserver did not take the run: {error}",
                                  code="dagster_unavailable") from error
            time.sleep(pause)

    def _submit(self, request: JobRequest, tags: dict[str, str], timeout_s: float) -> str:
        from dagster_graphql import DagsterGraphQLClient

        url = urlsplit(self._settings.dagster_webserver_url)
        client = DagsterGraphQLClient(url.hostname or "127.0.0.1", port_number=url.port,
                                      use_https=url.scheme == "https", path_prefix=url.path.rstrip("/"),
                                      timeout=math.ceil(timeout_s))
        return client.submit_job_execution(
            request.job_name,
            repository_location_name=self._settings.dagster_location_name,
            repository_name=self._settings.dagster_repository_name,
            run_config=request.run_config,
            tags=tags,
        )

    def _submitted(self, submission: str) -> str | None:
        """The run of `submission`, if the webserver made it (the first, should a retry of it follow)."""
        try:
            records = self._instance().get_run_records(RunsFilter(tags={SUBMISSION_TAG: submission}), limit=1,
                                                       ascending=True)
        except Exception:  # the storage away too: the submission is tried again, or refused
            return None
        return records[0].dagster_run.run_id if records else None


def make_launcher(settings: ApiSettings, instance: Callable[[], DagsterInstance],
                  serving: Callable[[], DagsterInstance]) -> JobLauncher:
    """The launcher `HEIMDEX_JOB_QUEUE_BACKEND` names; `instance` makes the instance that runs executed
    in this process write through, called only for those; `serving` is the API's own, where the
    webserver's runs are looked up."""
    if settings.job_queue_backend == "dagster":
        return DagsterLauncher(settings, serving)
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
