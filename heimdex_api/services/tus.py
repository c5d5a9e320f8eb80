"""Receiving an upload over HTTP: one signed `PUT` of the whole file, or tus 1.0 at the resumable URL.

tus 1.0 (https://tus.io/protocols/resumable-upload) is spoken here by hand, with the core protocol
and the checksum, expiration and termination extensions; creation is init's job. The tus server
libraries for FastAPI were weighed and left: tuspyserver keeps uploads in a local folder only
(no pluggable store, no checksum extension), fastapi-tusd's checksum is md5 and its stores are
its own; neither takes our signed URLs, our upload rows or the `ObjectStore`'s S3 multipart.

The bytes of a request are read as they arrive (never the whole body in memory), gathered into
blocks of `BLOCK_BYTES` (lists of the chunks received), and written by a worker thread, so disk and S3 never block the event
loop. A request cut short keeps what arrived (a tus client, or a new PUT, resumes from there);
more bytes than the upload's length answer 413 and keep nothing of that request.
"""

import asyncio
import base64
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from email.utils import formatdate
from typing import Any
from weakref import WeakValueDictionary

import anyio.to_thread
from starlette.requests import ClientDisconnect

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import ApiError, BadRequest, ChecksumMismatch, Conflict, NotFound, PayloadTooLarge
from heimdex_api.core.signing import url_signer
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Upload
from heimdex_pipeline.logs import get_logger
from heimdex_pipeline.storage import ObjectStore
from heimdex_pipeline.storage.receive import Append, OffsetMismatchError, UploadReceiver

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "checksum,expiration,termination"
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
# Bytes handed to a worker thread at a time: few thread hops, little memory, and little left to
# write once a request's last byte arrived (tus answers only then).
BLOCK_BYTES = 2 * 1024 * 1024


# One request at a time writes an upload: a second one, a client retrying while its first
# connection is still being read, answers 409 and asks HEAD again. In this process, an asyncio
# lock; among the API's worker processes on this host, a POSIX lock on one byte of a shared file,
# at an offset drawn from the upload id (the kernel drops it with the process that held it).
_locks: "WeakValueDictionary[str, asyncio.Lock]" = WeakValueDictionary()
_HOST_LOCK_FILE = Path(tempfile.gettempdir()) / "heimdex-upload-locks"


@cache
def _host_lock_fd() -> int:
    # Opened once and never closed: closing any descriptor of the file drops the process's locks on it.
    return os.open(_HOST_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)


@contextmanager
def _host_lock(upload_id: str) -> Iterator[bool]:
    """Hold the upload's lock among this host's processes while the block runs; False if another holds it."""
    offset = int.from_bytes(hashlib.blake2b(upload_id.encode(), digest_size=5).digest(), "big")
    fd = _host_lock_fd()
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)


def upload_key(upload: Upload) -> str:
    """The key of the upload's file: `uploads/<org>/<upload_id>/<source_name>`."""
    return f"{upload.prefix}{upload.source_name}"


def upload_receiver(store: ObjectStore, upload: Upload) -> UploadReceiver:
    """The receiver of the upload's bytes on the store."""
    return store.receiver(upload_key(upload), upload.content_length)


@dataclass(frozen=True)
class SignedUrls:
    """What init answers for an upload: its URLs and their expiry."""

    upload_url: str
    resumable_url: str
    expires: int


def sign_upload(settings: ApiSettings, base_url: str, org_id: str, upload_id: str) -> SignedUrls:
    """The API's PUT and tus URLs of an upload, signed for it (its org and id are in the path) until the TTL."""
    expires = int(time.time()) + settings.upload_url_ttl_s
    query = url_signer(settings).sign("upload", org_id, upload_id, expires)
    path = f"{settings.base_url(base_url)}/v1/uploads/{org_id}/{upload_id}"
    suffix = f"?expires={query['expires']}&sig={query['sig']}"
    return SignedUrls(f"{path}{suffix}", f"{path}/tus{suffix}", expires)


def verify_upload_url(settings: ApiSettings, org_id: str, upload_id: str, expires: str | None,
                      sig: str | None) -> int:
    """403 unless the URL is signed for this upload of this org and unexpired; its expiry."""
    url_signer(settings).verify("upload", org_id, upload_id, expires, sig)
    return int(expires or 0)


def load_upload(settings: ApiSettings, org_id: str, upload_id: str, *, writable: bool) -> Upload:
    """The upload (404 when gone); with `writable`, 409 once a commit has it."""
    with session_scope(settings.catalog_url) as session:
        upload = session.get(Upload, upload_id)
        if upload is not None:
            session.expunge(upload)
    if upload is None or upload.org_id != org_id:
        raise NotFound("no such upload: it was terminated, or never made", code="upload_not_found")
    if writable and upload.status != "pending":
        raise Conflict({"message": "the upload is already committed", "asset_id": upload.asset_id},
                       code="upload_already_committed")
    return upload


def http_date(unix_s: int) -> str:
    """RFC 7231's date format, as `Upload-Expires` takes it."""
    return formatdate(unix_s, usegmt=True)


def parse_checksum(header: str | None) -> tuple[Any, bytes] | None:
    """`Upload-Checksum: <algorithm> <base64 digest>` as (a fresh hash, the digest); 400 if unusable."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise BadRequest(f"Upload-Checksum: algorithm {algorithm!r} is not one of "
                         f"{', '.join(CHECKSUM_ALGORITHMS)}", code="checksum_algorithm_unsupported")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:
        raise BadRequest("Upload-Checksum: the digest is not base64", code="invalid_upload_header") from None
    return CHECKSUM_ALGORITHMS[algorithm](), digest


def parse_offset(header: str | None) -> int:
    if header is None or not (header.isascii() and header.isdigit()):
        raise BadRequest("Upload-Offset must be a non-negative integer", code="invalid_upload_header")
    return int(header)


def declared_length(header: str | None) -> int | None:
    """The request's Content-Length (None for a chunked body); 400 when it is no number."""
    if header is None:
        return None
    if not (header.isascii() and header.isdigit()):
        raise BadRequest("Content-Length must be a non-negative integer", code="invalid_upload_header")
    return int(header)


