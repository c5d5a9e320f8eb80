"""What one file may cost: the largest frame, the longest video, and how long reading it may take.

A file beyond a limit is refused from its probe, before anything is decoded, and the decoders
are given the frame limit themselves (libavcodec's `max_pixels`), so a container header that
understates the frame size does not help. Every ffprobe and ffmpeg run and every PyAV pass
has a wall-clock deadline: a fixed part, plus a part that grows with the duration and frame
size the probe announces, so a two-hour 4K file gets hours while a file whose header
understates what it holds runs out of time early. What an honest file may cost is bounded
by the duration and frame limits; the deadline bounds a lying file and a tool that hangs.
A file past its deadline is not retried: a crafted file would time out again.
"""

import time
from dataclasses import dataclass
from typing import Any

from heimdex_pipeline.core.settings import PipelineSettings, get_settings
from heimdex_pipeline.media.errors import MediaLimitError, MediaTimeoutError

# The frame size the timeout ratio is counted in.
REFERENCE_PIXELS = 1920 * 1080


@dataclass(frozen=True)
class MediaLimits:
    """The limits one file is read under (the settings hold their defaults: `limits_from`)."""

    max_frame_pixels: int
    max_duration_s: float
    timeout_s: float
    # Decoding seconds per second of video, per REFERENCE_PIXELS of frame (at least one).
    timeout_ratio: float

    def check(self, probe: dict[str, Any], name: str) -> None:
        """Refuse a probed video whose frames or duration are beyond the limits."""
        for stream in probe["streams"]:
            if stream.get("codec_type") == "video":
                pixels = (stream.get("width") or 0) * (stream.get("height") or 0)
                if pixels > self.max_frame_pixels:
                    raise MediaLimitError(
                        f"{name} has {stream['width']}x{stream['height']} frames, more than the limit of "
                        f"{self.max_frame_pixels} pixels")
        if not probe["duration_s"] <= self.max_duration_s:  # NaN too
            raise MediaLimitError(f"{name} lasts {probe['duration_s']:.0f} s, more than the limit of "
                                  f"{self.max_duration_s:.0f} s")

    def probe_deadline(self) -> "Deadline":
        """The deadline of one ffprobe run on a file not yet probed."""
        return Deadline.after(self.timeout_s)

    def decoding_deadline(self, probe: dict[str, Any]) -> "Deadline":
        """The deadline of a pass over a probed video: longer and larger videos get more time."""
        scale = max(1.0, probe["width"] * probe["height"] / REFERENCE_PIXELS)
        return Deadline.after(self.timeout_s + probe["duration_s"] * self.timeout_ratio * scale)


@dataclass(frozen=True)
class Deadline:
    """A wall-clock instant (on the monotonic clock) by which reading a file must be done."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        """The deadline `seconds` from now."""
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        """Seconds left; zero or less once it has passed."""
        return self.at - time.monotonic()

    def check(self, what: str) -> None:
        """Raise MediaTimeoutError once the deadline has passed; `what` names the work and the file."""
        if self.remaining() <= 0:
            raise MediaTimeoutError(f"{what} took longer than its limit of {self.seconds:.0f} s and was stopped")


def limits_from(settings: PipelineSettings) -> MediaLimits:
    """The limits the given settings set."""
    return MediaLimits(max_frame_pixels=settings.max_frame_pixels, max_duration_s=settings.max_duration_s,
                       timeout_s=settings.media_timeout_s, timeout_ratio=settings.media_timeout_ratio)


def current_limits() -> MediaLimits:
    """The limits of this process's settings (`HEIMDEX_MAX_FRAME_PIXELS`, ...)."""
    return limits_from(get_settings())
