"""Thumbnails: which instants to show, and JPEG extraction by seeking, not decoding through.

Each thumbnail is a frame the packet index lists, picked by its timestamp: a keyframe inside
its window when there is one (ffmpeg then decodes a single frame), else the frame shown at the
window's target instant, the last one at or before it. A scene starts with a frame, so its
thumbnail is one of its own frames however short it is (a last scene of one frame, whose
middle no frame starts at, included). ffmpeg seeks to the keyframe that frame is decoded from
and keeps the first frame from its timestamp on, so the cost does not grow with the video's
duration, and a container without an index (MPEG-TS), where a seek lands wherever the
timestamps say, gets the same frame. Thumbnails after the same keyframe share one decode from it.
"""

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from heimdex_pipeline.media.errors import UnreadableMediaError
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


@dataclass(frozen=True)
class IndexedFrame:
    """A frame as the packet index lists it: `time_s` from the video's first frame, `dts_s` the
    decoding timestamp of its packet on the file's timeline (where a seek to it lands)."""

    time_s: float
    dts_s: float
    keyframe: bool
    # Left out of the video by its edit list: decoded only as a reference for the frames after it.
    discarded: bool


@dataclass(frozen=True)
class Pick:
    """The frame a slot shows, the keyframe it is decoded from (None: decode from the start), and an
    instant between the frame shown before it and itself (seconds from the first frame)."""

    frame: IndexedFrame
    keyframe: IndexedFrame | None
    cut_s: float


# Seconds an index read starts before a window whose frame or keyframe it did not reach (doubling
# each time): a seek in a container without an index lands by timestamp, after the keyframe.
_LEAD_S = 2.0
# Times come from ffprobe in microseconds.
_EPSILON_S = 5e-7
# How far before a frame its cut is made when the frame before it is not known, and how far past a
# keyframe a seek to it is aimed (its time is rounded to microseconds).
_CUT_S = 0.0005
# Thumbnails decoded from one keyframe in one go (at most; ffmpeg's expressions keep 10 variables, one per
# thumbnail), and decodes in one ffmpeg process, each an input of its own with its own seek: a process
# costs about 0.07 CPU s to start, as much as decoding a frame or two. Each input holds a decoder and its
# reference frames, so a process takes fewer of larger frames: eight of 1080p, one of the largest.
THUMBNAILS_PER_DECODE = 8
DECODES_PER_FFMPEG = 8
PIXELS_PER_FFMPEG = DECODES_PER_FFMPEG * 1920 * 1088
# The demuxers (ffprobe's format names) that seek to the keyframe at or before a presentation time.
KEYFRAME_INDEXED = {"mov", "matroska"}


def frame_index(path: Path, probe: dict[str, Any], windows: Sequence[tuple[float, float]] | None = None,
                limits: MediaLimits | None = None, deadline: Deadline | None = None) -> list[IndexedFrame]:
    """The video stream's frames from its packet index (no decoding), in decoding order.

    Given `windows` (`[start, end)` seconds from the first frame), only the packets from where a
    seek to each window's start lands (the keyframe before it, in an indexed container) to its end
    are read, so the cost follows the windows rather than the file's duration. ffprobe is stopped
    at `deadline` (by default the probed video's decoding deadline).
    """
    limits = limits or current_limits()
    require_file(path)
    start = probe.get("video_start_s") or 0.0
    options = ["-select_streams", f"{probe['video_stream_index']}", "-show_entries", "packet=pts_time,dts_time,flags"]
    if windows is not None:
        if not windows:
            return []
        # ffprobe takes absolute timestamps; a window reaching back before the first frame is read from the start.
        options += ["-read_intervals", ",".join(f"{a + start:.6f}%{b + start:.6f}" if a > 0 else f"%{b + start:.6f}"
                                                for a, b in _merged(windows))]
    raw = run_ffprobe(FFPROBE, path, options, limits, deadline or limits.decoding_deadline(probe))
    frames = []
    for packet in raw.get("packets", []):
        pts, dts = _seconds(packet.get("pts_time")), _seconds(packet.get("dts_time"))
        if pts is not None:
            flags = packet.get("flags", "")
            frames.append(IndexedFrame(pts - start, pts if dts is None else dts, "K" in flags, "D" in flags))
    return frames


