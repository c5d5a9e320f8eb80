"""What the scene pass shares with the other steps of a video: the tap keeping its storyboard's tiles and
QC's luma figures (`frame_taps`), made for the settings those steps will run with."""

from typing import Any

from heimdex_pipeline.media.frame_taps import PictureTap, SharedFramesTap
from heimdex_pipeline.media.storyboard import tile_tap


def scene_pass_tap(probe: dict[str, Any], tile_width: int, black_pixel_threshold: float) -> SharedFramesTap:
    """The tap to give `detect_scenes` for a video of this probe: storyboard tiles `tile_width` wide and each
    frame's share of pixels at or below `black_pixel_threshold`; `shared(frame_count)` is what it kept."""
    return SharedFramesTap(probe.get("video_start_s") or 0.0, tile_tap(probe, tile_width), PictureTap(black_pixel_threshold))
