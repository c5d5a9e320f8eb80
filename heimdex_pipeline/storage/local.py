"""The local backend: objects are files under one root folder, keys their relative paths.

    <root>/uploads/<org_id>/...                       the upload bucket
    <root>/<org_id>/probes/<asset_id>.probe.json      probe metadata
    <root>/<org_id>/sidecars/<asset_id>.vna.json      the scene sidecar
    <root>/<org_id>/thumbnails/<asset_id>/NNNN.jpg    thumbnails
    <root>/schemas/sidecar.schema.json                the sidecar's JSON Schema

Every write goes to a hidden temporary file (or folder) beside its target, is fsync'ed, then
renamed into place, so a reader sees the old bytes or the new ones. A write that finds no space
left raises DiskFullError and leaves what was there before.
"""

import errno
import os
import shutil
import stat as stat_mode
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from heimdex_pipeline.storage.base import ObjectStore, ServedFile, StoredObject, json_bytes
from heimdex_pipeline.storage.errors import (
    DiskFullError,
    InvalidKeyError,
    ObjectNotFoundError,
    StorageUnavailableError,
)
from heimdex_pipeline.storage.layout import check_key
from heimdex_pipeline.storage.receive import LOCAL_PARTIAL_SUFFIX, LocalReceiver

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# What opening or stat'ing a path answers when nothing is there to read (as `Path.is_file` reads them):
# no such file, a file where a folder should be, a symlink loop, a directory.
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR, errno.ENAMETOOLONG)
# The store's own work in progress: hidden names ending in `.tmp` (see `_hidden_beside`).
_STAGING_SUFFIX = ".tmp"
_COPY_CHUNK = 1024 * 1024


def _disk_full(error: BaseException) -> bool:
    # ffmpeg reports the OS's own words in its message rather than an errno.
    if isinstance(error, OSError) and error.errno in _DISK_FULL:
        return True
    return any(os.strerror(code) in str(error) for code in _DISK_FULL)


@contextmanager
def disk_full_reported(what: str) -> Iterator[None]:
    """Raise a DiskFullError that says so when writing `what` fails for lack of space."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if _disk_full(exc):
            raise DiskFullError(what) from exc
        raise


def _absent(error: OSError) -> bool:
    return error.errno in _ABSENT


def _is_staging(name: str) -> bool:
    return name.startswith(".") and name.endswith(_STAGING_SUFFIX)


def _hidden_beside(path: Path, label: str = "") -> str:
    """The mkstemp/mkdtemp prefix of a hidden temporary name beside `path`."""
    return f".{path.name}.{label}"


def _stage_bytes(path: Path, source: bytes | BinaryIO) -> Path:
    """Write bytes to a hidden temporary file beside `path` and fsync it; nothing is left if that fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_hidden_beside(path), suffix=_STAGING_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(source, bytes):
                handle.write(source)
            else:
                shutil.copyfileobj(source, handle, _COPY_CHUNK)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def swap_dir(staged: Path, final: Path) -> None:
    """Replace `final` by `staged` so readers see the old set or the new one, never a mix."""
    # Moved aside without looking first: a deletion may remove `final` at any moment. The name is
    # unique, as two publishers of the prefix may each retire the set they found; a rename, never a
    # mkdir, so that a full disk cannot fail it.
    retired: Path | None = final.with_name(f"{_hidden_beside(final, f'old-{uuid.uuid4().hex}')}{_STAGING_SUFFIX}")
    try:
        os.replace(final, retired)
    except FileNotFoundError:
        retired = None
    try:
        os.replace(staged, final)
    except BaseException:
        if retired is not None:
            os.replace(retired, final)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


