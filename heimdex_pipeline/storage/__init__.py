"""Where Heimdex keeps media and what it derives: one interface (`ObjectStore`), two backends.

`layout` names every key; `open_store` opens a backend, `store_from_settings` the configured one.
"""

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heimdex_pipeline.storage.base import PRESIGNED_PUT_HEADERS, ObjectStore, ServedFile, StoredObject
from heimdex_pipeline.storage.errors import (
    DiskFullError,
    InvalidKeyError,
    ObjectNotFoundError,
    StorageError,
    StorageUnavailableError,
)
from heimdex_pipeline.storage.layout import (
    ORG_ID_PATTERN,
    RESERVED_ORG_ID_PATTERN,
    RESERVED_ORG_IDS,
    check_org_id,
    is_org_id,
)
from heimdex_pipeline.storage.local import LocalStore, disk_full_reported

if TYPE_CHECKING:
    from heimdex_pipeline.core.settings import PipelineSettings


@lru_cache(maxsize=16)
def open_store(backend: str, root: str | None = None, bucket: str | None = None, endpoint_url: str | None = None,
               prefix: str = "", public_endpoint_url: str | None = None) -> ObjectStore:
    """The store of a backend: `local` under `root`, or `s3` in `bucket` (at `endpoint_url`, keys
    under `prefix`). One per configuration and process, shared by its threads."""
    if backend == "s3":
        if not bucket:
            raise ValueError("the s3 storage needs a bucket (HEIMDEX_S3_BUCKET)")
        # Imported only here: boto3 costs a process that never talks to S3 its import time.
        from heimdex_pipeline.storage.s3 import S3Store

        return S3Store(bucket=bucket, endpoint_url=endpoint_url or None, prefix=prefix,
                       public_endpoint_url=public_endpoint_url or None)
    if backend != "local" or not root:
        raise ValueError(f"no storage backend {backend!r} with root {root!r}: local needs a root")
    return LocalStore(Path(root))


def store_config(settings: "PipelineSettings") -> dict[str, Any]:
    """`open_store`'s arguments from the settings (also the Dagster resource's configuration)."""
    return {"backend": settings.storage, "root": str(settings.derived_root.resolve()), "bucket": settings.s3_bucket,
            "endpoint_url": settings.s3_endpoint_url, "prefix": settings.s3_prefix,
            "public_endpoint_url": settings.s3_public_endpoint_url}


def store_from_settings(settings: "PipelineSettings") -> ObjectStore:
    """The store the settings configure: `HEIMDEX_STORAGE=local` (default) or `s3`."""
    return open_store(**store_config(settings))


__all__ = [
    "PRESIGNED_PUT_HEADERS",
    "ORG_ID_PATTERN",
    "RESERVED_ORG_IDS",
    "RESERVED_ORG_ID_PATTERN",
    "DiskFullError",
    "InvalidKeyError",
    "LocalStore",
    "ObjectNotFoundError",
    "ObjectStore",
    "ServedFile",
    "StorageError",
    "StorageUnavailableError",
    "StoredObject",
    "check_org_id",
    "disk_full_reported",
    "is_org_id",
    "open_store",
    "store_config",
    "store_from_settings",
]
