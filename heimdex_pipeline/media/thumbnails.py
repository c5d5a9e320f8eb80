"""Thumbnails: which instants to show, and JPEG extraction by seeking, not decoding through.

Each thumbnail is taken at a keyframe inside its window when there is one (ffmpeg then
decodes a single frame), and by an exact seek otherwise, so the cost does not grow with
the video's duration.
"""

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from heimdex_pipeline.media.limits import Deadline, MediaLimits, current_limits
from heimdex_pipeline.media.probe import run_ffprobe
from heimdex_pipeline.media.progress import Progress, Report
from heimdex_pipeline.media.detector import Scene
from heimdex_pipeline.media.tools import (
    FFMPEG,
    FFPROBE,
    FORMAT_OPTIONS,
    decoder_options,
    failure,
    input_url,
    require_file,
    run_tool,
)

# More windows than a float counts exactly: an interval below duration / 2**53 plans as that.
_MAX_WINDOWS = 2.0**53


@dataclass(frozen=True)
class ThumbnailPolicy:
    """The contract's policy: one frame per scene when `interval_s` is 0, else one every `interval_s`."""

    interval_s: float = 0.0
    max_count: int = 20
    max_height: int = 360

    def __post_init__(self) -> None:
        # Written so that NaN fails too.
        if not self.interval_s >= 0 or not 1 <= self.max_count <= 50 or self.max_height < 64:
            raise ValueError("policy needs interval_s >= 0, max_count in 1..50 and max_height >= 64")


@dataclass(frozen=True)
class ThumbnailSlot:
    """Where a thumbnail should come from: a target instant inside a window, in seconds."""

    target_s: float
    window_start_s: float
    window_end_s: float


@dataclass(frozen=True)
class Thumbnail:
    """One extracted JPEG: `ts_ms` is the shown frame's time from the video's first frame."""

    idx: int
    path: Path
    width: int
    height: int
    ts_ms: int


def _evenly(total: int, count: int) -> list[int]:
    """Which of `total` items to keep, `count` of them spread evenly (all when there are fewer)."""
    if total <= count:
        return list(range(total))
    step = total / count
    return [int(i * step + step / 2) for i in range(count)]


def _interval_slots(duration_s: float, interval_s: float, max_count: int) -> list[ThumbnailSlot]:
    """The middles of consecutive `interval_s` windows, spread evenly down to `max_count`.

    Only the windows kept are made: the cost follows `max_count`, however small the interval.
    """
    if duration_s <= 0:
        return []
    # Past the duration, any interval is one window, the whole video.
    interval_s = min(max(interval_s, duration_s / _MAX_WINDOWS), duration_s)
    # Window k starts at k * interval_s; a last window shorter than half an interval is a
    # sliver at the very end and is skipped.
    windows = 1 + max(0, math.floor(duration_s / interval_s - 0.5))
    slots = []
    for k in _evenly(windows, max_count):
        start = k * interval_s
        end = min(start + interval_s, duration_s)
        slots.append(ThumbnailSlot((start + end) / 2, start, end))
    return slots


def plan_thumbnails(scenes: list[Scene], duration_s: float, policy: ThumbnailPolicy) -> list[ThumbnailSlot]:
    """The slots to fill: scene middles, or interval middles, spread evenly down to `max_count`."""
    if policy.interval_s > 0:
        return _interval_slots(duration_s, policy.interval_s, policy.max_count)
    return [ThumbnailSlot((scenes[i].start_s + scenes[i].end_s) / 2, scenes[i].start_s, scenes[i].end_s)
            for i in _evenly(len(scenes), policy.max_count)]


def keyframe_times(path: Path, probe: dict[str, Any], windows: Sequence[tuple[float, float]] | None = None,
                   limits: MediaLimits | None = None, deadline: Deadline | None = None) -> list[float]:
    """Keyframe times of the video stream, from its packet index (no decoding).

    Given `windows` (`[start, end)` seconds from the first frame), only the packets from the
    keyframe before each window to its end are read, so the cost follows the windows rather
    than the file's duration; keyframes outside them may be missing. ffprobe is stopped at
    `deadline` (by default the probed video's decoding deadline).
    """
    limits = limits or current_limits()
    require_file(path)
    start = probe.get("video_start_s") or 0.0
    options = ["-select_streams", f"{probe['video_stream_index']}", "-show_entries", "packet=pts_time,flags"]
    if windows is not None:
        if not windows:
            return []
        # ffprobe takes absolute timestamps and seeks to the keyframe at or before each start.
        options += ["-read_intervals", ",".join(f"{a + start:.6f}%{b + start:.6f}" for a, b in _merged(windows))]
    raw = run_ffprobe(FFPROBE, path, options, limits, deadline or limits.decoding_deadline(probe))
    times = {float(p["pts_time"]) - start for p in raw.get("packets", [])
             if "K" in p.get("flags", "") and p.get("pts_time") not in (None, "N/A")}
    return sorted(times)


