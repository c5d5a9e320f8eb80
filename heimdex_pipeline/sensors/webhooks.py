"""The webhook sensor: each finished run of a video becomes events in the catalog's outbox, which it then sends.

Runs are read from Dagster's run status changes (success, failure, cancellation), whoever started
them: the API, the upload sensor, the web UI or a backfill. The cursor moves past a run only
once its events are committed, and recording them twice is a no-op, so a daemon that dies
anywhere in between loses nothing and sends nothing twice.
"""

import json
import time
from datetime import UTC, datetime

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    EventLogRecord,
    RunsFilter,
    RunStatusChangeRecordsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from sqlalchemy import func, select

from heimdex_pipeline.assets.checks import QC_CHECK_KEYS
from heimdex_pipeline.catalog.models import Webhook, as_utc
from heimdex_pipeline.catalog.repository import get_video
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.core.settings import get_settings
from heimdex_pipeline.resources import CatalogResource, MediaStorage, WebhookSender
from heimdex_pipeline.runs.outcome import run_error
from heimdex_pipeline.runs.tags import PARTITION_TAG, TYPE_TAG
from heimdex_pipeline.storage import ObjectStore
from heimdex_pipeline.storage.layout import sidecar_key
from heimdex_pipeline.webhooks import Event, deliver_due, forget_old, record
from heimdex_pipeline.webhooks.events import ASSET_FAILED, ASSET_QC_FAILED, ASSET_READY, JOB_FAILED, JOB_SUCCEEDED

# The outcomes read, by their name in the cursor.
OUTCOMES = {"success": DagsterEventType.RUN_SUCCESS, "failure": DagsterEventType.RUN_FAILURE,
            "canceled": DagsterEventType.RUN_CANCELED}
# Run outcomes read per tick and outcome; more wait for the next tick.
PAGE = 200
# Sending stops starting attempts past this, well inside Dagster's 60 s limit on a sensor's evaluation.
SEND_BUDGET_S = 40.0


def start_cursor(instance: DagsterInstance, since: float) -> dict[str, int]:
    """A cursor just before `since` (a Unix time): outcomes from then on are read."""
    cursor = {}
    for name, event_type in OUTCOMES.items():
        last = instance.fetch_run_status_changes(RunStatusChangeRecordsFilter(event_type, before_timestamp=since),
                                                 limit=1, ascending=False).records
        cursor[name] = last[0].storage_id if last else 0
    return cursor


def read_outcomes(instance: DagsterInstance, cursor: dict[str, int]) -> tuple[list[EventLogRecord], dict[str, int]]:
    """Run outcomes after `cursor`, in the order they happened, and the cursor past them."""
    read: list[tuple[str, EventLogRecord]] = []
    horizon = None
    for name, event_type in OUTCOMES.items():
        page = instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(event_type, after_storage_id=cursor[name]), limit=PAGE, ascending=True)
        read += [(name, record) for record in page.records]
        if page.has_more and page.records:
            # Outcomes of other kinds after this one's last read are left for the next tick, so that
            # those read stay in order across kinds.
            horizon = min(horizon or page.records[-1].storage_id, page.records[-1].storage_id)
    kept = sorted((pair for pair in read if horizon is None or pair[1].storage_id <= horizon),
                  key=lambda pair: pair[1].storage_id)
    cursor = dict(cursor)
    for name, outcome in kept:
        cursor[name] = outcome.storage_id
    return [outcome for _, outcome in kept], cursor


def _materialised(instance: DagsterInstance, run_id: str) -> bool:
    """Whether the run wrote an asset (not one of checks only)."""
    return bool(instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=1).records)


def failed_qc_checks(instance: DagsterInstance, run_id: str) -> list[dict[str, str | None]]:
    """The QC checks the run evaluated that failed, each with its description, as the API's `checks` lists them."""
    failed = []
    for entry in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
        evaluation = entry.event_log_entry.dagster_event.event_specific_data
        if evaluation.asset_check_key in QC_CHECK_KEYS and not evaluation.passed:
            failed.append({"asset": evaluation.asset_key.to_user_string(), "check": evaluation.check_name,
                           "description": evaluation.description})
    return failed


