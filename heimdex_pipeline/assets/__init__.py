"""Software-defined assets: probe metadata, scene sidecar, thumbnails, storyboard and technical QC of each video,
and their checks."""

from heimdex_pipeline.assets.checks import VIDEO_CHECKS
from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.assets.qc import media_qc
from heimdex_pipeline.assets.storyboard import storyboard
from heimdex_pipeline.assets.video import probe_metadata, scene_sidecar, thumbnails

__all__ = ["VIDEO_CHECKS", "media_qc", "probe_metadata", "scene_sidecar", "storyboard", "thumbnails", "videos_partitions"]