def _seconds(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def pick_frame(slot: ThumbnailSlot, frames: Sequence[IndexedFrame]) -> Pick | None:
    """The frame `slot` shows: the keyframe inside its window nearest its target (cheap), else the
    frame shown at the target (the last at or before it); and the keyframe it is decoded from.
    None when `frames` do not reach back to both."""
    shown = [f for f in frames if not f.discarded]
    inside = [f for f in shown
              if f.keyframe and slot.window_start_s - _EPSILON_S <= f.time_s < slot.window_end_s - _EPSILON_S]
    if inside:
        frame = keyframe = min(inside, key=lambda f: abs(f.time_s - slot.target_s))
    else:
        before = [f for f in shown if f.time_s <= slot.target_s + _EPSILON_S]
        if not before:
            return None
        frame = max(before, key=lambda f: f.time_s)
        # The last keyframe shown no later than the frame: decoding from it gives the frame, leading
        # frames of an open GOP included. A discarded keyframe (before an edit) counts too.
        keyframes = [f for f in frames if f.keyframe and f.time_s <= frame.time_s + _EPSILON_S]
        if not keyframes:
            return None
        keyframe = max(keyframes, key=lambda f: f.time_s)
    return Pick(frame, keyframe, _cut(frame, shown))


def _cut(frame: IndexedFrame, shown: Sequence[IndexedFrame]) -> float:
    """Halfway between `frame` and the frame shown before it (_CUT_S before it when none is known)."""
    earlier = [f.time_s for f in shown if f.time_s < frame.time_s - _EPSILON_S]
    return (max(earlier) + frame.time_s) / 2 if earlier else frame.time_s - _CUT_S


def pick_frames(path: Path, probe: dict[str, Any], slots: Sequence[ThumbnailSlot], limits: MediaLimits,
                deadline: Deadline) -> list[Pick]:
    """Each slot's frame (`pick_frame`), reading the index of its window; a window whose frame or
    keyframe lies before where the read landed is read again from further back, down to the start
    (where every frame has its keyframe, or is decoded from the start)."""
    picks: list[Pick | None] = [None] * len(slots)
    lead = 0.0
    while True:
        missing = [i for i, pick in enumerate(picks) if pick is None]
        if not missing:
            return picks  # type: ignore[return-value]
        from_start = all(slots[i].window_start_s - lead <= 0 for i in missing)
        frames = frame_index(path, probe, [(max(0.0, slots[i].window_start_s - lead), slots[i].window_end_s)
                                           for i in missing], limits, deadline)
        for i in missing:
            picks[i] = pick_frame(slots[i], frames)
            if picks[i] is None and from_start:
                shown = [f for f in frames if not f.discarded and f.time_s >= slots[i].window_start_s - _EPSILON_S]
                if not shown:
                    raise UnreadableMediaError(f"{path.name} has no frame from {slots[i].window_start_s:.3f} s")
                first = min(shown, key=lambda f: f.time_s)
                picks[i] = Pick(first, None, _cut(first, shown))
        lead = max(_LEAD_S, 2 * lead)


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


def _seek_s(keyframe: IndexedFrame, probe: dict[str, Any]) -> float:
    """Where on the file's timeline a seek lands on `keyframe` or before it: a container with a keyframe
    index (MP4, Matroska) lands on the keyframe at or before a presentation time, just past the
    keyframe's own; the others land by decoding timestamp, at the keyframe's (a B-frame's lies
    between the keyframe's two: its presentation time would land after it)."""
    if set((probe.get("container") or "").split(",")) & KEYFRAME_INDEXED:
        return keyframe.time_s + (probe.get("video_start_s") or 0.0) + _CUT_S
    return keyframe.dts_s


@dataclass(frozen=True)
class _Decode:
    """Frames decoded in one go: from `keyframe` (None: the start) on, until the last of the `cuts`;
    each cut's frame (the first from it on) written to the `outs` given for it."""

    keyframe: IndexedFrame | None
    cuts: tuple[float, ...]
    outs: tuple[tuple[Path, ...], ...]


def _decodes(jobs: Sequence[tuple[Path, Pick]]) -> list[_Decode]:
    """The thumbnails grouped by the keyframe they are decoded from, at most THUMBNAILS_PER_DECODE frames a
    group: thumbnails after one keyframe share its decode instead of each decoding it again."""
    by_keyframe: dict[IndexedFrame | None, dict[float, list[Path]]] = {}
    for out, pick in jobs:
        by_keyframe.setdefault(pick.keyframe, {}).setdefault(pick.cut_s, []).append(out)
    decodes = []
    for keyframe, cuts in by_keyframe.items():
        ordered = sorted(cuts)
        for k in range(0, len(ordered), THUMBNAILS_PER_DECODE):
            part = ordered[k:k + THUMBNAILS_PER_DECODE]
            decodes.append(_Decode(keyframe, tuple(part), tuple(tuple(cuts[cut]) for cut in part)))
    return decodes


def _select(cuts: Sequence[float]) -> str:
    """The `select` expression keeping, for each cut, the first frame from it on (as `trim` and one frame
    would), one frame per cut and in their order: cut k's frame once taken is remembered in variable k."""
    expression = "0"
    for k in reversed(range(len(cuts))):
        expression = f"if(not(ld({k}))*gte(t,{cuts[k]:.6f}),st({k},1),{expression})"
    return expression


def _decode_output(path: Path, decode: _Decode, pattern: Path, size: tuple[int, int], probe: dict[str, Any],
                   limits: MediaLimits) -> Any:
    """One decode's part of an ffmpeg command: an input of its own, sought to the keyframe, and the frames
    of its cuts written to `pattern` (numbered from 0, in the cuts' order)."""
    # Timestamps stay those of the file (-copyts), so the picked frames are found by their own: ffmpeg
    # seeks (-ss counts from the file's start) to their keyframe, without cutting there, and keeps the
    # first frame after each cut, which is the picked one.
    video_start, file_start = probe.get("video_start_s") or 0.0, probe.get("format_start_s") or 0.0
    options: dict[str, Any] = {}
    if decode.keyframe is not None and (seek_s := _seek_s(decode.keyframe, probe)) > file_start:
        options = {"ss": f"{seek_s - file_start:.6f}", "noaccurate_seek": None}
    # A filter graph of the output's own (-vf), not one for the whole command (-filter_complex): in one
    # graph, ffmpeg went on decoding an input to its end after its output had all its frames.
    select = _select([cut + video_start for cut in decode.cuts]).replace(",", r"\,")
    return (
        ffmpeg.input(input_url(path), threads=1, **FORMAT_OPTIONS, **decoder_options(limits), **options)
        .video.output(str(pattern), vf=f"select={select},scale={size[0]}:{size[1]},setsar=1",
                      vframes=len(decode.cuts), start_number=0, format="image2", vcodec="mjpeg",
                      fps_mode="passthrough", **{"q:v": 3}, threads=1)
    )


def _extract_batch(path: Path, batch: Sequence[_Decode], size: tuple[int, int], probe: dict[str, Any],
                   limits: MediaLimits, deadline: Deadline, staging: Path) -> None:
    """Write the thumbnails of `batch`'s decodes with one ffmpeg process, each decode from its own seek
    (its frames first written to the empty folder `staging`)."""
    patterns = [staging / f"{n}-%03d.jpg" for n in range(len(batch))]
    command = (
        ffmpeg.merge_outputs(*(_decode_output(path, decode, pattern, size, probe, limits)
                               for decode, pattern in zip(batch, patterns, strict=True)))
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error", "-copyts")
        .overwrite_output()
    )
    run_tool("ffmpeg", command.compile(cmd=FFMPEG), path, deadline)
    for decode, pattern in zip(batch, patterns, strict=True):
        for k, outs in enumerate(decode.outs):
            written = Path(str(pattern) % k)
            if not written.is_file():
                raise failure("ffmpeg", path, 0, b"no thumbnail written")
            for out in outs[1:]:  # slots that fell on the same frame
                shutil.copyfile(written, out)
            written.replace(outs[0])  # `staging` is inside the output folder: a rename


def extract_thumbnails(path: Path | str, probe: dict[str, Any], slots: list[ThumbnailSlot], out_dir: Path,
                       max_height: int, limits: MediaLimits | None = None,
                       progress: Report | None = None) -> list[Thumbnail]:
    """Write one JPEG per slot into `out_dir` as `NNNN.jpg`: the thumbnails after one keyframe from one
    decode, a few decodes per ffmpeg process, as many processes at a time as there are cores.

    The video must be within `limits` (by default the settings'); every ffmpeg run is stopped
    at the video's decoding deadline. `progress(tiles, of)` is told the thumbnails written so far.
    """
    limits = limits or current_limits()
    require_file(path)
    limits.check(probe, path.name)
    deadline = limits.decoding_deadline(probe)
    picks = pick_frames(path, probe, slots, limits, deadline) if slots else []
    size = output_size(probe, max_height)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(out_dir / f"{i:04d}.jpg", pick) for i, pick in enumerate(picks)]
    decodes = _decodes(jobs)
    # As many processes as cores, or more where a process would take more decodes than it may.
    per_process = max(1, min(DECODES_PER_FFMPEG, PIXELS_PER_FFMPEG // max(1, probe["width"] * probe["height"])))
    cores = max(1, os.cpu_count() or 1)
    count = min(len(decodes), max(cores, math.ceil(len(decodes) / per_process)))
    batches = [decodes[k::count] for k in range(count)]
    counted, done = Progress(len(jobs), progress), 0

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".frames-") as staging:

        def extract(batch: list[_Decode]) -> int:
            _extract_batch(path, batch, size, probe, limits, deadline, Path(tempfile.mkdtemp(dir=staging)))
            return sum(len(outs) for decode in batch for outs in decode.outs)

        with ThreadPoolExecutor(max_workers=cores) as pool:
            for written in pool.map(extract, batches):
                done += written
                counted.update(done)
    counted.finish()
    return [Thumbnail(idx=i, path=out, width=size[0], height=size[1], ts_ms=round(pick.frame.time_s * 1000))
            for i, (out, pick) in enumerate(jobs)]