def outcome_events(instance: DagsterInstance, store: ObjectStore, outcome: EventLogRecord, run: DagsterRun,
                   org_id: str, asset_id: str) -> list[Event]:
    """The events of one finished run of a video: the job's, then the video's (its QC's last)."""
    kind = outcome.event_log_entry.dagster_event_type
    occurred_at = datetime.fromtimestamp(outcome.timestamp, UTC)
    status = {DagsterEventType.RUN_SUCCESS: "succeeded", DagsterEventType.RUN_FAILURE: "failed"}.get(kind, "canceled")
    error = None
    if kind == DagsterEventType.RUN_FAILURE:
        error = run_error(instance, run.run_id)
    elif kind == DagsterEventType.RUN_CANCELED:
        error = {"code": "canceled", "message": "the job was canceled"}
    data = {"job_type": run.tags.get(TYPE_TAG), "job_name": run.job_name, "status": status, "error": error}

    def event(type_: str) -> Event:
        return Event(type_, org_id, asset_id, run.run_id, occurred_at, data)

    # The QC checks do not block: a run that succeeded (or failed later, elsewhere) may have failed some.
    failed_qc = failed_qc_checks(instance, run.run_id) if kind != DagsterEventType.RUN_CANCELED else []
    qc = [Event(ASSET_QC_FAILED, org_id, asset_id, run.run_id, occurred_at, {**data, "checks": failed_qc})
          ] if failed_qc else []
    if kind == DagsterEventType.RUN_SUCCESS:
        # Ready as the API's asset answer says it: once its sidecar exists.
        ready = _materialised(instance, run.run_id) and store.stat(sidecar_key(org_id, asset_id)) is not None
        return [event(JOB_SUCCEEDED), *([event(ASSET_READY)] if ready else []), *qc]
    if kind == DagsterEventType.RUN_FAILURE:
        return [event(JOB_FAILED), event(ASSET_FAILED), *qc]
    return [event(JOB_FAILED)]


@sensor(
    # Fixed when the definitions load: Dagster's daemon reads it from the sensor's definition.
    minimum_interval_seconds=get_settings().webhook_interval_s,
    default_status=DefaultSensorStatus.RUNNING,
    description="Turns each finished run of a video into webhook events, and sends the webhooks due.",
)
def webhook_sensor(context: SensorEvaluationContext, catalog: CatalogResource, storage: MediaStorage,
                   webhooks: WebhookSender) -> SensorResult:
    """Record the events of the runs finished since the last tick, then send every due delivery."""
    instance = context.instance
    if context.cursor:
        cursor = json.loads(context.cursor)
    else:
        # From the first endpoint's creation: no event before it has anyone to go to.
        with catalog.session() as session:
            first = session.scalar(select(func.min(Webhook.created_at)))
        cursor = start_cursor(instance, as_utc(first).timestamp() if first else time.time())
    outcomes, next_cursor = read_outcomes(instance, cursor)
    runs = {record.dagster_run.run_id: record.dagster_run for record in instance.get_run_records(
        RunsFilter(run_ids=list({o.run_id for o in outcomes})))} if outcomes else {}
    recorded = 0
    with catalog.session() as session:
        with_endpoints = set(session.scalars(select(Webhook.org_id).distinct()))
        for outcome in outcomes:
            run = runs.get(outcome.run_id)
            asset_id = run.tags.get(PARTITION_TAG) if run else None
            video = get_video(session, asset_id) if asset_id else None
            if video is None or video.org_id not in with_endpoints:
                continue
            for event in outcome_events(instance, storage.store, outcome, run, video.org_id, asset_id):
                recorded += record(session, event) is not None
    report = deliver_due(catalog.database_url, webhooks.policy, SEND_BUDGET_S)
    forget_old(catalog.database_url, webhooks.policy)
    summary = f"{len(outcomes)} run outcomes read, {recorded} events recorded; deliveries: {report}"
    if outcomes or report.answers:
        get_logger("webhooks").info("webhooks.tick", outcomes=len(outcomes), events=recorded,
                                    delivered=report.delivered, retrying=report.retrying, failed=report.failed)
    return SensorResult(skip_reason=SkipReason(summary), cursor=json.dumps(next_cursor))
