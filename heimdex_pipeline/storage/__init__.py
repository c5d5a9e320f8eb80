"""Where Heimdex keeps media and what it derives: one interface (`ObjectStore`), two backends.

`layout` names every key; `store_from_settings` opens the configured backend.
"""

from typing import TYPE_CHECKING

from heimdex_pipeline.storage.base import ObjectStore, StoredObject
from heimdex_pipeline.storage.errors import (
    DiskFullError,
    InvalidKeyError,
    ObjectNotFoundError,
    StorageError,
    StorageUnavailableError,
)
from heimdex_pipeline.storage.files import (
    DerivedLayout,
    disk_full_reported,
    read_json,
    staging_dir,
    swap_dir_with_json,
    write_json_atomic,
)
from heimdex_pipeline.storage.layout import (
    ORG_ID_PATTERN,
    RESERVED_ORG_ID_PATTERN,
    RESERVED_ORG_IDS,
    check_org_id,
    is_org_id,
)

if TYPE_CHECKING:
    from heimdex_pipeline.settings import PipelineSettings



def store_from_settings(settings: "PipelineSettings") -> ObjectStore:
    """The store the settings configure: `HEIMDEX_STORAGE=local` (default) or `s3`."""
    if settings.storage == "s3":
        # Imported only here: boto3 costs a process that never talks to S3 its import time.
        from heimdex_pipeline.storage.s3 import S3Store

        return S3Store.from_settings(settings)
    from heimdex_pipeline.storage.local import LocalStore

    return LocalStore(settings.derived_root.resolve())


__all__ = [
    "ORG_ID_PATTERN",
    "RESERVED_ORG_IDS",
    "RESERVED_ORG_ID_PATTERN",
    "DerivedLayout",
    "DiskFullError",
    "InvalidKeyError",
    "ObjectNotFoundError",
    "ObjectStore",
    "StorageError",
    "StorageUnavailableError",
    "StoredObject",
    "check_org_id",
    "disk_full_reported",
    "is_org_id",
    "read_json",
    "staging_dir",
    "swap_dir_with_json",
    "store_from_settings",
    "write_json_atomic",
]
