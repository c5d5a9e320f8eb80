"""What the technical QC counts as silence, black and frozen, and what its checks allow, as a Dagster resource."""

from typing import TYPE_CHECKING

from dagster import ConfigurableResource

from heimdex_pipeline.media.qc import QcThresholds, thresholds_from

if TYPE_CHECKING:
    from heimdex_pipeline.core.settings import PipelineSettings


class QcRules(ConfigurableResource):
    """The QC pass's thresholds (`QcThresholds`) and its checks' limits (`HEIMDEX_QC_*`)."""

    silence_db: float
    silence_min_s: float
    black_min_s: float
    black_pixel_threshold: float
    black_picture_ratio: float
    freeze_noise_db: float
    freeze_min_s: float
    loudness_target_lufs: float | None
    loudness_tolerance_lu: float | None
    max_stretch_s: float
    edge_s: float

    @classmethod
    def from_settings(cls, settings: "PipelineSettings") -> "QcRules":
        """The rules the settings configure."""
        checks = ("loudness_target_lufs", "loudness_tolerance_lu", "max_stretch_s", "edge_s")
        return cls(**thresholds_from(settings).model_dump(), **{name: getattr(settings, f"qc_{name}") for name in checks})

    @property
    def thresholds(self) -> QcThresholds:
        """What the QC pass measures with (recorded in its document)."""
        return QcThresholds(**{name: getattr(self, name) for name in QcThresholds.model_fields})
