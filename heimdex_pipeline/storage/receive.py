"""Receiving an upload's bytes in order, over several requests, into the object at its key.

    UploadReceiver          one upload: its offset, an append from that offset, termination
    ├── LocalReceiver       a hidden partial file beside the target, renamed into place when whole
    └── S3Receiver          an S3 multipart upload into the target key, the tail below 5 MiB
                            kept in a hidden object until the next bytes arrive (as tusd's s3store)

An `Append` is one request's bytes: `write` them, then `save` (keep them: a request cut short
keeps what arrived, and the upload becomes the object once the bytes reach its length) or
`drop` (forget them: a checksum mismatch, more bytes than declared). Nothing incomplete is ever
at the target key: the partial state lives under hidden names (a segment starting with '.'),
which the sensor skips. The calls block (disk, network): the API runs them in worker threads.
"""

import errno
import functools
import json
import mmap
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import Any

from heimdex_pipeline.storage.errors import StorageError

# S3's own limits: every part but the last at least 5 MiB, at most 10,000 parts.
S3_MIN_PART_BYTES = 5 * 1024 * 1024
S3_MAX_PARTS = 10_000
# Parts of 8 MiB (more for files over 80 GB): few requests, and the memory of one part per append.
S3_PART_BYTES = 8 * 1024 * 1024
# The hidden names of partial state: `.<name>.part` beside the target on disk, `<folder>/.tus/` in a bucket.
LOCAL_PARTIAL_SUFFIX = ".part"
S3_STATE_FOLDER = ".tus"


