"""What a storage backend raises.

    StorageError
    ├── InvalidKeyError          a key or URI that names nothing Heimdex stores (also a ValueError)
    ├── ObjectNotFoundError      nothing is stored at the key (also a KeyError)
    └── StorageUnavailableError  the store cannot be reached or refuses us: retried, answered 503
DiskFullError (an OSError): the local store has no space left; retried, since freeing space lets it pass.
"""

import errno


class StorageError(Exception):
    """A storage operation failed."""


class InvalidKeyError(StorageError, ValueError):
    """A key or URI that is not one Heimdex stores: absolute, with `..`, odd bytes, another bucket."""


class ObjectNotFoundError(StorageError, KeyError):
    """Nothing is stored at the key."""

    def __str__(self) -> str:  # KeyError's own str() quotes its argument
        return str(self.args[0]) if self.args else "object not found"


class StorageUnavailableError(StorageError):
    """The store cannot be used now; `code` says why, for the API's 503 answer.

    `storage_unavailable`: the endpoint does not answer (connection refused, timeout, 5xx);
    `storage_bucket_missing`: the configured bucket does not exist;
    `storage_access_denied`: the credentials are wrong or lack a permission.
    """

    def __init__(self, message: str, code: str = "storage_unavailable") -> None:
        super().__init__(message)
        self.code = code


class DiskFullError(OSError):
    """The local store's filesystem has no space (or quota) left."""

    def __init__(self, what: str) -> None:
        super().__init__(errno.ENOSPC, f"the derived filesystem is full: no space left to write {what}")
