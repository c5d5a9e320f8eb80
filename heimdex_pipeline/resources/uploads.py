"""How the upload sensor takes files from the bucket, as a Dagster resource."""

from typing import TYPE_CHECKING

from dagster import ConfigurableResource

if TYPE_CHECKING:
    from heimdex_pipeline.core.settings import PipelineSettings


class UploadRules(ConfigurableResource):
    """When a file is settled, how much one tick takes and hashes, when an API video's run counts as lost
    (the `HEIMDEX_SENSOR_*` settings and `HEIMDEX_WEAK_THRESHOLD_BYTES`), and what the sweep of abandoned
    uploads may remove (`HEIMDEX_UPLOAD_SWEEP_AGE_S`, `HEIMDEX_UPLOAD_LOCK_LEASE_S`), and the lease of the claims
    a tick takes (`HEIMDEX_ASSET_CLAIM_LEASE_S`)."""

    settle_s: float
    max_new_files_per_tick: int
    hash_budget_s: float
    lost_run_grace_s: float
    weak_threshold_bytes: int
    sweep_age_s: float
    lock_lease_s: float
    # How long the claim on a video a tick takes lasts (`catalog.claims`) if the daemon never gives it back.
    claim_lease_s: float

    @classmethod
    def from_settings(cls, settings: "PipelineSettings") -> "UploadRules":
        """The rules the settings configure."""
        return cls(settle_s=settings.sensor_settle_s, max_new_files_per_tick=settings.sensor_max_new_files_per_tick,
                   hash_budget_s=settings.sensor_hash_budget_s, lost_run_grace_s=settings.sensor_lost_run_grace_s,
                   weak_threshold_bytes=settings.weak_threshold_bytes, sweep_age_s=settings.upload_sweep_age_s,
                   lock_lease_s=settings.upload_lock_lease_s, claim_lease_s=settings.asset_claim_lease_s)
