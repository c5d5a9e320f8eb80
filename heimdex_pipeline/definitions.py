"""Heimdex's Dagster definitions: the one object `workspace.yaml` and the `dagster` CLI load."""

from dagster import Definitions, in_process_executor

from heimdex_pipeline.assets import VIDEO_CHECKS, media_qc, probe_metadata, scene_sidecar, storyboard, thumbnails
from heimdex_pipeline.core.settings import get_settings
from heimdex_pipeline.resources import resources_from
from heimdex_pipeline.runs.jobs import ingest_video_job, sidecar_job, thumbnails_job
from heimdex_pipeline.sensors import upload_sensor, upload_sweep_sensor, webhook_sensor

defs = Definitions(
    assets=[probe_metadata, scene_sidecar, thumbnails, storyboard, media_qc],
    asset_checks=VIDEO_CHECKS,
    # A video's steps run one after the other (each needs one before it) and take about a
    # second each on a short clip: one process per run, not one per step, each importing the
    # definitions again (docs/benchmarks.md, "Throughput").
    executor=in_process_executor,
    jobs=[ingest_video_job, sidecar_job, thumbnails_job],
    sensors=[upload_sensor, upload_sweep_sensor, webhook_sensor],
    # What Dagster fixes from the definitions (sensor intervals, the retry policy, the detector behind the
    # sidecar's code version, the thumbnail policy's defaults) is read from the settings as the modules
    # load; what a run or a tick reads comes from these resources (the API binds its own settings':
    # heimdex_api.services.launchers.pipeline_definitions).
    resources=resources_from(get_settings()),
)
