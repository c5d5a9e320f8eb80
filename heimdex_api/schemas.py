"""Request and response bodies of the contract; unknown request fields are refused (422)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from heimdex_pipeline.storage import ORG_ID_PATTERN

OrgId = Field(pattern=ORG_ID_PATTERN.pattern, description="The org the request acts for; must be the token's.")
WeakThreshold = Field(default=None, ge=0, description="Files larger than this get a weak hash (default 1,000,000,000).")


class Request(BaseModel):
    """A request body: extra fields and mistyped values ("12" for 12) are errors, not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class InitRequest(Request):
    org_id: str = OrgId
    source_name: str = Field(min_length=1, max_length=1024)
    content_length: int = Field(ge=0)
    content_type: str | None = Field(default=None, max_length=255)


class Presigned(BaseModel):
    asset_uri: str
    metadata_uri: str | None = None


class InitResponse(BaseModel):
    upload_id: str
    presigned: Presigned


class CommitRequest(Request):
    org_id: str = OrgId
    upload_id: str = Field(max_length=64)
    source_uri: str = Field(max_length=4096)
    weak_threshold_bytes: int | None = WeakThreshold


class CommitResponse(BaseModel):
    asset_id: str
    source_uri: str
    status: Literal["queued", "ready"]
    job_id: str | None = Field(default=None, description="The ingest run started, or null when the content was known.")


class SourceRequest(Request):
    """A body naming a source file of the org: probe and the sidecar job."""

    org_id: str = OrgId
    source_uri: str = Field(max_length=4096)
    weak_threshold_bytes: int | None = WeakThreshold


class ThumbnailPolicyIn(Request):
    interval_s: float | None = Field(default=None, ge=0)
    max_count: int | None = Field(default=None, ge=1, le=50)
    max_height: int | None = Field(default=None, ge=64)


class ThumbnailsRequest(SourceRequest):
    policy: ThumbnailPolicyIn | None = None


class JobAccepted(BaseModel):
    job_id: str
    location: str


class JobError(BaseModel):
    code: str
    message: str


class JobResult(BaseModel):
    sidecar_uri: str
    thumbnails: list[dict]


class JobResponse(BaseModel):
    job_id: str
    type: str | None
    asset_id: str | None
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    started_at: str | None
    finished_at: str | None
    result: JobResult | None
    error: JobError | None


class Thumbnail(BaseModel):
    idx: int
    storage_key: str
    width: int
    height: int
    ts_ms: int


class SidecarRef(BaseModel):
    schema_version: str
    storage_key: str
    etag: str


class AssetResponse(BaseModel):
    asset_id: str
    org_id: str
    source_uri: str
    size_bytes: int
    hash: str
    hash_quality: str
    status: Literal["queued", "processing", "ready", "failed"]
    sidecar: SidecarRef | None
    thumbnails: list[Thumbnail]


class HealthResponse(BaseModel):
    status: Literal["ok"]
    time: str