class OffsetMismatchError(StorageError):
    """An append did not start where the upload's bytes end; `offset` is where they do."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"the upload's bytes end at offset {offset}")
        self.offset = offset


class Append(ABC):
    """One request's bytes, appended at the upload's offset."""

    def __init__(self, start: int, length: int) -> None:
        self.start, self.length, self.written = start, length, 0

    @property
    def offset(self) -> int:
        """Where the upload's bytes would end if this append were saved."""
        return self.start + self.written

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append `data` (the caller never writes past the upload's length)."""
        if self.offset + len(data) > self.length:
            raise ValueError("write past the upload's length")
        self._write(data)
        self.written += len(data)

    @abstractmethod
    def _write(self, data: bytes | bytearray | memoryview) -> None: ...

    @abstractmethod
    def save(self) -> int:
        """Keep the bytes written (durably), completing the upload when they reach its length; the new offset."""

    @abstractmethod
    def drop(self) -> None:
        """Forget the bytes written by this append: the upload's offset is `start` again."""


class UploadReceiver(ABC):
    """One upload of `length` bytes into the object at `key`."""

    def __init__(self, key: str, length: int) -> None:
        self.key, self.length = key, length
        folder, _, self.name = key.rpartition("/")
        self.folder = f"{folder}/" if folder else ""

    @abstractmethod
    def offset(self) -> int:
        """How many bytes are kept (the length once the object is whole)."""

    @abstractmethod
    def is_complete(self) -> bool:
        """Whether the object is whole at its key: there, and of the upload's length."""

    @abstractmethod
    def append(self, offset: int, restart: bool = False) -> Append:
        """Begin appending at `offset` (OffsetMismatchError unless the kept bytes end there);
        `restart` drops whatever was kept and begins at 0 (a whole-file PUT)."""

    @abstractmethod
    def terminate(self) -> None:
        """Forget the upload's bytes, partial and whole."""


# -- local disk -----------------------------------------------------------------------------------


# O_DIRECT writes: offsets, lengths and memory aligned to 4 KiB (what ext4, xfs and btrfs ask at
# most), in blocks of 2 MiB (one disk write each, while the next block arrives; as fast as 4 or
# 16 MiB here, and less to write after a request's last byte).
DIRECT_ALIGN = 4096
DIRECT_BLOCK_BYTES = 2 * 1024 * 1024


def _open_direct(path: Path) -> int | None:
    """A second descriptor of `path` for O_DIRECT writes; None where the OS or the filesystem has none."""
    if not hasattr(os, "O_DIRECT"):
        return None
    try:
        return os.open(path, os.O_WRONLY | os.O_DIRECT)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise


def _write_all(fd: int, data: memoryview, at: int) -> None:
    while data:
        done = os.pwrite(fd, data, at)
        data, at = data[done:], at + done


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalReceiver(UploadReceiver):
    """Bytes appended to `.<name>.part` beside the target, fsync'ed, renamed to `<name>` when whole."""

    def __init__(self, root: Path, key: str, length: int) -> None:
        super().__init__(key, length)
        self.target = root / key
        self.partial = self.target.with_name(f".{self.target.name}{LOCAL_PARTIAL_SUFFIX}")

    def is_complete(self) -> bool:
        try:
            found = self.target.stat()
        except FileNotFoundError:
            return False
        return stat.S_ISREG(found.st_mode) and found.st_size == self.length

    def offset(self) -> int:
        if self.is_complete():
            return self.length
        try:
            return self.partial.stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, offset: int, restart: bool = False) -> "LocalAppend":
        if restart:
            offset = 0
        elif self.is_complete() or offset != self.offset():
            # A whole upload takes no more bytes, not even an empty append (which would leave a partial).
            raise OffsetMismatchError(self.offset())
        self.target.parent.mkdir(parents=True, exist_ok=True)
        # "r+b" keeps the bytes before `offset`; O_CREAT without O_TRUNC for a first append.
        fd = os.open(self.partial, os.O_RDWR | os.O_CREAT, 0o644)
        file = os.fdopen(fd, "r+b", buffering=0)
        file.truncate(offset)
        file.seek(offset)
        return LocalAppend(self, file, offset)

    def terminate(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.target.unlink(missing_ok=True)
        try:
            self.target.parent.rmdir()  # the upload's folder, once nothing else is in it
        except OSError:
            pass


class LocalAppend(Append):
    """Bytes written past the page cache (O_DIRECT) in aligned blocks, the unaligned head and tail through it.

    Copying into the page cache was most of an upload's cost (the kernel's copy into freshly
    allocated cache pages, up to 2 s of system time per GiB on a busy VM, against 0.05 s for the
    same GiB by O_DIRECT), and the pages were then written back and dropped anyway. The bytes are
    gathered into one reused, page-aligned buffer and written from it straight to the disk; the
    few bytes before the first aligned offset and after the last full block go through the page
    cache. A filesystem without O_DIRECT (tmpfs) gets buffered writes, each block's writeback
    started at once. `save` fsyncs either way, so the offset it reports is durable.
    """

    def __init__(self, receiver: LocalReceiver, file: Any, start: int) -> None:
        super().__init__(start, receiver.length)
        self.receiver, self.file = receiver, file
        self.direct = _open_direct(receiver.partial)
        self.buffer = mmap.mmap(-1, DIRECT_BLOCK_BYTES)  # page-aligned, as O_DIRECT needs
        self.at, self.filled = start, 0  # the buffer's bytes: where they go in the file, how many
        # The first block ends at the first aligned offset, so that every later one starts at one.
        self.capacity = (-start) % DIRECT_ALIGN or DIRECT_BLOCK_BYTES

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            taken = min(len(view), self.capacity - self.filled)
            self.buffer[self.filled:self.filled + taken] = view[:taken]
            self.filled += taken
            view = view[taken:]
            if self.filled == self.capacity:
                self._flush()

    def _flush(self) -> None:
        """Write the buffer's bytes at their offset: the aligned part directly, the rest through the cache."""
        at, block = self.at, memoryview(self.buffer)[:self.filled]
        direct = len(block) - len(block) % DIRECT_ALIGN if self.direct is not None and at % DIRECT_ALIGN == 0 else 0
        if direct:
            try:
                _write_all(self.direct, block[:direct], at)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # The filesystem takes O_DIRECT at open but not these writes: the page cache it is.
                os.close(self.direct)
                self.direct, direct = None, 0
        if direct < len(block):
            _write_all(self.file.fileno(), block[direct:], at + direct)
            # Start writing these to disk now, so that `save`'s fsync finds little left to do.
            os.posix_fadvise(self.file.fileno(), at + direct, len(block) - direct, os.POSIX_FADV_DONTNEED)
        block.release()
        self.at, self.filled, self.capacity = at + self.filled, 0, DIRECT_BLOCK_BYTES

    def _close(self) -> None:
        if self.direct is not None:
            os.close(self.direct)
            self.direct = None
        with suppress(BufferError):  # a view of it still held by an exception's traceback: freed with it
            self.buffer.close()
        self.file.close()

    def save(self) -> int:
        try:
            if self.filled:
                self._flush()
            os.fsync(self.file.fileno())
        finally:
            self._close()
        if self.offset == self.length:
            os.replace(self.receiver.partial, self.receiver.target)
            _fsync_dir(self.receiver.target.parent)
        return self.offset

    def drop(self) -> None:
        try:
            self.file.truncate(self.start)
            os.fsync(self.file.fileno())
        finally:
            self._close()
        if self.start == 0:
            self.receiver.partial.unlink(missing_ok=True)


# -- S3 -------------------------------------------------------------------------------------------


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run an S3 method inside its receiver's `guard`, which turns the client's errors into storage errors."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        receiver = getattr(self, "receiver", self)
        with receiver.guard(f"receive the upload {receiver.key}"):
            return method(self, *args, **kwargs)

    return call


class S3Receiver(UploadReceiver):
    """An S3 multipart upload into `key`, its progress in the hidden `<folder>/.tus/state.json`.

    Parts are uploaded as the bytes arrive, in parts of `part_bytes` (the last one may be
    smaller); what is left below a part when a request ends is kept in `<folder>/.tus/tail`
    until the next request. The state object lists the parts and the tail's size, and is
    written once an append is saved, so the parts of a dropped append (a bad checksum) or of a
    request that died are not counted, and their numbers are used again. A file smaller than
    one part is stored by one PUT. The multipart upload completes into `key` when the bytes
    reach the length, so the object appears whole or not at all.
    """

    def __init__(self, client: Any, bucket: str, full_key: Callable[[str], str], key: str, length: int,
                 part_bytes: int = S3_PART_BYTES,
                 guard: Callable[[str], AbstractContextManager[Any]] = lambda doing: nullcontext()) -> None:
        super().__init__(key, length)
        # `guard(doing)`: the store's translation of boto3's errors (StorageUnavailableError: 503).
        self.client, self.bucket, self.full_key, self.guard = client, bucket, full_key, guard
        # Enough parts for the whole length, each at least S3's minimum.
        self.part_bytes = max(part_bytes, S3_MIN_PART_BYTES, -(-length // S3_MAX_PARTS))
        self.state_key = full_key(f"{self.folder}{S3_STATE_FOLDER}/state.json")
        self.tail_key = full_key(f"{self.folder}{S3_STATE_FOLDER}/tail")

    def _size(self, full_key: str) -> int | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=full_key)["ContentLength"]
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def state(self) -> dict[str, Any]:
        """`{"multipart": id or None, "parts": [{"PartNumber", "ETag", "size"}], "tail": size}`."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.state_key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return {"multipart": None, "parts": [], "tail": 0}
        return json.loads(body)

    def _save_state(self, state: dict[str, Any]) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.state_key, Body=json.dumps(state).encode(),
                               ContentType="application/json")

    @_guarded
    def is_complete(self) -> bool:
        # A shorter object (a presigned PUT of fewer bytes, where the store does not check the
        # signed length) is not the upload: an append from 0 replaces it.
        return self._size(self.full_key(self.key)) == self.length

    @_guarded
    def offset(self) -> int:
        state = self.state()
        kept = sum(part["size"] for part in state["parts"]) + state["tail"]
        if kept == 0 and self.is_complete():
            return self.length
        return kept

    @_guarded
    def append(self, offset: int, restart: bool = False) -> "S3Append":
        if restart:
            self._forget()
            state = self.state()
        else:
            state = self.state()
            kept = sum(part["size"] for part in state["parts"]) + state["tail"]
            if offset != kept or (kept == 0 and self.length > 0 and self.is_complete()):
                raise OffsetMismatchError(self.length if kept == 0 and self.is_complete() else kept)
        tail = b""
        if state["tail"]:
            # The first `tail` bytes: a request that died after writing a longer tail but before
            # saving the state wrote bytes that do not count.
            tail = self.client.get_object(Bucket=self.bucket, Key=self.tail_key,
                                          Range=f"bytes=0-{state['tail'] - 1}")["Body"].read()
        return S3Append(self, state, tail)

    def _forget(self) -> None:
        # Every multipart upload of the key, not only the state's: one opened by an append that
        # was never saved (its request died) is in no state.
        full = self.full_key(self.key)
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=full):
            for item in page.get("Uploads", ()):
                if item["Key"] == full:
                    abort_multipart(self.client, self.bucket, full, item["UploadId"])
        self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": self.tail_key},
                                                                           {"Key": self.state_key}]})

    @_guarded
    def terminate(self) -> None:
        self._forget()
        self.client.delete_object(Bucket=self.bucket, Key=self.full_key(self.key))


def abort_multipart(client: Any, bucket: str, full_key: str, upload_id: str) -> None:
    """Abort a multipart upload; one already aborted or completed is no error."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=full_key, UploadId=upload_id)
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
            raise


class S3Append(Append):
    def __init__(self, receiver: S3Receiver, state: dict[str, Any], tail: bytes) -> None:
        kept = sum(part["size"] for part in state["parts"])
        super().__init__(kept + len(tail), receiver.length)
        self.receiver, self.state = receiver, state
        self.parts: list[dict[str, Any]] = list(state["parts"])
        self.multipart: str | None = state["multipart"]
        self.buffer = bytearray(tail)

    def _upload_part(self, data: bytes) -> None:
        r = self.receiver
        if self.multipart is None:
            self.multipart = r.client.create_multipart_upload(Bucket=r.bucket, Key=r.full_key(r.key))["UploadId"]
        number = len(self.parts) + 1
        etag = r.client.upload_part(Bucket=r.bucket, Key=r.full_key(r.key), UploadId=self.multipart,
                                    PartNumber=number, Body=data)["ETag"]
        self.parts.append({"PartNumber": number, "ETag": etag, "size": len(data)})

    @_guarded
    def _write(self, data: bytes | bytearray) -> None:
        self.buffer += data
        size = self.receiver.part_bytes
        while len(self.buffer) >= size and sum(p["size"] for p in self.parts) + size < self.length:
            # A full part that is not the last (the last is uploaded by `save`).
            self._upload_part(bytes(self.buffer[:size]))
            del self.buffer[:size]

    @_guarded
    def save(self) -> int:
        r = self.receiver
        if self.offset == self.length:
            if self.multipart is None:
                r.client.put_object(Bucket=r.bucket, Key=r.full_key(r.key), Body=bytes(self.buffer))
            else:
                if self.buffer or not self.parts:
                    self._upload_part(bytes(self.buffer))
                r.client.complete_multipart_upload(
                    Bucket=r.bucket, Key=r.full_key(r.key), UploadId=self.multipart,
                    MultipartUpload={"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]}
                                               for p in self.parts]})
            r.client.delete_objects(Bucket=r.bucket, Delete={"Objects": [{"Key": r.tail_key}, {"Key": r.state_key}]})
            return self.offset
        if self.buffer:
            r.client.put_object(Bucket=r.bucket, Key=r.tail_key, Body=bytes(self.buffer))
        r._save_state({"multipart": self.multipart, "parts": self.parts, "tail": len(self.buffer)})
        return self.offset

    @_guarded
    def drop(self) -> None:
        # Nothing was recorded: the parts uploaded meanwhile are not in the state, and the next
        # append uploads its own under the same numbers.
        self.buffer.clear()
        if self.multipart is not None and self.state["multipart"] is None:
            r = self.receiver
            r.client.abort_multipart_upload(Bucket=r.bucket, Key=r.full_key(r.key), UploadId=self.multipart)
