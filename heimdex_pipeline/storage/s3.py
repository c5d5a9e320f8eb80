"""`S3Store`: the object store in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...), through boto3.

Keys are the layout's keys under an optional prefix of the bucket (`HEIMDEX_S3_PREFIX`).
URIs are `s3://<bucket>/<prefix><key>` with the key written verbatim, as the AWS CLI writes
them: no percent-encoding, so `key_of` never decodes anything and `%2e%2e` is a literal
segment name, not `..`. Every key, given or listed, passes `layout.check_key`.

Errors come out as the storage errors: `ObjectNotFoundError` for a missing object, and
`StorageUnavailableError` with the code the API answers 503 with: `storage_unavailable`
(endpoint down, timeout, 5xx), `storage_bucket_missing`, `storage_access_denied`.
"""

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.storage.base import PRESIGNED_PUT_HEADERS, ObjectStore, StoredObject
from heimdex_pipeline.storage.errors import (
    InvalidKeyError,
    ObjectNotFoundError,
    StorageError,
    StorageUnavailableError,
)
from heimdex_pipeline.storage.layout import check_key, key_problem
from heimdex_pipeline.storage.receive import S3_STATE_FOLDER, S3Receiver, abort_multipart

if TYPE_CHECKING:
    from heimdex_pipeline.core.settings import PipelineSettings

SCHEME = "s3://"
# ListObjectsV2's own maximum page.
MAX_PAGE_SIZE = 1000
# What S3 allows a presigned URL (SigV4): seven days.
MAX_PRESIGN_S = 7 * 24 * 3600
# Parallel uploads of one `publish_dir` (a video's thumbnails).
PUBLISH_THREADS = 8
# A dead endpoint fails in seconds: 2 s to connect, three attempts in all (standard retry mode
# backs off at most a second or two between them); a live one has 30 s to answer each read.
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"},
                       signature_version="s3v4", max_pool_connections=max(10, PUBLISH_THREADS * 2))
# Managed transfers: multipart above 64 MiB, in 16 MiB parts, 4 at a time.
TRANSFER_CONFIG = TransferConfig(multipart_threshold=64 * 2**20, multipart_chunksize=16 * 2**20, max_concurrency=4)
# The local scratch folders (staged files, media copies): `<tmp>/heimdex-s3-<kind>-<pid>-*`.
SCRATCH_PREFIX = "heimdex-s3-"
# How long the presigned GET a probe reads lasts: more than the probe's deadline (120 s by default).
PROBE_URL_S = 5 * 60
# A read cut off mid-stream goes on where it stopped, this many times, from the same version.
STREAM_RESUMES = 3

_ACCESS_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                           "ExpiredToken", "InvalidClientTokenId", "AllAccessDisabled", "AccountProblem", "403",
                           "Forbidden"})
_UNAVAILABLE_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
                                "RequestTimeTooSkewed", "Throttling", "ThrottlingException"})
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


# The user:password part of a URL, as botocore's messages may quote the endpoint.
_USERINFO = re.compile(r"//[^/@\s]*@")


def _redacted(text: str) -> str:
    """`text` with the user:password part of every URL in it removed, fit for a message."""
    return _USERINFO.sub("//", text)


