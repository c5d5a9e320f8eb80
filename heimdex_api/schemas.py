"""Request and response bodies of the contract; unknown request fields are refused (422).

The constraints the code enforces are written into the schema, so that a client generated from
the OpenAPI sends only what the server can take. Those checked by a service with its own error
code (source names, URIs, upload ids) are documented here and enforced there; those that depend
on the server's settings and storage (`source_uri_schema`, `webhook_url_schema`, the largest
`content_length`) are written into the document by `heimdex_api.main`.
"""

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from heimdex_pipeline.core.json_numbers import integral_numbers
from heimdex_pipeline.media.detector import DetectorParams
from heimdex_pipeline.media.storyboard import Storyboard
from heimdex_pipeline.outputs.qc import QcDocument
from heimdex_pipeline.outputs.sidecar import Sidecar, ThumbnailEntry
from heimdex_pipeline.storage import ORG_ID_PATTERN, RESERVED_ORG_ID_PATTERN, RESERVED_ORG_IDS, check_org_id
from heimdex_pipeline.storage.layout import MAX_KEY_BYTES, MAX_SEGMENT_BYTES, UPLOADS

UPLOAD_ID_PATTERN = re.compile(r"^up_[0-9a-f]{32}$")
MAX_SOURCE_URI_LENGTH = 4096
# Every character `str.isspace()` takes (all below U+3001), which `str.strip()` removes.
_SPACES = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x3001)) if c.isspace())
_NAME_BAD = r"/\\\u0000-\u001f\u007f"
# services/sources.py::check_source_name: no separator, NUL or control character, no leading '-'
# or '.', no surrounding space.
SOURCE_NAME_PATTERN = f"^[^-.{_NAME_BAD}{_SPACES}]([^{_NAME_BAD}]*[^{_NAME_BAD}{_SPACES}])?$"
# Its limit of 255 UTF-8 bytes, as a schema can say it (it counts characters): 255 ASCII characters,
# 127 of at most 2 bytes, or 63 of any.
SOURCE_NAME_BYTES = [{"maxLength": 255, "pattern": "^[\\u0000-\\u007f]*$"},
                     {"maxLength": 127, "pattern": "^[\\u0000-\\u07ff]*$"}, {"maxLength": 63}]


OrgId = Annotated[str, Field(
    pattern=ORG_ID_PATTERN.pattern, json_schema_extra={"not": {"pattern": RESERVED_ORG_ID_PATTERN.pattern}},
    description="The org the request acts for; must be the token's (403 `org_mismatch`). "
                f"Not a name of the storage layout ({', '.join(sorted(RESERVED_ORG_IDS))}, in any case)."),
    AfterValidator(check_org_id)]
SourceUri = Annotated[str, Field(
    max_length=MAX_SOURCE_URI_LENGTH,
    description="The URI of a file in the org's uploads, as init's `asset_uri` gives it: `file://<derived>/uploads/"
                "<org_id>/...` on local storage (percent-encoded, symlinks followed), `s3://<bucket>/<prefix>uploads/"
                "<org_id>/...` on S3 (the key verbatim); the pattern holds this server's folder or bucket, the "
                "longest URI its keys allow and names of at most 255 bytes. Anything else answers 422 "
                "`invalid_source_uri`, as does a link leading out of the uploads and, for a commit, a file outside "
                "the upload's own folder; a missing file, or one in another org's uploads, 404 `source_not_found`.")]
WeakThreshold = Annotated[int | None, Field(
    default=None, ge=0, le=2**40,
    description="Files larger than this get a weak hash (default HEIMDEX_WEAK_THRESHOLD_BYTES, 1,000,000,000).")]


# The characters of a name in a `source_uri`, as the store reads them. One byte of the key each: RFC 3986's
# path characters but `.` (which `_name` places), and, in a `file://` URI (which the store percent-decodes),
# the escape of a printable ASCII byte but `.`, `/` and `\` (so that `.` and `..` are seen as such).
_PATH_CHAR = "[A-Za-z0-9_~!$&'()*+,;=:@-]"
_ASCII_ESCAPE = "%(?:2[0-9A-Da-d]|[346][0-9A-Fa-f]|5[0-9ABD-Fabd-f]|7[0-9A-Ea-e])"
# The escapes of one well-formed UTF-8 character of 2 to 4 bytes (RFC 3629).
_CONT = "%[89ABab][0-9A-Fa-f]"
_UTF8_ESCAPE = (f"%[Cc][2-9A-Fa-f]{_CONT}|%[Dd][0-9A-Fa-f]{_CONT}|%[Ee]0%[ABab][0-9A-Fa-f]{_CONT}"
                f"|%[Ee][1-9A-Ca-cEFef]{_CONT}{_CONT}|%[Ee][Dd]%[89][0-9A-Fa-f]{_CONT}"
                f"|%[Ff]0%[9ABab][0-9A-Fa-f]{_CONT}{_CONT}|%[Ff][1-3]{_CONT}{_CONT}{_CONT}"
                f"|%[Ff]4%8[0-9A-Fa-f]{_CONT}{_CONT}")


