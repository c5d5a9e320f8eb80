"""Resources: the outside world the assets and the sensors touch."""

from heimdex_pipeline.resources.catalog import CatalogResource
from heimdex_pipeline.resources.storage import MediaStorage
from heimdex_pipeline.resources.webhooks import WebhookSender

__all__ = ["CatalogResource", "MediaStorage", "WebhookSender"]