def _merged(windows: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Windows in time order, touching or overlapping ones joined: one seek each."""
    merged: list[tuple[float, float]] = []
    for a, b in sorted(windows):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def output_size(probe: dict[str, Any], max_height: int) -> tuple[int, int]:
    """Thumbnail size: display aspect (rotation and pixel aspect applied), at most `max_height`, even."""
    display_w, display_h = probe["display_width"], probe["display_height"]
    height = max(2, min(display_h, max_height) // 2 * 2)
    width = max(2, round(display_w * height / display_h / 2) * 2)
    return width, height


def _seek_point(slot: ThumbnailSlot, keyframes: list[float]) -> tuple[float, bool]:
    """The keyframe in the window nearest its target (cheap), or the target itself (exact seek)."""
    inside = [k for k in keyframes if slot.window_start_s <= k < slot.window_end_s]
    if inside:
        return min(inside, key=lambda k: abs(k - slot.target_s)), True
    return slot.target_s, False


def _extract_one(path: Path, out: Path, seek_s: float, on_keyframe: bool, size: tuple[int, int],
                 file_offset_s: float, limits: MediaLimits, deadline: Deadline) -> None:
    # On a keyframe, a non-accurate seek lands on it and decodes one frame; elsewhere the
    # accurate seek decodes from the previous keyframe up to the target.
    options: dict[str, Any] = {"ss": f"{seek_s + file_offset_s + (0.0005 if on_keyframe else 0):.6f}"}
    if on_keyframe:
        options["noaccurate_seek"] = None
    stream = (
        ffmpeg.input(input_url(path), threads=1, **FORMAT_OPTIONS, **decoder_options(limits), **options)
        .video.filter("scale", size[0], size[1])
        .filter("setsar", 1)
        .output(str(out), vframes=1, format="image2", vcodec="mjpeg", **{"q:v": 3}, threads=1)
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
        .overwrite_output()
    )
    run_tool("ffmpeg", stream.compile(cmd=FFMPEG), path, deadline)
    if not out.is_file():
        raise failure("ffmpeg", path, 0, b"no thumbnail written")


def extract_thumbnails(path: Path | str, probe: dict[str, Any], slots: list[ThumbnailSlot], out_dir: Path,
                       max_height: int, limits: MediaLimits | None = None,
                       progress: Report | None = None) -> list[Thumbnail]:
    """Write one JPEG per slot into `out_dir` as `NNNN.jpg`, a few ffmpeg processes at a time.

    The video must be within `limits` (by default the settings'); every ffmpeg run is stopped
    at the video's decoding deadline. `progress(tiles, of)` is told the thumbnails written so far.
    """
    limits = limits or current_limits()
    require_file(path)
    limits.check(probe, path.name)
    deadline = limits.decoding_deadline(probe)
    keyframes = keyframe_times(path, probe, [(slot.window_start_s, slot.window_end_s) for slot in slots],
                               limits, deadline)
    size = output_size(probe, max_height)
    file_offset = (probe.get("video_start_s") or 0.0) - (probe.get("format_start_s") or 0.0)
    out_dir.mkdir(parents=True, exist_ok=True)
    points = [_seek_point(slot, keyframes) for slot in slots]
    jobs = [(path, out_dir / f"{i:04d}.jpg", seek, on_key, size, file_offset, limits, deadline)
            for i, (seek, on_key) in enumerate(points)]
    counted = Progress(len(jobs), progress)
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        for done, _ in enumerate(pool.map(lambda job: _extract_one(*job), jobs), start=1):
            counted.update(done)
    counted.finish()
    return [Thumbnail(idx=i, path=job[1], width=size[0], height=size[1], ts_ms=round(seek * 1000))
            for i, (job, (seek, _)) in enumerate(zip(jobs, points, strict=True))]
