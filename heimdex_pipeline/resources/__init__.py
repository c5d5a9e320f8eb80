"""Resources: the outside world the assets and the sensor touch."""

from heimdex_pipeline.resources.catalog import CatalogResource
from heimdex_pipeline.resources.storage import MediaStorage

__all__ = ["CatalogResource", "MediaStorage"]
