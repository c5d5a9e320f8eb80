"""The upload sweep sensor: every `HEIMDEX_UPLOAD_SWEEP_INTERVAL_S`, what abandoned uploads left is removed."""

import time

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.core.settings import get_settings
from heimdex_pipeline.resources import CatalogResource, MediaStorage, UploadRules
from heimdex_pipeline.uploads.sweep import sweep_uploads


# Dagster fixes a sensor's interval from its definition: read from the settings as the module loads.
@sensor(
    minimum_interval_seconds=get_settings().upload_sweep_interval_s,
    default_status=DefaultSensorStatus.RUNNING,
    description="Removes what abandoned uploads left: unfinished terminations, and partial upload state (S3 "
                "multipart uploads and .tus/ objects, partial files on disk) older than HEIMDEX_UPLOAD_SWEEP_AGE_S.",
)
def upload_sweep_sensor(context: SensorEvaluationContext, catalog: CatalogResource, storage: MediaStorage,
                        uploads: UploadRules) -> SkipReason:
    """Sweep the upload bucket; it requests no run."""
    report = sweep_uploads(catalog.database_url, storage.store, time.time() - uploads.sweep_age_s,
                           uploads.lock_lease_s)
    if report.ended or report.removed:
        get_logger("sensor").info("uploads.swept", ended=report.ended, removed=report.removed)
    return SkipReason(f"terminations finished: {report.ended}; partial state removed: {report.removed}")
