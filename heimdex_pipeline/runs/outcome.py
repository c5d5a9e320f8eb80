"""What a finished Dagster run of a video says about itself: read by the API's job answer and the webhooks."""

from dagster import DagsterEventType, DagsterInstance, EventLogEntry


def _failed_check(entries: list[EventLogEntry], step_key: str | None) -> dict[str, str] | None:
    """The first failed check the step `step_key` evaluated, if one failed (a run's non-blocking checks, the
    QC's, may have failed in other steps without failing the run)."""
    for entry in entries:
        if entry.dagster_event.event_type != DagsterEventType.ASSET_CHECK_EVALUATION or entry.step_key != step_key:
            continue
        evaluation = entry.dagster_event.asset_check_evaluation_data
        if not evaluation.passed:
            return {"code": "check_failed", "message": f"{evaluation.asset_key.to_user_string()}: "
                                                       f"{evaluation.check_name}: {evaluation.description}"}
    return None


def run_error(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """A failed run's `{code, message}`: the first step failure's message, else the run failure's; a failed
    blocking check's own description."""
    # One read of the run's log for the failures and the check results a blocking check's failure needs.
    entries = instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE,
                                                 DagsterEventType.ASSET_CHECK_EVALUATION})
    failures = [entry for entry in entries if entry.dagster_event.event_type != DagsterEventType.ASSET_CHECK_EVALUATION]
    step_failures = [entry for entry in failures if entry.dagster_event.event_type == DagsterEventType.STEP_FAILURE]
    if not (first := next(iter(step_failures or failures), None)):
        return {"code": "run_failure", "message": "the run failed"}
    event = first.dagster_event
    data = event.step_failure_data if event.event_type == DagsterEventType.STEP_FAILURE else None
    if data is not None and data.error is not None:
        if data.error.cls_name == "DagsterAssetCheckFailedError" and (failed := _failed_check(entries, event.step_key)):
            return failed
        return {"code": "step_failure", "message": f"{event.step_key}: {data.error.message.strip()}"}
    return {"code": "run_failure", "message": first.message or "the run failed"}
