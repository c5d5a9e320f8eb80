"""Heimdex's Dagster definitions: the one object `workspace.yaml` and the `dagster` CLI load."""

from dagster import Definitions

from heimdex_pipeline.assets import probe_metadata, scene_sidecar, thumbnails
from heimdex_pipeline.jobs import ingest_video_job, sidecar_job, thumbnails_job
from heimdex_pipeline.resources import CatalogResource, MediaStorage
from heimdex_pipeline.sensors import upload_sensor
from heimdex_pipeline.settings import get_settings

_settings = get_settings()

defs = Definitions(
    assets=[probe_metadata, scene_sidecar, thumbnails],
    jobs=[ingest_video_job, sidecar_job, thumbnails_job],
    sensors=[upload_sensor],
    resources={
        "catalog": CatalogResource(database_url=_settings.catalog_url),
        "storage": MediaStorage.from_settings(_settings),
    },
)
