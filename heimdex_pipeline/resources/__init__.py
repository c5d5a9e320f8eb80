"""Resources: the outside world the assets and the sensors touch, and the settings their runs and ticks read."""

from dagster import ConfigurableResource

from heimdex_pipeline.core.settings import PipelineSettings
from heimdex_pipeline.resources.catalog import CatalogResource
from heimdex_pipeline.resources.media import MediaWork
from heimdex_pipeline.resources.qc import QcRules
from heimdex_pipeline.resources.storage import MediaStorage
from heimdex_pipeline.resources.uploads import UploadRules
from heimdex_pipeline.resources.webhooks import WebhookSender


def resources_from(settings: PipelineSettings) -> dict[str, ConfigurableResource]:
    """Every resource of the definitions, as `settings` configure them: what runs and ticks read of the
    settings comes from here, never from the process's settings read as a module loads."""
    return {
        "catalog": CatalogResource(database_url=settings.catalog_url),
        "storage": MediaStorage.from_settings(settings),
        "media": MediaWork.from_settings(settings),
        "qc": QcRules.from_settings(settings),
        "uploads": UploadRules.from_settings(settings),
        "webhooks": WebhookSender.from_settings(settings),
    }


__all__ = ["CatalogResource", "MediaStorage", "MediaWork", "QcRules", "UploadRules", "WebhookSender", "resources_from"]