class LocalStore(ObjectStore):
    """Objects as files under `root` (the derived root): keys are paths relative to it."""

    backend = "local"
    objects_appear_whole = False

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- naming --------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        """The file of `key`; InvalidKeyError for a bad key or one whose folders lead out of the root."""
        path = self.root / check_key(key)
        # A symlinked folder (or file) on the way must not lead out of the root.
        if not Path(os.path.realpath(path)).is_relative_to(self.root):
            raise InvalidKeyError("storage key leads out of the store")
        return path

    def uri(self, key: str) -> str:
        return (self.root / check_key(key)).as_uri()

    def key_of(self, uri: str) -> str:
        """The key of a `file://` URI inside the root.

        The URI is percent-decoded, then resolved with symlinks followed, so `..`, `%2e%2e`, other
        hosts, other schemes (`http:`, `concat:`, `data:`...) and links pointing out are all
        refused. Only a key ever leaves this function: no URL is fetched (no SSRF). Messages never
        name the server's paths.
        """
        if any(c < " " or c == "\x7f" for c in uri):
            # urlsplit silently drops tabs and newlines: `x\n.mp4` would name `x.mp4`.
            raise InvalidKeyError("source_uri holds a control character")
        parts = urlsplit(uri)
        if parts.scheme != "file":
            raise InvalidKeyError("source_uri must be a file:// URI")
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise InvalidKeyError("source_uri must name a local file, without host, query or fragment")
        path = unquote(parts.path)
        if "\x00" in path or not path.startswith("/") or ".." in Path(path).parts:
            raise InvalidKeyError("source_uri must be an absolute path without '..'")
        real = Path(os.path.realpath(path))
        if real == self.root or not real.is_relative_to(self.root):
            raise InvalidKeyError("source_uri must name a file inside the store")
        key = real.relative_to(self.root).as_posix()
        try:
            return check_key(key)
        except InvalidKeyError as exc:
            raise InvalidKeyError(f"source_uri names no valid key: {exc}") from None

    # -- reading -------------------------------------------------------------------------------
    def stat(self, key: str) -> StoredObject | None:
        try:
            found = self.path(key).stat()
        except OSError as exc:
            if _absent(exc):
                return None
            raise
        if not stat_mode.S_ISREG(found.st_mode):
            return None
        return StoredObject(key, found.st_size, str(found.st_mtime_ns), found.st_mtime)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[StoredObject]:
        # Walk from the deepest folder the prefix names; each folder is read whole, sorted by
        # key (a folder sorts as `name/`, which is where its keys fall in key order).
        folder = prefix.rpartition("/")[0]
        if folder:
            check_key(folder)
        yield from self._walk(self.root / folder if folder else self.root, f"{folder}/" if folder else "",
                              prefix, start_after or "")

    def _walk(self, directory: Path, base: str, prefix: str, after: str) -> Iterator[StoredObject]:
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        named = []
        for entry in entries:
            if _is_staging(entry.name):
                continue  # this store's own writes in progress
            if entry.is_dir(follow_symlinks=False):
                named.append((f"{base}{entry.name}/", entry, True))
            elif entry.is_file(follow_symlinks=False):  # symlinks and special files are never objects
                named.append((f"{base}{entry.name}", entry, False))
        for key, entry, is_dir in sorted(named, key=lambda item: item[0]):
            if is_dir:
                # A folder is entered only if it can hold keys of the prefix past `after`.
                relevant = key.startswith(prefix) or prefix.startswith(key)
                if relevant and (after < key or after.startswith(key)):
                    yield from self._walk(Path(entry.path), key, prefix, after)
                continue
            if not key.startswith(prefix) or key <= after:
                continue
            try:
                found = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield StoredObject(key, found.st_size, str(found.st_mtime_ns), found.st_mtime)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except OSError as exc:
            if _absent(exc):
                raise ObjectNotFoundError(f"nothing is stored at {key}") from None
            raise

    def iter_bytes(self, key: str, start: int = 0, length: int | None = None,
                   chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        try:
            handle = self.path(key).open("rb")
        except OSError as exc:
            if _absent(exc):
                raise ObjectNotFoundError(f"nothing is stored at {key}") from None
            raise
        with handle:
            handle.seek(start)
            left = length
            while left is None or left > 0:
                chunk = handle.read(chunk_size if left is None else min(chunk_size, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    # -- writing -------------------------------------------------------------------------------
    def _replace(self, key: str, source: bytes | BinaryIO) -> None:
        path = self.path(key)
        with disk_full_reported(path.name):
            tmp = _stage_bytes(path, source)
        try:
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self._replace(key, data)

    def write_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        with path.open("rb") as handle:
            self._replace(key, handle)

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except OSError as exc:
            if not _absent(exc):
                raise

    def delete_prefix(self, prefix: str) -> int:
        """Remove the files under `prefix`, then its folders left empty (the folder of `prefix` included)."""
        count = super().delete_prefix(prefix)
        # Deepest first, without looking before: another deletion of the same prefix may remove any
        # of these folders at any moment (os.walk skips a folder gone before it is read).
        for folder, _, _ in os.walk(self.path(prefix.rstrip("/")), topdown=False):
            try:
                os.rmdir(folder)
            except OSError:
                pass  # gone already, or not empty: something was written there since, or is not an object
        return count

    def prepare_prefix(self, prefix: str) -> None:
        """Make the folder of `prefix`, where a client copies its file."""
        folder = self.path(prefix.rstrip("/"))
        try:
            with disk_full_reported(folder.name):
                folder.mkdir(parents=True, exist_ok=True)
        except DiskFullError:
            raise
        except OSError as exc:
            # The root is no folder we can write to (a file, a read-only mount): the storage's state, not the request's.
            raise StorageUnavailableError("the storage root is not a writable folder") from exc

    @contextmanager
    def scratch_dir(self, prefix: str) -> Iterator[Path]:
        """A hidden folder beside the prefix's own: on the same filesystem, so publishing is a rename."""
        final = self.path(prefix.rstrip("/"))
        with disk_full_reported(final.name):
            final.parent.mkdir(parents=True, exist_ok=True)
            staged = Path(tempfile.mkdtemp(prefix=_hidden_beside(final), suffix=_STAGING_SUFFIX, dir=final.parent))
        try:
            yield staged
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def publish_dir(self, staged: Path, prefix: str, index_key: str, index: Any) -> None:
        """Swap the folder in whole, the index staged first: a full disk then fails before either
        changes, and only two renames remain."""
        final = self.path(prefix.rstrip("/"))
        index_path = self.path(index_key)
        if staged.parent != final.parent:
            # Not one of our scratch folders: copy it beside the target first, so the swap is a rename.
            with self.scratch_dir(prefix) as beside:
                with disk_full_reported(final.name):
                    shutil.copytree(staged, beside, dirs_exist_ok=True)
                self.publish_dir(beside, prefix, index_key, index)
            return
        if index_key.startswith(prefix):
            # An index inside the folder (a storyboard's JSON) is swapped in with it.
            staged_index = staged / index_key[len(prefix):]
            with disk_full_reported(index_path.name):
                _stage_bytes(staged_index, json_bytes(index)).replace(staged_index)
            swap_dir(staged, final)
            return
        with disk_full_reported(index_path.name):
            tmp = _stage_bytes(index_path, json_bytes(index))
        try:
            swap_dir(staged, final)
            os.replace(tmp, index_path)
        finally:
            tmp.unlink(missing_ok=True)

    # -- handing out ---------------------------------------------------------------------------
    @contextmanager
    def media_input(self, key: str) -> Iterator[Path]:
        yield self.path(key)

    def presigned_get(self, key: str, expires_s: int) -> str | None:
        return None

    def served_file(self, key: str) -> ServedFile:
        """Walk from the root one folder at a time, none of them a link (`O_NOFOLLOW`), and take the
        last name only if it is a regular file: a link planted in the derived folder, pointing out of
        the root or at another object (an upload served as a JPEG), is no file of this key."""
        *folders, name = check_key(key).split("/")
        try:
            fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY)
            try:
                for folder in folders:
                    inner = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                    os.close(fd)
                    fd = inner
                found = os.stat(name, dir_fd=fd, follow_symlinks=False)
            finally:
                os.close(fd)
        except OSError as exc:
            if _absent(exc):
                raise ObjectNotFoundError(f"nothing is stored at {key}") from None
            raise
        if not stat_mode.S_ISREG(found.st_mode):
            raise ObjectNotFoundError(f"no regular file is stored at {key}")
        return ServedFile(self.root / key, found)

    def presigned_put(self, key: str, expires_s: int, content_type: str | None,
                      content_length: int) -> str | None:
        return None

    # -- receiving -----------------------------------------------------------------------------
    def receiver(self, key: str, length: int) -> LocalReceiver:
        # The folder must lie inside the root; the file itself is replaced by a rename, never followed.
        folder = check_key(key).rpartition("/")[0]
        if folder:
            self.path(folder)
        return LocalReceiver(self.root, key, length)

    def sweep_partial_uploads(self, prefix: str, before: float) -> int:
        """Remove the partial files (`.<name>.part`) under `prefix` last written before `before`."""
        folder = self.path(prefix.rstrip("/"))
        removed = 0
        for directory, _, names in os.walk(folder):
            for name in names:
                if not (name.startswith(".") and name.endswith(LOCAL_PARTIAL_SUFFIX)):
                    continue
                path = Path(directory) / name
                try:
                    if path.lstat().st_mtime < before:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue  # completed (renamed into place) or removed meanwhile
        return removed

    # -- health --------------------------------------------------------------------------------
    def check(self) -> None:
        """The root must be a writable folder (made if missing)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError:
            raise StorageUnavailableError("the storage root cannot be created") from None
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailableError("the storage root is not a writable folder")
