"""Carries the outcomes of asset checks evaluated before the catalog kept them (migration 0011) over
from Dagster's event log, so that an upgraded deployment's API still sums up its videos' checks."""

from dagster import DagsterInstance
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from sqlalchemy import exists, select

from heimdex_pipeline.assets.checks import VIDEO_CHECK_KEYS
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import CheckOutcome, Video
from heimdex_pipeline.catalog.repository import record_check_outcome

_FINISHED = (AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED)


def carry_check_outcomes(instance: DagsterInstance, catalog_url: str) -> int:
    """Record each catalogued video's newest check outcomes from the event log, once: only while the
    catalog holds no outcome at all (a deployment upgraded past 0011). Answers how many it recorded."""
    with session_scope(catalog_url) as session:
        if session.scalar(select(exists().select_from(CheckOutcome))):
            return 0
        asset_ids = list(session.scalars(select(Video.asset_id)))
    recorded = 0
    for asset_id in asset_ids:
        records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            VIDEO_CHECK_KEYS, partition_filter=PartitionKeyFilter(key=asset_id))
        with session_scope(catalog_url) as session:
            for key, record in records.items():
                if record.status not in _FINISHED:
                    continue
                evaluation = record.event.asset_check_evaluation if record.event else None
                record_check_outcome(session, asset_id, key.asset_key.to_user_string(), key.name,
                                     record.status == AssetCheckExecutionRecordStatus.SUCCEEDED,
                                     evaluation.description if evaluation else None, record.run_id)
                recorded += 1
    return recorded
