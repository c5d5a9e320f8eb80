"""Software-defined assets: probe metadata, scene sidecar and thumbnails of each video, and their checks."""

from heimdex_pipeline.assets.checks import VIDEO_CHECKS
from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.assets.video import probe_metadata, scene_sidecar, thumbnails

__all__ = ["VIDEO_CHECKS", "probe_metadata", "scene_sidecar", "thumbnails", "videos_partitions"]
