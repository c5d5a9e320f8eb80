"""What the asset checks of a video say: the newest result of each, as Dagster's "Checks" tab shows them."""

from typing import Any

from dagster import DagsterInstance
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from heimdex_pipeline.assets.checks import VIDEO_CHECK_KEYS


def check_summary(instance: DagsterInstance, asset_id: str) -> dict[str, Any]:
    """How many of the video's checks passed at their newest evaluation, and which failed and why.

    A check not evaluated yet, or in progress, is in neither. One indexed query: Dagster's public
    instance API reads a check's newest result over all partitions only.
    """
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        VIDEO_CHECK_KEYS, partition_filter=PartitionKeyFilter(key=asset_id))
    passed, failed = 0, []
    for key in VIDEO_CHECK_KEYS:
        record = records.get(key)
        if record is None or record.status == AssetCheckExecutionRecordStatus.PLANNED:
            continue
        if record.status == AssetCheckExecutionRecordStatus.SUCCEEDED:
            passed += 1
            continue
        evaluation = record.event.asset_check_evaluation if record.event else None
        failed.append({"asset": key.asset_key.to_user_string(), "check": key.name,
                       "description": evaluation.description if evaluation else None})
    return {"passed": passed, "failed": failed}
