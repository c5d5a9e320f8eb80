"""Probe metadata: ffprobe normalised to the fields Heimdex uses, checked against the limits.

ffprobe reads a local file, or an object of the store by the URL the store made for it
(`ObjectStore.probe_input`): the headers, and the packets of the video's last seconds, by range
requests, not the whole object.

A video lasts from its first frame to the end of its last frame: the last frame's timestamp
plus its duration, on the video stream's own timeline (the demuxer has applied the edit list,
and the stream's start time is the first frame's). The headers' durations are not that: an MP4
announces the span of its decoding timestamps, which B-frames and a variable frame rate move
away from the frames' (a VFR phone clip announced 3.638 s for frames that end at 3.858 s), and
a container's duration covers its longest stream. So the probe reads the packets at the end.
Scene times, thumbnails, the storyboard and the checks all take the video's length from here.
"""

import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from heimdex_pipeline.media.errors import MediaLimitError, UnreadableMediaError
from heimdex_pipeline.media.limits import Deadline, MediaLimits, current_limits
from heimdex_pipeline.media.tools import (
    FFPROBE,
    Source,
    as_source,
    input_args,
    input_url,
    require_file,
    run_tool,
    source_name,
)


# The video's last packets are listed from this long before the end its headers announce, to the
# end of the file: past the frames B-frames reorder behind the last one, and an end a few frames
# off. (An end announced much too early only makes the list longer.)
TAIL_S = 2.0


def _fraction(value: str | None) -> Fraction | None:
    if not value or value in {"0/0", "N/A"}:
        return None
    try:
        result = Fraction(value.replace(":", "/"))
    except (ValueError, ZeroDivisionError):
        return None
    return result if result > 0 else None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _exact(value: Any) -> Fraction | None:
    """A decimal or integer of ffprobe's answer as an exact fraction, None when absent."""
    try:
        return Fraction(str(value))
    except (TypeError, ValueError, ZeroDivisionError):
        return None