def _name(char: str, most: int) -> str:
    """A name of at most `most` characters (`char`, or `.`) that is not `.` or `..`."""
    any_char = f"\\.|{char}"
    return (f"(?:{char})(?:{any_char}){{0,{most - 1}}}|\\.(?:{char})(?:{any_char}){{0,{most - 2}}}"
            f"|\\.\\.(?:{any_char}){{1,{most - 2}}}")


def _literal(text: str) -> str:
    """`text` as a regex that matches it alone, escaping only what ECMA-262 and Python both take escaped."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", text)


def source_uri_schema(uploads_uri: str) -> dict[str, Any]:
    """The constraints of `source_uri` on a store whose upload area is at `uploads_uri` (`store.uri(UPLOADS)`):
    a file below an org's folder of it, named so that `store.key_of` takes it.

    The store percent-decodes a `file://` URI, and takes an `s3://` one verbatim (there, only
    characters that need no escape). A name is at most MAX_SEGMENT_BYTES long: that many one-byte
    characters, or a quarter as many where wider ones are written. A character of the URI is at
    least one byte of the key, so the pattern's bound on the length keeps the key within MAX_KEY_BYTES.
    """
    one_byte = f"{_PATH_CHAR}|{_ASCII_ESCAPE}" if uploads_uri.startswith("file:") else _PATH_CHAR
    names = [_name(one_byte, MAX_SEGMENT_BYTES)]
    if uploads_uri.startswith("file:"):
        names.append(_name(f"{one_byte}|{_UTF8_ESCAPE}", MAX_SEGMENT_BYTES // 4))
    org = ORG_ID_PATTERN.pattern.removeprefix("^").removesuffix("$")
    # The length is bounded in the pattern (a lookahead) rather than by `maxLength`: given a `maxLength`, an
    # OpenAPI fuzzer's coverage phase draws strings of exactly that length from this pattern, which it cannot
    # find in its budget (schemathesis: some 20 s a draw, then gives up), on every operation with a source_uri.
    longest = min(MAX_SOURCE_URI_LENGTH, len(uploads_uri) - len(UPLOADS) + MAX_KEY_BYTES)
    return {"format": "uri",
            "pattern": f"^(?![\\s\\S]{{{longest + 1}}}){_literal(uploads_uri)}/{org}(?:/(?:{'|'.join(names)}))+$"}


_PORT = "[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]"
# A name whose last label starts with a letter: no top-level domain is all digits, and a host that is
# (`0`, `2130706433`, `127.1`, `0x7f.1`) the resolver reads as an address. Labels are not held to DNS's
# lengths, which registration does not check either (one way only to match: no backtracking on long input).
_HOST_NAME = "(?:[A-Za-z0-9-]+\\.)*[A-Za-z][A-Za-z0-9-]*"
_OCTET = "25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]"
_IPV4 = f"(?:{_OCTET})(?:\\.(?:{_OCTET})){{3}}"
# RFC 3986's characters of a path, a query or a fragment.
_URL_CHAR = "[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2}"
_HTTP = "^[hH][tT][tT][pP][sS]?://"
_LOCAL_NAME = "[lL][oO][cC][aA][lL][hH][oO][sS][tT](?:\\.[lL][oO][cC][aA][lL][dD][oO][mM][aA][iI][nN])?"


def webhook_url_schema(allow_private: bool) -> dict[str, Any]:
    """The constraints of a webhook `url` that `heimdex_pipeline.webhooks.addresses.parse_url` takes at
    registration with `allow_private` (HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES).

    The host is a name, or with `allow_private` a dotted IPv4 address too; the other forms a
    resolver reads as an address, and IPv6 literals, are left out. Without `allow_private`, a
    name ending in `localhost` is refused (`not`); where a name leads is checked at each delivery.
    """
    host = f"(?:{_HOST_NAME}|{_IPV4})" if allow_private else _HOST_NAME
    schema: dict[str, Any] = {"format": "uri",
                              "pattern": f"{_HTTP}{host}(?::(?:{_PORT}))?(?:/(?:{_URL_CHAR})*)?"
                                         f"(?:\\?(?:{_URL_CHAR})*)?(?:#(?:{_URL_CHAR})*)?$"}
    if not allow_private:
        schema["not"] = {"pattern": f"{_HTTP}[^/?#:]*{_LOCAL_NAME}(?:[:/?#]|$)"}
    return schema


class Request(BaseModel):
    """A request body: extra fields and mistyped values ("12" for 12) are errors, not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)

    _integral_numbers = model_validator(mode="before")(integral_numbers)


