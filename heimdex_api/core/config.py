"""The API's settings: the pipeline's `HEIMDEX_*` settings plus auth, queueing and limits."""

from functools import lru_cache
from typing import Literal

import jwt
from pydantic import AnyHttpUrl, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from heimdex_pipeline.core.settings import PipelineSettings

DEFAULT_JWT_SECRET = "change-me"
DEFAULT_URL_SIGNING_KEY = "change-me"
# The URL signer is HMAC-SHA256: RFC 2104 wants a key at least as long as the hash's output.
MIN_URL_SIGNING_KEY_BYTES = 32


def weak_secret_reason(secret: str, algorithm: str) -> str | None:
    """Why `secret` is too weak to sign `algorithm` tokens, or None when it is strong enough.

    PyJWT's own rule (RFC 7518 §3.2, its `InsecureKeyLengthWarning`): an HMAC key at least as long
    as the hash's output, 32 bytes for HS256, 48 for HS384, 64 for HS512.
    """
    if secret == DEFAULT_JWT_SECRET:
        return f"HEIMDEX_JWT_SECRET is the default {DEFAULT_JWT_SECRET!r}"
    hmac = jwt.get_algorithm_by_name(algorithm)
    try:
        short = hmac.check_key_length(hmac.prepare_key(secret))
    except jwt.InvalidKeyError as exc:
        return f"HEIMDEX_JWT_SECRET cannot be an HMAC key: {exc}"
    return f"HEIMDEX_JWT_SECRET is too short: {short}" if short else None


def weak_signing_key_reason(key: str) -> str | None:
    """Why `key` is too weak to sign the API's own URLs (uploads, downloads), or None when it is strong enough."""
    if key == DEFAULT_URL_SIGNING_KEY:
        return f"HEIMDEX_URL_SIGNING_KEY is the default {DEFAULT_URL_SIGNING_KEY!r}"
    size = len(key.encode("utf-8"))
    if size < MIN_URL_SIGNING_KEY_BYTES:
        return f"HEIMDEX_URL_SIGNING_KEY is too short: {size} bytes, fewer than {MIN_URL_SIGNING_KEY_BYTES}"
    return None


class ApiSettings(PipelineSettings):
    """Everything the API reads from the environment; each field is `HEIMDEX_<NAME>`."""

    # A refused setting is reported without the values read: they hold the secret.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    env: Literal["development", "production"] = Field(
        default="production",
        description="production refuses a weak JWT secret and tokens without exp; development, asked for "
                    "explicitly, accepts both.",
    )
    # A SecretStr: the secret never shows in a repr, a log line or a validation error.
    jwt_secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    # Tokens without a `scopes` claim get these: the earlier service's tokens carried only org_id.
    # Signs the upload (and download) URLs the API serves itself: whoever holds it can write any upload.
    url_signing_key: SecretStr = SecretStr(DEFAULT_URL_SIGNING_KEY)
    public_url: AnyHttpUrl | None = Field(
        default=None,
        description="The API's absolute base URL as clients reach it (behind a proxy); else the request's own.")
    default_scopes: list[str] = Field(default_factory=lambda: ["assets:read", "assets:write"])

    job_queue_backend: Literal["immediate", "dagster"] = "immediate"
    dagster_webserver_url: str = "http://127.0.0.1:3000"
    dagster_location_name: str = "heimdex"
    dagster_repository_name: str = "__repository__"
    dagster_submit_timeout_s: float = Field(
        default=90.0, gt=0,
        description="How long a commit or job request waits for the Dagster webserver to take its run (`dagster` "
                    "mode), asking again while it fails; then 503 dagster_unavailable and the commit is undone.")

    enable_legacy: bool = False
    migrate_on_start: bool = Field(default=True, description="Run `alembic upgrade head` when the app starts.")
    max_upload_bytes: int = Field(default=50 * 1024**3, ge=0, description="Largest content_length init accepts.")
    max_legacy_upload_bytes: int = Field(default=512 * 1024**2, ge=0, description="Largest /metadata upload.")
    max_webhooks_per_org: int = Field(default=20, ge=1, description="Webhook endpoints an org may register.")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest JSON request body.")
    idempotency_wait_s: float = Field(default=120.0, gt=0,
                                      description="How long a request waits for a concurrent one with its key.")
    claim_lease_s: float = Field(
        default=900.0, gt=0,
        description="How long an idempotency key or an upload stays claimed by a request that never answered "
                    "(it crashed) before another request may take it over; longer than any request takes.")
    # An hour: answers are read again for fresh URLs; S3 allows a presigned URL at most 7 days.
    download_url_ttl_s: int = Field(default=3600, ge=1, le=7 * 24 * 3600,
                                    description="How long the `url` of a sidecar or thumbnail in an answer stays valid.")

    # Serving (heimdex_api/serve.py).
    api_workers: int = Field(default=3, ge=1, le=64,
                             description="Processes serving the API on its one port (`python -m heimdex_api.serve`).")
    max_header_bytes: int = Field(
        default=64 * 1024, ge=8 * 1024,
        description="Largest request line plus headers; past it the server answers 431 and closes the connection.")
    max_concurrent_reads: int = Field(
        default=48, ge=1,
        description="GET requests a worker works on at once; the others wait their turn in order of arrival "
                    "(health checks, `/v1/files` downloads and writes are not counted).")
    body_read_timeout_s: float = Field(
        default=60.0, gt=0,
        description="How long a request body may send nothing while the API waits for it; then 408 and the "
                    "connection is closed (an upload keeps what arrived, as when the client goes away).")

    @property
    def development(self) -> bool:
        return self.env == "development"

    @model_validator(mode="after")
    def _refuse_weak_secret(self) -> "ApiSettings":
        reason = weak_secret_reason(self.jwt_secret.get_secret_value(), self.jwt_algorithm)
        if reason and not self.development:
            raise ValueError(f"{reason.rstrip('.')}. Production (the default HEIMDEX_ENV) needs a random secret "
                             "of at least 32 bytes for HS256, 48 for HS384, 64 for HS512: ./scripts/run.sh writes "
                             "one to .env; HEIMDEX_ENV=development accepts any secret")
        reason = weak_signing_key_reason(self.url_signing_key.get_secret_value())
        if reason and not self.development:
            raise ValueError(f"{reason}. Production (the default HEIMDEX_ENV) needs a random key of at least "
                             f"{MIN_URL_SIGNING_KEY_BYTES} bytes: ./scripts/run.sh writes one to .env; "
                             "HEIMDEX_ENV=development accepts any key")
        return self

    def base_url(self, request_base: str) -> str:
        """The absolute base URL of the API's own links: HEIMDEX_PUBLIC_URL, else the request's, without a final '/'."""
        return str(self.public_url or request_base).rstrip("/")


@lru_cache
def get_api_settings() -> ApiSettings:
    """The process-wide API settings, read once from the environment."""
    return ApiSettings()
