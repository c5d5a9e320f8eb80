"""Probe metadata: ffprobe normalised to the fields Heimdex uses, checked against the limits."""

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

from heimdex_pipeline.media.errors import UnreadableMediaError
from heimdex_pipeline.media.limits import Deadline, MediaLimits, current_limits
from heimdex_pipeline.media.tools import FFPROBE, input_args, input_url, require_file, run_tool


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


def normalize_probe(raw: dict[str, Any]) -> dict[str, Any]:
    """Reduce ffprobe's format and streams to Heimdex's probe document."""
    streams = raw.get("streams", [])
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    if video is None:
        raise UnreadableMediaError("no video stream in the file")
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
    video_start = _float(video.get("start_time")) or 0.0
    duration = _float(video.get("duration")) or _float(fmt.get("duration"))
    if duration is None or duration <= 0:
        raise UnreadableMediaError("the video has no duration")
    time_base = _fraction(video.get("time_base"))
    return {
        "duration_s": round(duration, 6),
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
        "video_start_s": video_start,
        "format_start_s": _float(fmt.get("start_time")) or 0.0,
        "time_base": f"{time_base.numerator}/{time_base.denominator}" if time_base else None,
        "frame_count": int(video["nb_frames"]) if str(video.get("nb_frames", "")).isdigit() else None,
        "container": fmt.get("format_name"),
        "size_bytes": int(fmt["size"]) if str(fmt.get("size", "")).isdigit() else None,
        "bit_rate": int(fmt["bit_rate"]) if str(fmt.get("bit_rate", "")).isdigit() else None,
        "streams": [_stream_summary(s) for s in streams],
    }


def run_ffprobe(cmd: str, path: Path, options: list[str], limits: MediaLimits, deadline: Deadline) -> dict[str, Any]:
    """ffprobe's JSON answer with `options` (what to show), the input opened as every input is."""
    # Not `ffmpeg.probe`: it leaves an ffprobe that outlives its timeout running, and a hostile
    # file can keep one busy for good; `run_tool` kills it at the deadline.
    args = [cmd, "-hide_banner", "-loglevel", "error", *options, "-of", "json", *input_args(limits), input_url(path)]
    return json.loads(run_tool("ffprobe", args, path, deadline))


def probe_video(path: Path | str, limits: MediaLimits | None = None) -> dict[str, Any]:
    """The normalised probe document of a video file, within `limits` (by default the settings').

    Raises UnsupportedFormatError for a playlist, manifest or other non-container input,
    MediaLimitError for frames or a duration beyond the limits (MediaTimeoutError when ffprobe
    runs out of time), UnreadableMediaError for anything else that is not a readable video,
    and TransientMediaError when the file is missing or ffprobe was cut off.
    """
    limits = limits or current_limits()
    require_file(path)
    raw = run_ffprobe(FFPROBE, path, ["-show_format", "-show_streams"], limits, limits.probe_deadline())
    probe = normalize_probe(raw)
    limits.check(probe, path.name)
    return probe
