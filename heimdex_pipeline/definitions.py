"""Heimdex's Dagster definitions: the one object `workspace.yaml` and the `dagster` CLI load."""

from dagster import Definitions, in_process_executor

from heimdex_pipeline.assets import VIDEO_CHECKS, probe_metadata, scene_sidecar, storyboard, thumbnails
from heimdex_pipeline.jobs import ingest_video_job, sidecar_job, thumbnails_job
from heimdex_pipeline.resources import CatalogResource, MediaStorage, WebhookSender
from heimdex_pipeline.sensors import upload_sensor, upload_sweep_sensor, webhook_sensor
from heimdex_pipeline.settings import get_settings

_settings = get_settings()

defs = Definitions(
    assets=[probe_metadata, scene_sidecar, thumbnails, storyboard],
    asset_checks=VIDEO_CHECKS,
    # A video's steps run one after the other (each needs one before it) and take about a
    # second each on a short clip: one process per run, not one per step, each importing the
    # definitions again (docs/benchmarks.md, "Throughput").
    executor=in_process_executor,
    jobs=[ingest_video_job, sidecar_job, thumbnails_job],
    sensors=[upload_sensor, upload_sweep_sensor, webhook_sensor],
    resources={
        "catalog": CatalogResource(database_url=_settings.catalog_url),
        "storage": MediaStorage.from_settings(_settings),
        "webhooks": WebhookSender.from_settings(_settings),
    },
)
