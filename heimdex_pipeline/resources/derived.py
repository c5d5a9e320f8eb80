"""The derived folder (sidecars, thumbnails, uploads) as a Dagster resource."""

from pathlib import Path

from dagster import ConfigurableResource

from heimdex_pipeline.storage import DerivedLayout


class DerivedStorage(ConfigurableResource):
    """The root every derived file and the upload bucket live under."""

    root: str

    @property
    def layout(self) -> DerivedLayout:
        """Paths under the root."""
        return DerivedLayout(Path(self.root))
