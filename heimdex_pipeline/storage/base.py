"""The one storage interface the assets, the sensor and the API use, whatever the backend.

Two implementations: `LocalStore` (a folder on disk, the embedded default) and `S3Store`
(any S3-compatible bucket). Keys follow `heimdex_pipeline.storage.layout` on both.
"""

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from heimdex_pipeline.storage.receive import UploadReceiver


@dataclass(frozen=True)
class StoredObject:
    """An object as listed or stat'ed: its key, size, a version that changes with its content, and when it was last written.

    `version` is the modification time in nanoseconds on disk, the ETag on S3; `modified_at` is
    POSIX seconds (the file's mtime, the object's Last-Modified).
    """

    key: str
    size_bytes: int
    version: str
    modified_at: float


@dataclass(frozen=True)
class ServedFile:
    """A regular file of a store on disk, as the API streams it under its own signed URL: its path, and
    what stat said of it (size, modification time) once it was found to be a file of the store's own."""

    path: Path
    stat: os.stat_result


# Headers a store's presigned PUT is signed with, so the client must send them: `If-None-Match: *`
# makes the PUT a create-only write (S3 conditional writes), so an object once stored (and maybe
# committed and being ingested) is never replaced through its URL; a second PUT answers 412.
PRESIGNED_PUT_HEADERS = {"If-None-Match": "*"}


def json_bytes(document: Any) -> bytes:
    """How every JSON document is stored: indented, keys sorted, one final newline."""
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


class ObjectStore(ABC):
    """Objects under keys: read, written whole (a reader sees the old bytes or the new, never a
    mix), listed in key order, and handed to media tools and clients by URL."""

    backend: ClassVar[str]
    # Whether an object is whole as soon as it is listed (S3: a PUT or multipart upload shows
    # only once complete). On disk a file is listed while it is being copied, so the sensor
    # waits for it to settle.
    objects_appear_whole: ClassVar[bool]

    # -- naming --------------------------------------------------------------------------------
    @abstractmethod
    def uri(self, key: str) -> str:
        """The key's URI as API answers give it: `file:///...` or `s3://<bucket>/<key>`."""

    @abstractmethod
    def key_of(self, uri: str) -> str:
        """The key a URI of this store names; InvalidKeyError for any other URI (another scheme,
        host or bucket, `..`, odd bytes, a path outside the store)."""

    # -- reading -------------------------------------------------------------------------------
    @abstractmethod
    def stat(self, key: str) -> StoredObject | None:
        """The object at `key`, or None when there is none."""

    @abstractmethod
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[StoredObject]:
        """Every object whose key starts with `prefix`, in key order, after `start_after` if given.

        Paginated underneath, so it costs memory for one page, not for the whole bucket.
        """

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The whole object (small documents only); ObjectNotFoundError when it is missing."""

    @abstractmethod
    def iter_bytes(self, key: str, start: int = 0, length: int | None = None,
                   chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The object's bytes from `start` (`length` of them, or to the end), streamed in chunks."""

    def read_json(self, key: str) -> Any:
        """A JSON document written by `write_json`."""
        return json.loads(self.read_bytes(key))

    # -- writing -------------------------------------------------------------------------------
    @abstractmethod
    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store `data` at `key`, replacing what was there in one step."""

    def write_json(self, key: str, document: Any) -> None:
        """Store a JSON document at `key`, replacing what was there in one step."""
        self.write_bytes(key, json_bytes(document), "application/json")

    @abstractmethod
    def write_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """Store a local file's bytes at `key`, replacing what was there in one step."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object at `key` (nothing happens when there is none)."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under `prefix` (a folder's, ending in `/`); return how many there were."""
        keys = [stored.key for stored in self.list(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)

    def prepare_prefix(self, prefix: str) -> None:
        """Make `prefix` ready for objects placed there by other means than this store: on disk, the
        folder a client copies its file into. Nothing to do on a bucket."""

    @abstractmethod
    def scratch_dir(self, prefix: str) -> AbstractContextManager[Path]:
        """A fresh local folder to fill for `publish_dir(prefix)`, removed on exit whatever happens."""

    @abstractmethod
    def publish_dir(self, staged: Path, prefix: str, index_key: str, index: Any) -> None:
        """Make `staged`'s files the objects under `prefix`, and `index` (the JSON that lists
        them) the object at `index_key`: a reader that follows the index never meets a missing
        file, and a failure leaves the previous set and index in place."""

    # -- handing out ---------------------------------------------------------------------------
    @abstractmethod
    def media_input(self, key: str) -> AbstractContextManager[Path | str]:
        """What ffprobe, ffmpeg and PyAV open to read the object: a local path, or a URL of the
        store; valid until the context exits."""

    def probe_input(self, key: str) -> AbstractContextManager[Path | str]:
        """What ffprobe opens to read the object's headers: the object's own URL where the store
        has one (read by range requests, never whole), else what `media_input` gives; valid until
        the context exits."""
        return self.media_input(key)

    @abstractmethod
    def presigned_get(self, key: str, expires_s: int) -> str | None:
        """A URL that fetches the object without other credentials, or None when the store has no
        URLs of its own (the API then serves the bytes under its own signed URL)."""

    @abstractmethod
    def served_file(self, key: str) -> ServedFile:
        """The file the API streams for `key` under its own signed URL, for a store without URLs of its own:
        a regular file of the store, reached without following a symbolic link anywhere on its way.
        ObjectNotFoundError when there is none (missing, no regular file, a link on the way), and on a
        store whose objects clients fetch from it directly (`presigned_get`)."""

    @abstractmethod
    def presigned_put(self, key: str, expires_s: int, content_type: str | None,
                      content_length: int) -> str | None:
        """A URL one PUT of `content_length` bytes stores the object at, or None when the store
        has no URLs of its own (the API then receives the bytes). The PUT must carry
        `PRESIGNED_PUT_HEADERS`: the URL creates the object once and never replaces it."""

    # -- health --------------------------------------------------------------------------------
    @abstractmethod
    def check(self) -> None:
        """Raise StorageUnavailableError when the store cannot be used (bucket missing, access
        denied, endpoint down)."""

    # -- receiving -----------------------------------------------------------------------------
    @abstractmethod
    def receiver(self, key: str, length: int) -> "UploadReceiver":
        """What receives an upload of `length` bytes for `key` over several requests (the API's PUT
        and tus): partial bytes under hidden names, the object whole at `key` once they are all in."""

    @abstractmethod
    def sweep_partial_uploads(self, prefix: str, before: float) -> int:
        """Remove what receivers left under `prefix` and last wrote before `before` (POSIX seconds):
        partial files on disk; `.tus/` objects and multipart uploads in a bucket. Answers how many
        were removed; whole objects are never touched, and sweeping again removes nothing more."""
