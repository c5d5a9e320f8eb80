"""The API's settings: the pipeline's `HEIMDEX_*` settings plus auth, queueing and limits."""

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator

from heimdex_pipeline.settings import PipelineSettings

DEFAULT_JWT_SECRET = "change-me"


class ApiSettings(PipelineSettings):
    """Everything the API reads from the environment; each field is `HEIMDEX_<NAME>`."""

    env: Literal["development", "production"] = Field(
        default="development",
        description="development accepts the default JWT secret and tokens without exp; production does not.",
    )
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    # Tokens without a `scopes` claim get these: the earlier service's tokens carried only org_id.
    default_scopes: list[str] = Field(default_factory=lambda: ["assets:read", "assets:write"])

    job_queue_backend: Literal["immediate", "dagster"] = "immediate"
    dagster_webserver_url: str = "http://127.0.0.1:3000"
    dagster_location_name: str = "heimdex"
    dagster_repository_name: str = "__repository__"

    enable_legacy: bool = False
    migrate_on_start: bool = Field(default=True, description="Run `alembic upgrade head` when the app starts.")
    max_upload_bytes: int = Field(default=50 * 1024**3, ge=0, description="Largest content_length init accepts.")
    max_legacy_upload_bytes: int = Field(default=512 * 1024**2, ge=0, description="Largest /metadata upload.")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest JSON request body.")
    idempotency_wait_s: float = Field(default=120.0, gt=0,
                                      description="How long a request waits for a concurrent one with its key.")
    claim_lease_s: float = Field(
        default=900.0, gt=0,
        description="How long an idempotency key or an upload stays claimed by a request that never answered "
                    "(it crashed) before another request may take it over; longer than any request takes.")

    @property
    def development(self) -> bool:
        return self.env == "development"

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> "ApiSettings":
        if not self.development and self.jwt_secret == DEFAULT_JWT_SECRET:
            raise ValueError("HEIMDEX_JWT_SECRET must be set outside development (HEIMDEX_ENV=production)")
        return self


@lru_cache
def get_api_settings() -> ApiSettings:
    """The process-wide API settings, read once from the environment."""
    return ApiSettings()
