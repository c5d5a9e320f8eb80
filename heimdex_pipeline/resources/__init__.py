"""Resources: the outside world the assets and the sensor touch."""

from heimdex_pipeline.resources.catalog import CatalogResource
from heimdex_pipeline.resources.derived import DerivedStorage

__all__ = ["CatalogResource", "DerivedStorage"]
