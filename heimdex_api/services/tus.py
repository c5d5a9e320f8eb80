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
import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import (
    ApiError,
    BadRequest,
    ChecksumMismatch,
    Conflict,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from heimdex_api.core.signing import url_signer
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Upload
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.storage import ObjectStore
from heimdex_pipeline.storage.receive import Append, OffsetMismatchError, UploadReceiver
from heimdex_pipeline.uploads.lock import TERMINATING, new_token, release_lock, renew_lock, take_lock, upload_key

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "checksum,expiration,termination"
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
# Bytes handed to a worker thread at a time: few thread hops, little memory, and little left to
# write once a request's last byte arrived (tus answers only then).
BLOCK_BYTES = 2 * 1024 * 1024
# How often a writing request renews its lock on the upload, and so how soon it learns that the
# upload was ended (a termination waits that long for it at most).
RENEW_S = 1.0


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
    if upload is None or upload.org_id != org_id or upload.status == TERMINATING:
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


class _WriteLease:
    """One request's hold on the upload's write lock (heimdex_pipeline.uploads.lock), renewed every RENEW_S.

    A renewal that finds the upload ended sets `ended` and cancels the request's work (even while
    it waits for a slow client's next bytes); `check` refuses a write once the lease may have
    lapsed (the catalog stopped answering), since a termination may then have taken the lock.
    """

    def __init__(self, settings: ApiSettings, upload_id: str, token: str, taken_at: float) -> None:
        self.catalog_url, self.upload_id, self.token = settings.catalog_url, upload_id, token
        self.lease_s = settings.upload_lock_lease_s
        self.valid_until = taken_at + self.lease_s - RENEW_S
        self.ended = False

    def check(self) -> None:
        if self.ended:
            raise NotFound("the upload was terminated while this request wrote it", code="upload_not_found")
        if time.monotonic() > self.valid_until:
            raise Unavailable("the catalog did not answer: the upload's lock could not be kept",
                              code="database_unavailable")

    async def keep(self, scope: anyio.CancelScope) -> None:
        while True:
            await anyio.sleep(RENEW_S)
            asked_at = time.monotonic()
            try:
                held = await anyio.to_thread.run_sync(renew_lock, self.catalog_url, self.upload_id, self.token,
                                                      self.lease_s)
            except Exception as exc:  # noqa: BLE001 (catalog down: `check` stops writing once the lease may lapse)
                get_logger("api", upload_id=self.upload_id).warning("upload.lock_not_renewed", error=str(exc)[:300])
                continue
            if not held:
                self.ended = True
                scope.cancel()
                return
            self.valid_until = asked_at + self.lease_s - RENEW_S


def _write_block(append: Append, chunks: list[bytes], checksum: Any, lease: _WriteLease) -> None:
    lease.check()
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

    def __init__(self, append: Append, checksum: Any, lease: _WriteLease) -> None:
        self.append, self.checksum, self.lease = append, checksum, lease
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
                                                                  self.checksum, self.lease)

    async def settle(self) -> None:
        """Wait for the block being written (its error, if any, is raised).

        Shielded: a request cancelled meanwhile leaves the block's write running and pending, for
        the next `settle` to wait for before the append is dropped."""
        if self.pending is not None:
            await asyncio.shield(self.pending)
            self.pending = None

    async def flush(self) -> None:
        """Write what is left, and wait until every byte received is written."""
        await self._start()
        await self.settle()


