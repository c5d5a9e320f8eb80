"""The upload sweep sensor: every `HEIMDEX_UPLOAD_SWEEP_INTERVAL_S`, what abandoned uploads left is removed."""

import time

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from heimdex_pipeline.logs import get_logger
from heimdex_pipeline.resources import CatalogResource, MediaStorage
from heimdex_pipeline.settings import get_settings
from heimdex_pipeline.upload_sweep import sweep_uploads

_settings = get_settings()


@sensor(
    minimum_interval_seconds=_settings.upload_sweep_interval_s,
    default_status=DefaultSensorStatus.RUNNING,
    description="Removes what abandoned uploads left: unfinished terminations, and partial upload state (S3 "
                "multipart uploads and .tus/ objects, partial files on disk) older than HEIMDEX_UPLOAD_SWEEP_AGE_S.",
)
def upload_sweep_sensor(context: SensorEvaluationContext, catalog: CatalogResource,
                        storage: MediaStorage) -> SkipReason:
    """Sweep the upload bucket; it requests no run."""
    report = sweep_uploads(catalog.database_url, storage.store, time.time() - _settings.upload_sweep_age_s,
                           _settings.upload_lock_lease_s)
    if report.ended or report.removed:
        get_logger("sensor").info("uploads.swept", ended=report.ended, removed=report.removed)
    return SkipReason(f"terminations finished: {report.ended}; partial state removed: {report.removed}")
