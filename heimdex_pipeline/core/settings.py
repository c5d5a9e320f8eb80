"""Heimdex settings shared by the pipeline and the API, read from `HEIMDEX_*` variables."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from heimdex_pipeline.media.detector import DetectorParams, HeimdexParams


class PipelineSettings(BaseSettings):
    """Where media lives and how the pipeline treats it; every field is `HEIMDEX_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="HEIMDEX_", env_file=".env", extra="ignore")

    derived_root: Path = Path("./derived")
    # Where media and everything derived from it is kept (heimdex_pipeline.storage).
    storage: Literal["local", "s3"] = Field(
        default="local", description="local: under derived_root on disk; s3: in the S3-compatible bucket s3_bucket.")
    s3_bucket: str | None = Field(default=None, description="The bucket of the s3 storage.")
    s3_endpoint_url: str | None = Field(
        default=None, description="The S3 endpoint (MinIO, Ceph, R2...); unset for AWS. Credentials come from the AWS chain.")
    s3_public_endpoint_url: str | None = Field(
        default=None,
        description="The S3 endpoint as clients reach it, when it differs from s3_endpoint_url (MinIO inside a "
                    "compose network): presigned URLs for clients are signed for this host; unset: s3_endpoint_url.")
    s3_prefix: str = Field(default="", description="A key prefix inside the bucket, for a bucket shared with others.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata catalog; SQLite under the derived root when unset.",
    )

    # Asset retries: exponential backoff with jitter, for transient failures only.
    retry_max_retries: int = Field(default=3, ge=0)
    retry_delay_s: float = Field(default=2.0, ge=0)

    # The scene detector of every job that names none; a change here makes every partition stale.
    scene_detector: DetectorParams = Field(
        default_factory=HeimdexParams,
        description="Scene detector (Heimdex's unless set, or a PySceneDetect one) and parameters, as the API's "
                    "`detector` in JSON "
                    "(HEIMDEX_SCENE_DETECTOR='{\"kind\": \"hash\", \"threshold\": 0.3}'); unset fields keep "
                    "the detector's defaults")
    # Replaced by `scene_detector`, and refused rather than ignored: a deployment upgraded with them
    # still in its environment would otherwise change its cuts without a word.
    scene_threshold: float | None = Field(default=None, exclude=True, description="removed: see scene_detector")
    scene_min_scene_len_frames: int | None = Field(default=None, exclude=True,
                                                   description="removed: see scene_detector")

    thumbnail_max_count: int = Field(default=20, ge=1, le=50)
    thumbnail_max_height: int = Field(default=360, ge=64)
    storyboard_tile_width: int = Field(
        default=160, ge=16, le=640,
        description="width of a storyboard tile in pixels (its height keeps the display aspect; never above the video's)")

    # Technical QC (heimdex_pipeline.media.qc): what counts as silence, black and frozen (each is described
    # where the QC document records it: QcThresholds), then what its checks allow.
    qc_silence_db: float = Field(default=-50.0, le=0)
    qc_silence_min_s: float = Field(default=2.0, gt=0)
    qc_black_min_s: float = Field(default=0.5, gt=0)
    qc_black_pixel_threshold: float = Field(default=0.10, ge=0, le=1)
    qc_black_picture_ratio: float = Field(default=0.98, ge=0, le=1)
    qc_freeze_noise_db: float = Field(default=-60.0, le=0)
    qc_freeze_min_s: float = Field(default=2.0, gt=0)
    qc_loudness_target_lufs: float | None = Field(
        default=None, le=0, description="integrated loudness the loudness check expects (-23 for EBU R128, "
                                        "-24 for ATSC A/85, about -14 for streaming); unset: no target")
    qc_loudness_tolerance_lu: float | None = Field(
        default=None, gt=0, description="how far from the target the integrated loudness may be; set with the target")
    qc_max_stretch_s: float = Field(
        default=5.0, gt=0, description="longest black or frozen stretch the QC check allows away from the start and end")
    qc_edge_s: float = Field(
        default=1.0, ge=0, description="a stretch beginning this close to the start or ending this close to the end "
                                       "(a fade, a slate) is not held against the video")

    # What one file may cost: the media layer refuses anything beyond these (heimdex_pipeline.media.limits).
    max_frame_pixels: int = Field(default=8192 * 4320, ge=1, description="largest frame (width x height) decoded")
    max_duration_s: float = Field(default=12 * 3600.0, gt=0, description="longest video accepted")
    media_timeout_s: float = Field(
        default=120.0, gt=0, description="wall-clock limit of an ffprobe run; the fixed part of a decoding deadline")
    # Measured worst case: 2.9 s per second of grainy 1080p H.264 with the machine at load 12 on 2 cores.
    media_timeout_ratio: float = Field(
        default=4.0, gt=0,
        description="decoding seconds allowed per second of video, per 1920x1080 of frame (at least one)")

    # A burst of ingests on the API's own cores starved it (docs/benchmarks.md, "A crowd"): media
    # steps run at a lower CPU priority, and yield the processor to requests.
    media_niceness: int = Field(
        default=10, ge=0, le=19,
        description="nice value of the thread that runs a video's steps, and of its decoders and ffmpeg (0 keeps it)")

    weak_threshold_bytes: int = Field(default=1_000_000_000, ge=0)
    # Minimum seconds between two looks at the bucket. Dagster's sensor daemon loops every 5 s and
    # skips a sensor whose last tick began less than this ago: at 5, a loop a few milliseconds
    # early skips, and looks come every 10 s; at 4 every loop looks (docs/benchmarks.md, "Throughput").
    sensor_interval_s: int = Field(default=4, ge=1)
    sensor_settle_s: float = Field(
        default=3.0, ge=0, description="quiet time after its last write before a file on disk is taken")
    sensor_max_new_files_per_tick: int = Field(default=200, ge=1)
    sensor_hash_budget_s: float = Field(default=20.0, gt=0, description="hashing time per sensor tick")
    sensor_lost_run_grace_s: float = Field(
        default=900.0, ge=0,
        description="Age after which an API video whose run was never launched is ingested by the sensor; "
                    "longer than any commit takes, so that a commit in flight is never raced.")

    # A video's claim (heimdex_pipeline.catalog.claims): a deletion and a commit or job of it take turns.
    asset_claim_wait_s: float = Field(
        default=120.0, ge=0,
        description="How long a deletion, commit or job request waits while another holds the same video's turn "
                    "(an immediate-mode run is waited for whole) before answering 409 asset_busy")
    asset_claim_lease_s: float = Field(
        default=60.0, gt=0,
        description="How long a video's turn outlives a holder that died (a holder alive renews it)")

    # Webhooks (heimdex_pipeline.webhooks): sent by the `webhook_sensor` from the catalog's outbox.
    webhook_interval_s: int = Field(default=4, ge=1, description="Minimum seconds between two runs of the sender")
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60, description="Time allowed to one POST to a receiver")
    webhook_retry_base_s: float = Field(
        default=10.0, gt=0, description="Delay before the first retry of a failed delivery; it doubles at each one")
    webhook_retry_max_delay_s: float = Field(default=3600.0, gt=0, description="Longest delay between two attempts")
    webhook_retry_for_s: float = Field(
        default=24 * 3600.0, gt=0, description="How long after its event a delivery is still tried")
    webhook_history_days: float = Field(
        default=30.0, gt=0, description="Days a finished delivery and its attempts are kept, then deleted")
    webhook_allow_private_addresses: bool = Field(
        default=False,
        description="Let webhooks reach loopback, private, link-local and other non-public addresses (a receiver "
                    "on this machine or the local network). Off in production: a webhook URL is the client's.")

    # Uploads over HTTP (the API's PUT and tus; heimdex_pipeline.uploads.lock and .sweep).
    # A day: long enough for a large file over a slow link, with tus resuming inside it; after it
    # the client calls init again (the URLs answer 403 `url_expired`).
    upload_url_ttl_s: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600,
                                  description="How long init's upload URLs stay valid (S3 allows at most 7 days).")
    upload_lock_lease_s: float = Field(
        default=30.0, ge=5, le=600,
        description="How long an upload's write lock outlives a request that stopped renewing it (it crashed); "
                    "the request renews it every second while it writes.")
    upload_sweep_interval_s: int = Field(
        default=600, ge=30, description="Minimum seconds between two sweeps of abandoned upload state")
    upload_sweep_age_s: float = Field(
        default=25 * 3600.0,
        description="Age after which the partial state of an upload (a partial file on disk; on S3 its `.tus/` "
                    "objects and its multipart upload) is swept; at least upload_url_ttl_s, since an upload "
                    "can be resumed until its URLs expire.")

    @model_validator(mode="after")
    def _no_removed_scene_settings(self) -> "PipelineSettings":
        if self.scene_threshold is not None or self.scene_min_scene_len_frames is not None:
            raise ValueError("HEIMDEX_SCENE_THRESHOLD and HEIMDEX_SCENE_MIN_SCENE_LEN_FRAMES are replaced by "
                             "HEIMDEX_SCENE_DETECTOR, e.g. "
                             "'{\"kind\": \"content\", \"threshold\": 27, \"min_scene_len_frames\": 15}'")
        return self

    @model_validator(mode="after")
    def _sweep_after_expiry(self) -> "PipelineSettings":
        if self.upload_sweep_age_s < self.upload_url_ttl_s:
            raise ValueError(f"HEIMDEX_UPLOAD_SWEEP_AGE_S ({self.upload_sweep_age_s:g}) is shorter than "
                             f"HEIMDEX_UPLOAD_URL_TTL_S ({self.upload_url_ttl_s}): the sweep would remove the "
                             "bytes of uploads a client may still resume")
        return self

    @model_validator(mode="after")
    def _loudness_target_whole(self) -> "PipelineSettings":
        if (self.qc_loudness_target_lufs is None) != (self.qc_loudness_tolerance_lu is None):
            raise ValueError("HEIMDEX_QC_LOUDNESS_TARGET_LUFS and HEIMDEX_QC_LOUDNESS_TOLERANCE_LU are set together "
                             "or not at all")
        return self

    @property
    def catalog_url(self) -> str:
        """The catalog's database URL, defaulting to SQLite beside the derived files."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.derived_root.resolve() / 'heimdex.db'}"


@lru_cache
def get_settings() -> PipelineSettings:
    """The process-wide settings, read once from the environment."""
    return PipelineSettings()
