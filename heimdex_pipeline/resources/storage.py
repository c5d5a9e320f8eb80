"""Where media and everything derived from it are kept, as a Dagster resource."""

from typing import TYPE_CHECKING, Literal

from dagster import ConfigurableResource

from heimdex_pipeline.storage import ObjectStore, open_store, store_config

if TYPE_CHECKING:
    from heimdex_pipeline.core.settings import PipelineSettings


class MediaStorage(ConfigurableResource):
    """The object store of the upload bucket and the derived files: a folder on disk or an S3 bucket."""

    backend: Literal["local", "s3"] = "local"
    root: str | None = None
    bucket: str | None = None
    endpoint_url: str | None = None
    prefix: str = ""
    # The endpoint clients reach, for presigned URLs (HEIMDEX_S3_PUBLIC_ENDPOINT_URL).
    public_endpoint_url: str | None = None

    @classmethod
    def from_settings(cls, settings: "PipelineSettings") -> "MediaStorage":
        """The storage `HEIMDEX_STORAGE` and its settings configure."""
        return cls(**store_config(settings))

    @property
    def store(self) -> ObjectStore:
        """The store itself (one per configuration and process)."""
        return open_store(self.backend, self.root, self.bucket, self.endpoint_url, self.prefix,
                          self.public_endpoint_url)