async def receive(settings: ApiSettings, store: ObjectStore, upload: Upload, stream: AsyncIterator[bytes], *, offset: int,
                  restart: bool, checksum: tuple[Any, bytes] | None = None) -> int:
    """Append the request's bytes to the upload at `offset` (`restart`: the whole file from 0); the new offset.

    409 `upload_offset_mismatch` when the kept bytes do not end at `offset`, 409 `upload_busy`
    while another request (in any API process) writes the upload, 413 `upload_length_exceeded`
    (nothing of this request kept) past the upload's length, 460 `checksum_mismatch` (nothing
    kept) when the bytes do not match the checksum, 404 `upload_not_found` when the upload is
    ended (tus DELETE) while this request writes it: it stops at once and writes nothing more,
    and the termination removes what it wrote. A client that goes away leaves the bytes that arrived.
    """
    token, taken_at = new_token(), time.monotonic()
    if not await anyio.to_thread.run_sync(take_lock, settings.catalog_url, upload.upload_id, token,
                                          settings.upload_lock_lease_s):
        # Gone, ended or committed meanwhile (404, 409), or being written by another request.
        await anyio.to_thread.run_sync(lambda: load_upload(settings, upload.org_id, upload.upload_id, writable=True))
        raise Conflict("another request is writing this upload; ask HEAD for its offset", code="upload_busy")
    lease = _WriteLease(settings, upload.upload_id, token, taken_at)
    error: Exception | None = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(lease.keep, group.cancel_scope)
            try:
                kept = await _receive_locked(settings, store, upload, stream, lease, offset=offset, restart=restart,
                                             checksum=checksum)
            except Exception as exc:  # raised below as is, not wrapped in the task group's ExceptionGroup
                error = exc
            group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(release_lock, settings.catalog_url, upload.upload_id, token)
    if lease.ended:
        get_logger("api", org_id=upload.org_id, upload_id=upload.upload_id).info("upload.write_stopped_by_termination")
        raise NotFound("the upload was terminated while this request wrote it; nothing of it is kept",
                       code="upload_not_found")
    if error is not None:
        raise error
    return kept


async def _receive_locked(settings: ApiSettings, store: ObjectStore, upload: Upload, stream: AsyncIterator[bytes],
                          lease: _WriteLease, *, offset: int, restart: bool,
                          checksum: tuple[Any, bytes] | None) -> int:
    """`receive`'s work, under the upload's lock; cancelled when the upload is ended meanwhile, when
    it waits for the block being written and forgets the bytes (shielded: a write in a worker
    thread cannot be interrupted, and the append must not be dropped while one runs)."""
    log = get_logger("api", org_id=upload.org_id, upload_id=upload.upload_id)
    started = time.monotonic()
    receiver = upload_receiver(store, upload)
    try:
        append = await anyio.to_thread.run_sync(receiver.append, offset, restart)
    except OffsetMismatchError as exc:
        raise Conflict({"message": f"the upload's bytes end at {exc.offset}, not at {offset}",
                        "offset": exc.offset}, code="upload_offset_mismatch") from None
    hasher = checksum[0] if checksum else None
    writer = _BlockWriter(append, hasher, lease)
    room = upload.content_length - append.start  # read once: an ORM attribute costs per chunk

    async def drop() -> None:
        with anyio.CancelScope(shield=True):
            with suppress(Exception):  # the block's error, if any, is already on its way
                await writer.settle()
            await anyio.to_thread.run_sync(append.drop)

    def save() -> int:
        try:
            lease.check()
        except ApiError:
            append.drop()
            raise
        return append.save()

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
            await drop()
            return append.start
        try:
            await writer.flush()
        except BaseException:
            await drop()
            raise
        kept = await anyio.to_thread.run_sync(save)
        log.warning("upload.cut_short", offset=kept, length=upload.content_length)
        return kept
    except BaseException:
        await drop()
        raise
    try:
        if checksum is not None and hasher.digest() != checksum[1]:
            raise ChecksumMismatch("the bytes do not match Upload-Checksum; nothing of them was kept")
        if append.offset == upload.content_length:
            # A commit that took the upload meanwhile is reading its file: this one must not replace it.
            await anyio.to_thread.run_sync(lambda: load_upload(settings, upload.org_id, upload.upload_id,
                                                               writable=True))
    except BaseException:
        await drop()
        raise
    kept = await anyio.to_thread.run_sync(save)
    log.info("upload.received", offset=kept, length=upload.content_length, complete=kept == upload.content_length,
             received=kept - offset if not restart else kept, elapsed_s=round(time.monotonic() - started, 3))
    return kept