class InitRequest(Request):
    org_id: OrgId
    source_name: str = Field(min_length=1, max_length=1024,
                             json_schema_extra={"pattern": SOURCE_NAME_PATTERN, "anyOf": SOURCE_NAME_BYTES},
                             description="A plain file name of at most 255 UTF-8 bytes; else 422 "
                                         "`invalid_source_name`.")
    content_length: int = Field(ge=0, description="The file's size in bytes; above the maximum "
                                                      "(HEIMDEX_MAX_UPLOAD_BYTES) 422 `upload_too_large`.")
    content_type: str | None = Field(default=None, max_length=255)


class Presigned(BaseModel):
    asset_uri: str = Field(description="Where the file goes: a `file://` URI (local storage: copying the file there "
                                       "works too) or `s3://<bucket>/<key>`; commit's `source_uri`.")
    metadata_uri: str | None = None
    upload_url: str = Field(description="One PUT of the file's bytes (exactly content_length of them, with "
                                        "upload_headers) stores the upload; no bearer token: the URL is the "
                                        "credential. S3: the bucket's presigned URL; local: the API's.")
    upload_headers: dict[str, str] = Field(description="Headers the PUT to upload_url must carry.")
    resumable_url: str = Field(description="A tus 1.0 upload resource for the same upload (Upload-Length = "
                                           "content_length), with the checksum (sha1, sha256), expiration and "
                                           "termination extensions: a tus client resumes an interrupted upload.")
    expires_at: str = Field(description="ISO-8601: after it both URLs answer 403 `url_expired`; call init again.")


class InitResponse(BaseModel):
    upload_id: str
    presigned: Presigned


class UploadReceived(BaseModel):
    """A PUT stored the whole file: commit it next."""

    upload_id: str
    size_bytes: int


class CommitRequest(Request):
    org_id: OrgId
    upload_id: str = Field(max_length=64, json_schema_extra={"pattern": UPLOAD_ID_PATTERN.pattern},
                           description="From init; any other id answers 404 `upload_not_found`.")
    source_uri: SourceUri
    weak_threshold_bytes: WeakThreshold


class CommitResponse(BaseModel):
    asset_id: str
    source_uri: str
    status: Literal["queued", "ready"]
    job_id: str | None = Field(default=None, description="The ingest run started, or null when the content was known.")


class SourceRequest(Request):
    """A body naming a source file of the org: probe and the sidecar job."""

    org_id: OrgId
    source_uri: SourceUri
    weak_threshold_bytes: WeakThreshold


class SidecarRequest(SourceRequest):
    """The sidecar job's body: the source, and the scene detector if not the deployment's."""

    detector: DetectorParams | None = Field(
        default=None,
        description="The scene detector and its parameters, told apart by `kind`: `heimdex` (Heimdex's own, which "
                    "also names each scene's transition) or a PySceneDetect detector; unset parameters keep the "
                    "detector's defaults, values out of bounds answer 422. Null: the deployment's "
                    "(HEIMDEX_SCENE_DETECTOR), Heimdex's unless set.")


class ThumbnailPolicyIn(Request):
    interval_s: float | None = Field(default=None, ge=0, le=86_400,
                                     description="0: one per scene; else one every interval_s seconds (at most a day).")
    max_count: int | None = Field(default=None, ge=1, le=50)
    max_height: int | None = Field(default=None, ge=64, le=2160, description="Pixels; at most 2160 (4K).")


class ThumbnailsRequest(SourceRequest):
    policy: ThumbnailPolicyIn | None = None


class JobAccepted(BaseModel):
    job_id: str
    location: str


class JobError(BaseModel):
    code: str
    message: str


DOWNLOAD_URL_DESCRIPTION = ("An absolute URL a plain GET fetches the bytes from, without the token, until it expires "
                            "(HEIMDEX_DOWNLOAD_URL_TTL_S): the bucket's presigned GET on S3 storage, the API's signed "
                            "`/v1/files/...` on local storage. Read the answer again for a fresh one.")


class ThumbnailOut(ThumbnailEntry):
    """A thumbnail entry of an answer: the stored entry with the URL of its bytes."""

    url: str = Field(description=DOWNLOAD_URL_DESCRIPTION)