def _write_block(append: Append, chunks: list[bytes], checksum: Any) -> None:
    for chunk in chunks:
        if checksum is not None:
            checksum.update(chunk)
        append.write(chunk)


class _BlockWriter:
    """Gathers a request's chunks into blocks and writes each in a worker thread while the next arrives.

    A block is a list of the chunks as received (not joined: the event loop copies nothing, the
    store copies each chunk once, where it needs it). One block is written at a time, in order;
    receiving the next one meanwhile keeps the client sending and both cores busy.
    """

    def __init__(self, append: Append, checksum: Any) -> None:
        self.append, self.checksum = append, checksum
        self.block: list[bytes] = []
        self.gathered = 0  # bytes in `block`
        self.received = 0
        self.pending: asyncio.Future[None] | None = None

    async def add(self, chunk: bytes) -> None:
        self.block.append(chunk)
        self.gathered += len(chunk)
        self.received += len(chunk)
        if self.gathered >= BLOCK_BYTES:
            await self._start()

    async def _start(self) -> None:
        await self.settle()
        chunks, self.block, self.gathered = self.block, [], 0
        self.pending = asyncio.get_running_loop().run_in_executor(None, _write_block, self.append, chunks,
                                                                  self.checksum)

    async def settle(self) -> None:
        """Wait for the block being written (its error, if any, is raised)."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            await pending

    async def flush(self) -> None:
        """Write what is left, and wait until every byte received is written."""
        await self._start()
        await self.settle()


async def receive(settings: ApiSettings, store: ObjectStore, upload: Upload, stream: AsyncIterator[bytes], *, offset: int,
                  restart: bool, checksum: tuple[Any, bytes] | None = None) -> int:
    """Append the request's bytes to the upload at `offset` (`restart`: the whole file from 0); the new offset.

    409 `upload_offset_mismatch` when the kept bytes do not end at `offset`, 409 `upload_busy`
    while another request writes the upload, 413 `upload_length_exceeded` (nothing of this
    request kept) past the upload's length, 460 `checksum_mismatch` (nothing kept) when the
    bytes do not match the checksum. A client that goes away leaves the bytes that arrived.
    """
    busy = Conflict("another request is writing this upload; ask HEAD for its offset", code="upload_busy")
    lock = _locks.setdefault(upload.upload_id, asyncio.Lock())
    if lock.locked():
        raise busy
    async with lock:
        with _host_lock(upload.upload_id) as held:
            if not held:
                raise busy
            return await _receive(settings, store, upload, stream, offset=offset, restart=restart, checksum=checksum)


async def _receive(settings: ApiSettings, store: ObjectStore, upload: Upload, stream: AsyncIterator[bytes], *,
                   offset: int, restart: bool, checksum: tuple[Any, bytes] | None) -> int:
    log = get_logger("api", org_id=upload.org_id, upload_id=upload.upload_id)
    started = time.monotonic()
    receiver = upload_receiver(store, upload)
    try:
        append = await anyio.to_thread.run_sync(receiver.append, offset, restart)
    except OffsetMismatchError as exc:
        raise Conflict({"message": f"the upload's bytes end at {exc.offset}, not at {offset}",
                        "offset": exc.offset}, code="upload_offset_mismatch") from None
    hasher = checksum[0] if checksum else None
    writer = _BlockWriter(append, hasher)
    room = upload.content_length - append.start  # read once: an ORM attribute costs per chunk
    try:
        async for chunk in stream:
            if writer.received + len(chunk) > room:
                raise PayloadTooLarge(f"more bytes than the upload's length, {upload.content_length}",
                                      code="upload_length_exceeded")
            await writer.add(chunk)
        await writer.flush()
    except ClientDisconnect:
        # tus keeps what arrived, so the client resumes from there (HEAD); a PUT cut short
        # leaves an incomplete upload, which commit refuses (409 upload_incomplete). Bytes
        # under a checksum cannot be verified without the rest: they are dropped.
        if checksum is not None:
            await writer.settle()
            await anyio.to_thread.run_sync(append.drop)
            return append.start
        await writer.flush()
        kept = await anyio.to_thread.run_sync(append.save)
        log.warning("upload.cut_short", offset=kept, length=upload.content_length)
        return kept
    except BaseException:
        await writer.settle()
        await anyio.to_thread.run_sync(append.drop)
        raise
    if checksum is not None and hasher.digest() != checksum[1]:
        await anyio.to_thread.run_sync(append.drop)
        raise ChecksumMismatch("the bytes do not match Upload-Checksum; nothing of them was kept")
    if append.offset == upload.content_length:
        # A commit that took the upload meanwhile is reading its file: this one must not replace it.
        try:
            await anyio.to_thread.run_sync(lambda: load_upload(settings, upload.org_id, upload.upload_id,
                                                               writable=True))
        except ApiError:
            await anyio.to_thread.run_sync(append.drop)
            raise
    kept = await anyio.to_thread.run_sync(append.save)
    log.info("upload.received", offset=kept, length=upload.content_length, complete=kept == upload.content_length,
             received=kept - offset if not restart else kept, elapsed_s=round(time.monotonic() - started, 3))
    return kept
