"""Which content an object of the store holds: the one answer to "is this new content?" that the
upload sensor and the API's commit and probe both use.

An object is hashed only as it was seen (listed or stat'ed): its bytes are read, then it is
stat'ed again, and the hash counts only when the object still has the size and the version it
was seen with. A same-size rewrite while its bytes were read changes the version (the mtime on
disk, the ETag on S3), so a hash of half the old bytes and half the new, which names neither
content, is never taken for the object's.
"""

from functools import partial
from typing import Protocol

from heimdex_pipeline.media.fingerprint import ContentHash, hash_content
from heimdex_pipeline.storage import ObjectNotFoundError, ObjectStore, StoredObject


class SeenObject(Protocol):
    """An object as a listing or a stat saw it (`StoredObject`, or the catalog's `SourceObject`)."""

    @property
    def key(self) -> str: ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def version(self) -> str: ...


class ContentChangedError(Exception):
    """The object was written to since it was seen, or while its bytes were read."""


def hash_seen_object(store: ObjectStore, seen: SeenObject, weak_threshold_bytes: int) -> tuple[ContentHash, StoredObject]:
    """The content hash of the object `seen` describes, and the object as it is after hashing.

    ObjectNotFoundError when it is gone; ContentChangedError when its bytes or its size and
    version after hashing are not those it was seen with: the hash then names no content the
    object ever held whole.
    """
    content = hash_content(seen.size_bytes, partial(store.iter_bytes, seen.key), weak_threshold_bytes)
    after = store.stat(seen.key)
    if after is None:
        raise ObjectNotFoundError(f"nothing is stored at {seen.key}")
    if (content.size_bytes, after.size_bytes, after.version) != (seen.size_bytes, seen.size_bytes, seen.version):
        raise ContentChangedError(f"{seen.key} changed while it was read")
    return content, after