class SidecarDocument(Sidecar):
    """The stored sidecar document, answered with a `url` added to each thumbnail entry."""

    thumbnails: list[ThumbnailOut] = Field(default_factory=list)


class JobResult(BaseModel):
    sidecar_uri: str
    sidecar_url: str = Field(description=DOWNLOAD_URL_DESCRIPTION)
    thumbnails: list[ThumbnailOut]


class JobProgress(BaseModel):
    """How far a running job's current step is; written by the step about every second."""

    step: str = Field(description="The asset being made: `probe_metadata`, `scene_sidecar`, `thumbnails`, `storyboard`")
    unit: Literal["frames", "thumbnails", "tiles"]
    done: int = Field(ge=0)
    total: int | None = Field(description="Null until the step knows it (while it fetches the source)")
    fraction: float = Field(ge=0, le=1)
    updated_at: str


class JobResponse(BaseModel):
    job_id: str
    type: str | None
    asset_id: str | None
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    started_at: str | None
    finished_at: str | None
    result: JobResult | None
    error: JobError | None
    progress: JobProgress | None = Field(default=None, description="While the job runs: its current step's progress")


class SidecarRef(BaseModel):
    schema_version: str
    storage_key: str
    etag: str
    url: str = Field(description=DOWNLOAD_URL_DESCRIPTION)


class StoryboardRef(BaseModel):
    """Where a video's storyboard is: its sprite, and the path of its WebVTT track on this API."""

    storage_key: str = Field(description="The sprite's key, relative to the org's folder")
    url: str = Field(description=DOWNLOAD_URL_DESCRIPTION)
    vtt_url: str = Field(description="The track for a player's `<track src>`: a signed URL of the API's files route "
                                     "that a plain GET (any origin) fetches without the token until it expires, its "
                                     "cues pointing at `url`")
    vtt_location: str = Field(description="`/v1/assets/{asset_id}/storyboard.vtt`: the same track, with the token")


class StoryboardDocument(Storyboard, StoryboardRef):
    """A storyboard's geometry (`storyboard.json` as stored: tile `index` is the frame shown from `start_s` to
    `end_s`, at `x, y` in the sprite), with the sprite's `storage_key` and `url` and the track's location."""


class SceneListRef(BaseModel):
    """Where one form of the scene list is."""

    url: str = Field(description="A signed URL of the API's files route that a plain GET fetches without the token "
                                 "until it expires (HEIMDEX_DOWNLOAD_URL_TTL_S)")
    location: str = Field(description="`/v1/assets/{asset_id}/scenes.<csv|edl|otio>`: the same, with the token")


class SceneListRefs(BaseModel):
    """The scene list as editors take it, made from the sidecar when asked."""

    csv: SceneListRef = Field(description="`scenedetect list-scenes`'s CSV")
    edl: SceneListRef = Field(description="A CMX 3600 EDL")
    otio: SceneListRef = Field(description="An OpenTimelineIO timeline")


class QcLink(BaseModel):
    storage_key: str = Field(description="The QC document's key, relative to the org's folder")
    url: str = Field(description=DOWNLOAD_URL_DESCRIPTION)


class QcSummary(QcLink):
    """A video's technical QC in brief: the loudness figures, the picture's scan, and how many stretches of
    each kind were found (the document at `url`, or `GET /v1/assets/{asset_id}/qc`, lists them)."""

    integrated_lufs: float | None = Field(description="EBU R128 integrated loudness; null: see loudness_unavailable")
    loudness_range_lu: float | None
    true_peak_dbtp: float | None
    loudness_unavailable: str | None = Field(description="Why there is no loudness: no audio stream, or silent audio")
    scan: Literal["progressive", "tff", "bff", "undetermined"]
    silences: int = Field(ge=0)
    black_stretches: int = Field(ge=0)
    frozen_stretches: int = Field(ge=0)


class QcDocumentOut(QcDocument, QcLink):
    """The technical QC document as stored (`schemas/qc.schema.json`), with its `storage_key` and `url`."""


class FailedCheck(BaseModel):
    asset: str = Field(description="The asset of the video the check looks at: `probe_metadata`, `scene_sidecar`, ...")
    check: str
    description: str | None = Field(description="What is wrong, as the check says it")


class CheckSummary(BaseModel):
    """The newest result of each of the video's asset checks (the web UI's "Checks" tab); checks not run yet
    are in neither."""

    passed: int = Field(ge=0)
    failed: list[FailedCheck]


