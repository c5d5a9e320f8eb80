"""What a video's steps may spend on a file, and how they shape what they make, as a Dagster resource."""

from typing import TYPE_CHECKING

from dagster import ConfigurableResource, InitResourceContext

from heimdex_pipeline.media.limits import MediaLimits, limits_from
from heimdex_pipeline.media.priority import lower_thread_priority

if TYPE_CHECKING:
    from heimdex_pipeline.core.settings import PipelineSettings


class MediaWork(ConfigurableResource):
    """The media limits every step decodes under, the CPU priority it decodes at, and the storyboard's
    tile width (`HEIMDEX_MAX_*`, `HEIMDEX_MEDIA_TIMEOUT_*`, `HEIMDEX_MEDIA_NICENESS`,
    `HEIMDEX_STORYBOARD_TILE_WIDTH`)."""

    max_frame_pixels: int
    max_duration_s: float
    timeout_s: float
    timeout_ratio: float
    storyboard_tile_width: int
    niceness: int = 0

    @classmethod
    def from_settings(cls, settings: "PipelineSettings") -> "MediaWork":
        """The media work the settings configure."""
        limits = limits_from(settings)
        return cls(max_frame_pixels=limits.max_frame_pixels, max_duration_s=limits.max_duration_s,
                   timeout_s=limits.timeout_s, timeout_ratio=limits.timeout_ratio,
                   storyboard_tile_width=settings.storyboard_tile_width, niceness=settings.media_niceness)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Lower the priority of the thread that runs the steps (a run worker's, or the API's run thread in
        immediate mode) before any step decodes."""
        lower_thread_priority(self.niceness)

    @property
    def limits(self) -> MediaLimits:
        """The limits a step passes to every media function it calls."""
        return MediaLimits(max_frame_pixels=self.max_frame_pixels, max_duration_s=self.max_duration_s,
                           timeout_s=self.timeout_s, timeout_ratio=self.timeout_ratio)