class S3Store(ObjectStore):
    """Objects in one bucket of an S3-compatible store, under an optional key prefix.

    One boto3 client per store (boto3 clients are thread-safe; the session that makes it is
    not shared). `client`, `bucket` and `full_key` are public for what the interface does not
    cover (the API's multipart uploads).
    """

    backend: ClassVar[str] = "s3"
    # A PUT or a multipart upload shows in listings only once complete.
    objects_appear_whole: ClassVar[bool] = True

    def __init__(self, bucket: str, endpoint_url: str | None = None, prefix: str = "",
                 page_size: int = MAX_PAGE_SIZE, region: str | None = None,
                 public_endpoint_url: str | None = None) -> None:
        if not bucket:
            raise ValueError("S3 storage needs a bucket: set HEIMDEX_S3_BUCKET")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        prefix = prefix.strip("/")
        if prefix and (problem := key_problem(prefix)):
            raise ValueError(f"HEIMDEX_S3_PREFIX {problem}")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url or None
        self.page_size = page_size
        session = boto3.session.Session()
        # An explicit endpoint is MinIO, Ceph or another store that knows no virtual-host
        # buckets (nor DNS for them): address the bucket in the path there.
        config = CLIENT_CONFIG.merge(Config(s3={"addressing_style": "path"})) if self.endpoint_url else CLIENT_CONFIG
        region = region or session.region_name or "us-east-1"
        self.client = session.client("s3", endpoint_url=self.endpoint_url, config=config, region_name=region)
        # Presigned URLs are for clients, who may reach the store at another address than we do
        # (MinIO is `minio:9000` inside a compose network, 127.0.0.1:9000 outside). SigV4 signs
        # the host, so they are signed by a client of that address; signing makes no request.
        public = public_endpoint_url or None
        self._presigner = self.client if public in (None, self.endpoint_url) else session.client(
            "s3", endpoint_url=public, config=CLIENT_CONFIG.merge(Config(s3={"addressing_style": "path"})),
            region_name=region)
        self._where = f"bucket {bucket!r}" + (f" at {_redacted(self.endpoint_url)}" if self.endpoint_url else "")
        self._log = get_logger("storage", backend=self.backend, bucket=bucket)

    def __repr__(self) -> str:
        return f"S3Store({self._where}, prefix {self.prefix!r})"

    @classmethod
    def from_settings(cls, settings: "PipelineSettings") -> "S3Store":
        """The store of `HEIMDEX_S3_BUCKET`, `HEIMDEX_S3_ENDPOINT_URL` and `HEIMDEX_S3_PREFIX`."""
        if not settings.s3_bucket:
            raise ValueError("HEIMDEX_STORAGE=s3 needs HEIMDEX_S3_BUCKET, the bucket to store in")
        return cls(settings.s3_bucket, endpoint_url=settings.s3_endpoint_url, prefix=settings.s3_prefix)

    # -- naming --------------------------------------------------------------------------------
    def full_key(self, key: str) -> str:
        """The bucket's key of a store key: the prefix, then the (checked) key."""
        return self.prefix + check_key(key)

    def uri(self, key: str) -> str:
        return f"{SCHEME}{self.bucket}/{self.full_key(key)}"

    def key_of(self, uri: str) -> str:
        """The key of `s3://<bucket>/<prefix><key>`, the key taken verbatim (no percent-decoding)."""
        head = f"{SCHEME}{self.bucket}/{self.prefix}"
        if not uri.startswith(head):
            raise InvalidKeyError(f"the URI is not an object of this store (expected {head}...)")
        return check_key(uri[len(head):])

    # -- reading -------------------------------------------------------------------------------
    def stat(self, key: str) -> StoredObject | None:
        full = self.full_key(key)
        try:
            with self._errors(f"stat {key}", key):
                head = self.client.head_object(Bucket=self.bucket, Key=full)
        except ObjectNotFoundError:
            return None
        return StoredObject(key, head["ContentLength"], head["ETag"].strip('"'), head["LastModified"].timestamp())

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[StoredObject]:
        if prefix and (problem := key_problem(prefix.rstrip("/") or "/")):
            raise InvalidKeyError(f"storage prefix {problem}")
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix,
                                     "PaginationConfig": {"PageSize": self.page_size}}
        if start_after is not None:
            arguments["StartAfter"] = self.prefix + start_after
        with self._errors(f"list {prefix or '(all)'}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(**arguments):
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self.prefix):]
                    if problem := key_problem(key):
                        # Someone else's object (or a hostile name) in the bucket: never handed out.
                        self._log.warning("storage.key_skipped", problem=problem, key=repr(key)[:300])
                        continue
                    yield StoredObject(key, item["Size"], item["ETag"].strip('"'), item["LastModified"].timestamp())

    def read_bytes(self, key: str) -> bytes:
        full = self.full_key(key)
        with self._errors(f"read {key}", key):
            return self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read()

    def iter_bytes(self, key: str, start: int = 0, length: int | None = None,
                   chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The object's bytes by one ranged GET, streamed; a read cut off goes on by another
        ranged GET from where it stopped, of the same version (If-Match on the ETag)."""
        full = self.full_key(key)
        if start < 0 or (length is not None and length < 0):
            raise ValueError("start and length must not be negative")
        end = None if length is None else start + length - 1
        position, etag, resumes = start, None, 0
        while end is None or position <= end:
            arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
            if position or end is not None:
                arguments["Range"] = f"bytes={position}-{'' if end is None else end}"
            if etag:
                arguments["IfMatch"] = etag
            with self._errors(f"read {key}", key):
                try:
                    response = self.client.get_object(**arguments)
                except ClientError as error:
                    if error.response.get("Error", {}).get("Code") == "InvalidRange":
                        return  # `start` at or past the end: nothing to read
                    raise
                etag = etag or response["ETag"]
                try:
                    for chunk in response["Body"].iter_chunks(chunk_size):
                        position += len(chunk)
                        yield chunk
                    return
                except BotoCoreError:
                    # A read timeout or a reset mid-body: resumed below unless too often.
                    if resumes >= STREAM_RESUMES:
                        raise
                    resumes += 1
                finally:
                    response["Body"].close()

    # -- writing -------------------------------------------------------------------------------
    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        full = self.full_key(key)
        extra = {"ContentType": content_type} if content_type else {}
        with self._errors(f"write {key}"):
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data, **extra)

    def write_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """Upload a file; a large one goes up in parts (a multipart upload shows only once complete)."""
        full = self.full_key(key)
        extra = {"ContentType": content_type} if content_type else None
        with self._errors(f"write {key}"):
            self.client.upload_file(str(path), self.bucket, full, ExtraArgs=extra, Config=TRANSFER_CONFIG)

    def delete(self, key: str) -> None:
        full = self.full_key(key)
        with self._errors(f"delete {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    def scratch_dir(self, prefix: str) -> AbstractContextManager[Path]:
        """A local temporary folder (the staged files go up to the bucket at `publish_dir`)."""
        check_key(prefix.rstrip("/"))
        return _temporary_dir("stage")

    def publish_dir(self, staged: Path, prefix: str, index_key: str, index: Any) -> None:
        """Upload the staged files under `prefix`, then write the index, then delete the objects
        under `prefix` that the new set does not have.

        S3 cannot swap a set of objects in one step; this order keeps the promise that matters:
        every file an index names exists while that index is the current one. Until the new
        index is written, the old one names old files that are still there (a file of the same
        name may already hold its new bytes: thumbnails of the same video, re-cut); stale files
        go only once no index names them. A failure before the index leaves the old index and
        every file it names; a failure after it leaves at most some stale unnamed objects, which
        the next publish removes.
        """
        check_key(index_key)
        if not prefix.endswith("/"):
            raise InvalidKeyError("a published folder's prefix ends with '/'")
        files = {prefix + path.relative_to(staged).as_posix(): path
                 for path in sorted(staged.rglob("*")) if path.is_file()}
        for key in files:
            check_key(key)
        old = {item.key for item in self.list(prefix)}
        with ThreadPoolExecutor(max_workers=PUBLISH_THREADS, thread_name_prefix="s3-publish") as pool:
            # list(): every upload's error comes out here, before the index is written.
            list(pool.map(lambda item: self.write_file(item[0], item[1], _content_type(item[1])), files.items()))
        self.write_json(index_key, index)
        stale = sorted(old - set(files) - {index_key})
        for batch in range(0, len(stale), MAX_PAGE_SIZE):
            with self._errors(f"delete stale objects under {prefix}"):
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": self.full_key(key)} for key in stale[batch:batch + MAX_PAGE_SIZE]],
                    "Quiet": True})
            if answer.get("Errors"):
                self._log.warning("storage.stale_not_deleted", prefix=prefix, count=len(answer["Errors"]))

    # -- handing out ---------------------------------------------------------------------------
    def media_input(self, key: str) -> AbstractContextManager[Path | str]:
        """A scratch copy of the object, downloaded by boto3's managed (parallel, ranged)
        transfer into a local temporary folder and removed on exit, whatever happens (and by
        the next scratch folder made, if its process was killed outright).

        Measured against ffmpeg and PyAV reading a presigned URL (`docs/benchmarks.md`,
        "Media from S3"): the scene step decodes the file twice over (a reference-frame pass
        and a second look that seeks), which costs HTTP round trips a local copy does not.
        """
        return self._scratch_copy(key)

    def probe_input(self, key: str) -> AbstractContextManager[Path | str]:
        """A presigned GET of the object, valid for PROBE_URL_S: ffprobe reads the headers by range
        requests where a scratch copy would download the whole object. Nothing to clean up.
        Signed for the endpoint this process talks to, not the public one: ffprobe runs here."""
        return nullcontext(self._signed_get(self.client, key, PROBE_URL_S))

    @contextmanager
    def _scratch_copy(self, key: str) -> Iterator[Path]:
        full = self.full_key(key)
        with _temporary_dir("media") as folder:
            # The object's own name, so the media layer's messages name the upload.
            path = folder / key.rsplit("/", 1)[-1]
            with self._errors(f"download {key}", key):
                self.client.download_file(self.bucket, full, str(path), Config=TRANSFER_CONFIG)
            yield path

    def presigned_get(self, key: str, expires_s: int) -> str:
        return self._signed_get(self._presigner, key, expires_s)

    def _signed_get(self, signer: BaseClient, key: str, expires_s: int) -> str:
        full = self.full_key(key)
        with self._errors(f"sign a GET of {key}"):
            return signer.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": full}, ExpiresIn=_expiry(expires_s))

    def served_file(self, key: str) -> NoReturn:
        """Never a file: a bucket's objects are fetched from the bucket (`presigned_get`), not streamed by the API."""
        raise ObjectNotFoundError(f"{check_key(key)} is fetched from the bucket, not through the API")

    def presigned_put(self, key: str, expires_s: int, content_type: str | None, content_length: int) -> str:
        """A presigned PUT with the length (and the content type, when given) among the signed
        headers: a PUT of another length or type is refused by the store's signature check. It is
        signed with `If-None-Match: *` too (`PRESIGNED_PUT_HEADERS`): once the object exists, a
        PUT to the URL answers 412, so a committed upload is never replaced until the URL expires."""
        full = self.full_key(key)
        if content_length < 0:
            raise ValueError("content_length must not be negative")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": full, "ContentLength": content_length,
                                  "IfNoneMatch": PRESIGNED_PUT_HEADERS["If-None-Match"]}
        if content_type:
            params["ContentType"] = content_type
        with self._errors(f"sign a PUT of {key}"):
            return self._presigner.generate_presigned_url("put_object", Params=params, ExpiresIn=_expiry(expires_s))

    # -- health --------------------------------------------------------------------------------
    def check(self) -> None:
        with self._errors("reach the bucket", bucket_request=True):
            self.client.head_bucket(Bucket=self.bucket)

    # -- receiving -----------------------------------------------------------------------------
    def receiver(self, key: str, length: int) -> S3Receiver:
        return S3Receiver(self.client, self.bucket, self.full_key, check_key(key), length, guard=self._errors)

    def sweep_partial_uploads(self, prefix: str, before: float) -> int:
        """Abort the multipart uploads under `prefix` begun before `before`, and delete the `.tus/`
        objects (a receiver's state and tail) last written before it."""
        full = self.full_key(prefix.rstrip("/")) + "/"
        removed = 0
        with self._errors(f"sweep the partial uploads under {prefix}"):
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Uploads", ()):
                    if item["Initiated"].timestamp() < before:
                        abort_multipart(self.client, self.bucket, item["Key"], item["UploadId"])
                        removed += 1
        stale = [stored.key for stored in self.list(prefix) if stored.modified_at < before
                 and S3_STATE_FOLDER in stored.key.split("/")[:-1]]
        for key in stale:
            self.delete(key)
        return removed + len(stale)

    # -- errors --------------------------------------------------------------------------------
    @contextmanager
    def _errors(self, doing: str, key: str | None = None, bucket_request: bool = False) -> Iterator[None]:
        """Turn boto3's exceptions into the storage errors: what failed, why, and no secret."""
        try:
            yield
        except ClientError as error:
            self._client_error(error, doing, key, bucket_request)
        except S3UploadFailedError as error:
            # boto3's managed upload raises this while handling the store's answer (its context).
            if isinstance(error.__context__, ClientError):
                self._client_error(error.__context__, doing, key, bucket_request)
            raise StorageUnavailableError(f"cannot {doing} in S3 {self._where}: the upload failed",
                                          "storage_unavailable") from None
        except (NoCredentialsError, PartialCredentialsError):
            raise StorageUnavailableError(
                f"cannot {doing} in S3 {self._where}: no AWS credentials found (AWS_ACCESS_KEY_ID or the AWS "
                f"credential chain)", "storage_access_denied") from None
        except BotoCoreError as error:
            # Connection refused or reset, timeouts, a cut-off body: the endpoint is not usable now.
            reason = f"{type(error).__name__}: {_redacted(str(error))}"
            raise StorageUnavailableError(f"cannot {doing} in S3 {self._where}: {reason}", "storage_unavailable") from None

    def _client_error(self, error: ClientError, doing: str, key: str | None, bucket_request: bool) -> NoReturn:
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        failed = f"cannot {doing} in S3 {self._where}"
        if code == "NoSuchBucket" or (bucket_request and status == 404):
            raise StorageUnavailableError(f"{failed}: the bucket does not exist", "storage_bucket_missing") from None
        if code in _ACCESS_CODES or status == 403:
            raise StorageUnavailableError(
                f"{failed}: access denied ({code or status}): check the AWS credentials and the bucket's policy",
                "storage_access_denied") from None
        if key is not None and (code in _MISSING_CODES or status == 404):
            if code != "NoSuchKey":
                # A HEAD (stat, a managed download) answers a bare 404 for a missing bucket too.
                self.check()
            raise ObjectNotFoundError(f"no object at {key}") from None
        if code in _UNAVAILABLE_CODES or status >= 500:
            raise StorageUnavailableError(f"{failed}: the store answered {code or status}", "storage_unavailable") from None
        raise StorageError(f"{failed}: {code or status}: {details.get('Message', '')}".rstrip(": ")) from error


def _expiry(expires_s: int) -> int:
    if not 1 <= expires_s <= MAX_PRESIGN_S:
        raise ValueError(f"a presigned URL lasts from 1 s to {MAX_PRESIGN_S} s (7 days)")
    return expires_s


def _content_type(path: Path) -> str | None:
    """The content type the published files are served with (the layout publishes JPEGs, JSON and WebVTT)."""
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".json": "application/json",
            ".png": "image/png", ".webp": "image/webp", ".vtt": "text/vtt"}.get(path.suffix.lower())


@contextmanager
def _temporary_dir(kind: str) -> Iterator[Path]:
    """A fresh folder `heimdex-s3-<kind>-<pid>-*` in the system's temporary directory, removed on
    exit even on an exception; the folders left by processes that died without exiting
    (SIGKILL, OOM) are removed first."""
    _remove_leftovers()
    folder = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{kind}-{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_leftovers() -> None:
    """Remove the scratch folders whose process no longer runs (its pid is in the name)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*-*"):
        pid = folder.name[len(SCRATCH_PREFIX):].split("-")[1]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