class AssetResponse(BaseModel):
    asset_id: str
    org_id: str
    source_uri: str
    size_bytes: int
    hash: str
    hash_quality: str
    status: Literal["queued", "processing", "ready", "failed"]
    sidecar: SidecarRef | None
    thumbnails: list[ThumbnailOut]
    storyboard: StoryboardRef | None = Field(description="Null until the storyboard is made")
    qc: QcSummary | None = Field(default=None, description="Null until the technical QC is made")
    checks: CheckSummary
    scene_lists: SceneListRefs | None = Field(description="Null until the sidecar is made")


WebhookEventType = Literal["asset.ready", "asset.failed", "asset.qc_failed", "job.succeeded", "job.failed"]


class WebhookCreate(Request):
    url: str = Field(min_length=1, max_length=2048,
                     description="Where events are POSTed: http or https, its host a name, not `localhost`, or with "
                                 "HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES a name or a dotted IPv4 address (the "
                                 "pattern is this server's); no credentials, no port 0. Else 422 "
                                 "`webhook_url_not_allowed`. Where a name leads is checked at each delivery: a "
                                 "non-public address fails it. Redirects are not followed.")
    events: list[WebhookEventType] = Field(min_length=1, max_length=len(get_args(WebhookEventType)),
                                           json_schema_extra={"uniqueItems": True},
                                           description="The events wanted; each at most once.")

    @model_validator(mode="after")
    def _each_event_once(self) -> "WebhookCreate":
        if len(set(self.events)) != len(self.events):
            raise ValueError("events: each event may be listed once only")
        return self


class WebhookOut(BaseModel):
    webhook_id: str
    url: str
    events: list[WebhookEventType]
    created_at: str
    previous_secret_expires_at: str | None = Field(
        description="After a rotation: until when the previous secret signs too; null when it no longer does")


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The key of the `Heimdex-Signature` HMAC. Answered this once only: keep it.")


class WebhookSecretRotation(Request):
    previous_valid_for_s: int = Field(
        default=86_400, ge=0, le=7 * 86_400,
        description="How long the previous secret signs beside the new one (each request then carries a `v1` for "
                    "each), while the receiver changes over; 0 ends it at once.")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class WebhookAttemptOut(BaseModel):
    attempted_at: str
    status_code: int | None = Field(description="The receiver's answer; null when there was none (see `error`)")
    latency_ms: int = Field(ge=0)
    error: str | None = Field(description="Why the attempt failed: no connection, a timeout, a non-2xx answer, a "
                                           "redirect, a refused address")


class WebhookDeliveryOut(BaseModel):
    delivery_id: int
    event_id: str
    event_type: WebhookEventType
    asset_id: str
    job_id: str
    status: Literal["pending", "delivered", "failed"] = Field(
        description="`failed`: still refused when its retries ran out, 24 hours after the event")
    created_at: str
    next_attempt_at: str | None = Field(description="While pending: when the next attempt is due")
    finished_at: str | None
    attempts: list[WebhookAttemptOut]


class WebhookDeliveryList(BaseModel):
    deliveries: list[WebhookDeliveryOut] = Field(description="Newest first")
    next_before: int | None = Field(description="Pass as `before` for the next, older page; null on the last page")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    time: str


class EnvCheckResponse(BaseModel):
    """Whether each thing the pipeline needs is usable."""

    ffmpeg: bool
    ffprobe: bool
    pyscenedetect: bool
    database: bool
    dagster_instance: bool
    derived_writable: bool = Field(description="The storage is usable (kept under its first name: the derived root).")
    storage: bool = Field(description="The storage (HEIMDEX_STORAGE: the derived root or the bucket) is usable.")


class StreamSummary(BaseModel):
    """One stream of the file, as ffprobe sees it."""

    model_config = ConfigDict(extra="allow")

    index: int | None
    codec_type: str | None
    codec: str | None
    duration_s: float | None
    bit_rate: int | None
    language: str | None


class ProbeDocument(BaseModel):
    """The probe document of a file (heimdex_pipeline.media.probe.probe_video)."""

    model_config = ConfigDict(extra="allow")

    duration_s: float
    width: int
    height: int
    display_width: int
    display_height: int
    fps: float | None
    codec: str | None
    rotation: int
    container: str | None
    size_bytes: int | None
    streams: list[StreamSummary]


class ProbeResponse(ProbeDocument):
    """The probe document of a file in the org's uploads, with its content hash and asset id."""

    asset_id: str
    hash: str
    hash_quality: Literal["strong", "weak"]
    size_bytes: int


class MetadataResponse(ProbeDocument):
    """The legacy `/metadata` answer: the probe document of the uploaded file, with its name."""

    filename: str | None