# Matroska keeps a stream's duration as a tag (`DURATION=00:00:04.000000000`).
_TAG_DURATION = re.compile(r"^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def _tagged_duration(stream: dict[str, Any]) -> Fraction | None:
    found = _TAG_DURATION.match(str(stream.get("tags", {}).get("DURATION", "")))
    if not found:
        return None
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + Fraction(seconds)


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise display rotation in degrees (0, 90, 180, 270), from side data or the old tag."""
    for side_data in stream.get("side_data_list", []):
        if "rotation" in side_data:
            # The display matrix counts counter-clockwise; players turn the picture the other way.
            return int(-float(side_data["rotation"])) % 360
    return int(stream.get("tags", {}).get("rotate", 0)) % 360


def _stream_summary(stream: dict[str, Any]) -> dict[str, Any]:
    summary = {
        "index": stream.get("index"),
        "codec_type": stream.get("codec_type"),
        "codec": stream.get("codec_name"),
        "duration_s": _float(stream.get("duration")),
        "bit_rate": int(stream["bit_rate"]) if str(stream.get("bit_rate", "")).isdigit() else None,
        "language": stream.get("tags", {}).get("language"),
    }
    if stream.get("codec_type") == "video":
        summary.update(width=stream.get("width"), height=stream.get("height"), pix_fmt=stream.get("pix_fmt"))
    if stream.get("codec_type") == "audio":
        summary.update(sample_rate=_float(stream.get("sample_rate")), channels=stream.get("channels"))
    return summary


def video_stream(raw: dict[str, Any]) -> dict[str, Any]:
    """The video stream of ffprobe's answer (not a cover picture)."""
    video = next((s for s in raw.get("streams", [])
                  if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")), None)
    if video is None:
        raise UnreadableMediaError("no video stream in the file")
    return video


def _announced_end(video: dict[str, Any], fmt: dict[str, Any]) -> Fraction | None:
    """Where the headers say the video stream ends (seconds on its timeline): its own duration, else
    Matroska's DURATION tag, else the container's."""
    duration = _exact(video.get("duration")) or _tagged_duration(video)
    if duration:
        return (_exact(video.get("start_time")) or 0) + duration
    if duration := _exact(fmt.get("duration")):
        return (_exact(fmt.get("start_time")) or 0) + duration
    return None


def tail_options(video: dict[str, Any], fmt: dict[str, Any]) -> list[str]:
    """ffprobe's options that list the video stream's packets from TAIL_S before its announced end to the
    end of the file (every packet when nothing is announced)."""
    options = ["-select_streams", str(video.get("index", 0)), "-show_entries", "packet=pts,duration,flags"]
    if (end := _announced_end(video, fmt)) is not None:
        options += ["-read_intervals", f"{float(end) - TAIL_S:.6f}%"]
    return options


def _last_frame(packets: list[dict[str, Any]], time_base: Fraction, container_end: Fraction | None,
                frame: Fraction) -> tuple[Fraction, Fraction] | None:
    """The last frame's timestamp and duration in seconds, from the packets at the end; None without any.

    A frame the container gives no duration (the MP4 muxer writes 0 for a last frame whose length
    it did not know) lasts until the container's end when that comes within `frame`, else `frame`.
    Packets the edit list leaves out (flagged D) are no frame of the video.
    """
    shown = [p for p in packets if "D" not in p.get("flags", "") and _exact(p.get("pts")) is not None]
    if not shown:
        return None
    last = max(shown, key=lambda p: int(p["pts"]))
    at = int(last["pts"]) * time_base
    duration = (_exact(last.get("duration")) or 0) * time_base
    if duration <= 0:
        duration = container_end - at if container_end is not None and at < container_end <= at + frame else frame
    return at, duration


def normalize_probe(raw: dict[str, Any], tail: list[dict[str, Any]]) -> dict[str, Any]:
    """Reduce ffprobe's format and streams, and the video's packets at the end (`tail_options`), to
    Heimdex's probe document."""
    streams = raw.get("streams", [])
    video = video_stream(raw)
    fmt = raw.get("format", {})
    rate = _fraction(video.get("avg_frame_rate")) or _fraction(video.get("r_frame_rate"))
    nominal_rate = _fraction(video.get("r_frame_rate")) or rate
    sar = _fraction(video.get("sample_aspect_ratio")) or Fraction(1)
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise UnreadableMediaError("the video stream has no picture size")
    rotation = _rotation(video)
    display_width, display_height = round(width * sar), height
    if rotation in (90, 270):
        display_width, display_height = display_height, display_width
    video_start = _exact(video.get("start_time")) or Fraction(0)
    time_base = _fraction(video.get("time_base"))
    # One frame at the nominal rate: how long a frame lasts when nothing else says.
    frame = 1 / (nominal_rate or Fraction(25))
    format_duration = _exact(fmt.get("duration"))
    format_end = (_exact(fmt.get("start_time")) or 0) + format_duration if format_duration else None
    last = _last_frame(tail, time_base, format_end, frame) if time_base else None
    announced = _announced_end(video, fmt)
    if last is None or (announced is not None and sum(last) < announced - frame):
        # Nothing read at the end, or the frames stop short of what the index announces (an upload
        # cut short): the video lasts what is announced, which the scenes then fail to reach.
        if announced is None:
            raise UnreadableMediaError("the video has no duration")
        end, last_frame_duration = announced, last[1] if last else frame
    else:
        end, last_frame_duration = sum(last), last[1]
    duration = end - video_start
    if duration <= 0:
        raise UnreadableMediaError("the video has no duration")
    return {
        "duration_s": round(float(duration), 6),
        "last_frame_duration_s": round(float(last_frame_duration), 6),
        "width": width,
        "height": height,
        "display_width": display_width,
        "display_height": display_height,
        "sample_aspect_ratio": f"{sar.numerator}:{sar.denominator}",
        "fps": round(float(rate), 6) if rate else None,
        "nominal_fps": f"{nominal_rate.numerator}/{nominal_rate.denominator}" if nominal_rate else None,
        "variable_frame_rate": bool(rate and nominal_rate and rate != nominal_rate),
        "codec": video.get("codec_name"),
        "rotation": rotation,
        "video_stream_index": video.get("index"),
        "video_start_s": float(video_start),
        "format_start_s": _float(fmt.get("start_time")) or 0.0,
        "time_base": f"{time_base.numerator}/{time_base.denominator}" if time_base else None,
        "frame_count": int(video["nb_frames"]) if str(video.get("nb_frames", "")).isdigit() else None,
        "container": fmt.get("format_name"),
        "size_bytes": int(fmt["size"]) if str(fmt.get("size", "")).isdigit() else None,
        "bit_rate": int(fmt["bit_rate"]) if str(fmt.get("bit_rate", "")).isdigit() else None,
        "streams": [_stream_summary(s) for s in streams],
    }


def run_ffprobe(cmd: str, path: Source, options: list[str], limits: MediaLimits, deadline: Deadline) -> dict[str, Any]:
    """ffprobe's JSON answer with `options` (what to show), the input opened as every input is."""
    # Not `ffmpeg.probe`: it leaves an ffprobe that outlives its timeout running, and a hostile
    # file can keep one busy for good; `run_tool` kills it at the deadline.
    args = [cmd, "-hide_banner", "-loglevel", "error", *options, "-of", "json", *input_args(limits, path), input_url(path)]
    return json.loads(run_tool("ffprobe", args, path, deadline))


def probe_video(path: Path | str, limits: MediaLimits | None = None) -> dict[str, Any]:
    """The normalised probe document of a video file, or of an object by its store's URL
    (`ObjectStore.probe_input`), within `limits` (by default the settings').

    Raises UnsupportedFormatError for a playlist, manifest or other non-container input,
    MediaLimitError for frames or a duration beyond the limits (MediaTimeoutError when ffprobe
    runs out of time), UnreadableMediaError for anything else that is not a readable video,
    and TransientMediaError when the file is missing, the store behind a URL failed or
    ffprobe was cut off.
    """
    limits = limits or current_limits()
    path = as_source(path)
    require_file(path)
    deadline = limits.probe_deadline()
    raw = run_ffprobe(FFPROBE, path, ["-show_format", "-show_streams"], limits, deadline)
    try:
        tail = run_ffprobe(FFPROBE, path, tail_options(video_stream(raw), raw.get("format", {})), limits, deadline)
    except MediaLimitError:
        raise
    except UnreadableMediaError:
        tail = {}  # an end ffprobe cannot read: the headers tell the length
    probe = normalize_probe(raw, tail.get("packets", []))
    limits.check(probe, source_name(path))
    return probe
