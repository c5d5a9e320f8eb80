"""Scene detection: PySceneDetect's ContentDetector fed by a fast ffmpeg decode.

ffmpeg decodes with the in-loop deblocking filter skipped and scales each frame to the
width PySceneDetect itself works at (256 px), so the detector sees what `scenedetect
detect-content` sees for a fraction of the cost. Every frame carries its presentation
timestamp (from ffmpeg's showinfo filter), so variable-frame-rate and delayed-start
videos get true times.
"""

import os
import queue
import re
import threading
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import cv2
import ffmpeg
import numpy as np
import scenedetect
from scenedetect.common import FrameTimecode, Timecode
from scenedetect.detectors import ContentDetector

from heimdex_pipeline.media.errors import UnreadableMediaError
from heimdex_pipeline.media.tools import FFMPEG, failure, require_file

# PySceneDetect's SceneManager downscales to at least this width before detecting.
DETECTION_WIDTH = 256

_SHOWINFO_FRAME = re.compile(rb"\bn:\s*\d+\s+pts:\s*(-?\d+)\s+pts_time:")
_SHOWINFO_TIMEBASE = re.compile(rb"config in time_base:\s*(\d+)/(\d+)")


@dataclass(frozen=True)
class DetectorParams:
    """ContentDetector's settings; its defaults are PySceneDetect's."""

    threshold: float = 27.0
    min_scene_len_frames: int = 15

    def describe(self) -> dict[str, Any]:
        """The detector block of the sidecar: name, version and parameters."""
        return {
            "name": "ContentDetector",
            "library": "PySceneDetect",
            "version": scenedetect.__version__,
            "parameters": {**asdict(self), "detection_width": DETECTION_WIDTH},
        }


@dataclass(frozen=True)
class Scene:
    """One shot: `[start_s, end_s)` in seconds from the first frame; `end_frame` is exclusive."""

    index: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int


@dataclass
class SceneDetection:
    """The scenes of a video and what the decode saw."""

    scenes: list[Scene]
    frames_decoded: int
    detector: dict[str, Any] = field(default_factory=dict)


def _detection_size(width: int, height: int) -> tuple[int, int]:
    factor = max(1.0, width / DETECTION_WIDTH)
    return max(1, round(width / factor)), max(1, round(height / factor))


def _decoder_threads() -> int:
    """One frame thread more than ffmpeg's default (CPUs + 1, at most 16).

    ffmpeg's main thread scales and converts every frame itself; one more frame in flight
    keeps the cores decoding meanwhile (about 5% faster on 2 CPUs).
    """
    cpus = os.cpu_count() or 1
    return min(cpus + 2, 16) if cpus > 1 else 1


def _read_timestamps(stderr: IO[bytes], timestamps: "queue.Queue[int | None]", log: list[bytes],
                     time_base: list[Fraction]) -> None:
    """Turn showinfo's stderr lines into a queue of frame PTS values; keep other lines."""
    for line in stderr:
        frame = _SHOWINFO_FRAME.search(line)
        if frame:
            timestamps.put(int(frame.group(1)))
            continue
        config = _SHOWINFO_TIMEBASE.search(line)
        if config:
            time_base.append(Fraction(int(config.group(1)), int(config.group(2))))
        elif not line.startswith(b"[Parsed_showinfo"):
            log.append(line)
    timestamps.put(None)


def detect_scenes(path: Path, probe: dict[str, Any], params: DetectorParams = DetectorParams()) -> SceneDetection:
    """Detect the scenes of a video; one scene covering it all when there is no cut."""
    require_file(path)
    width, height = _detection_size(probe["width"], probe["height"])
    frame_bytes = width * height * 3
    stream = (
        ffmpeg.input(str(path), threads=_decoder_threads(), skip_loop_filter="all", copyts=None, noautorotate=None)
        .video.filter("scale", width, height, flags="fast_bilinear")
        # Scale in YUV and convert unscaled: swscale's combined path dithers near-black
        # pixels into false hues, which ContentDetector reads as cuts on fades. Planar RGB
        # has the same values as bgr24 at half swscale's cost; the detector interleaves it.
        .filter("format", "yuv444p")
        .filter("format", "gbrp")
        # Only the timestamps are wanted: per-plane checksums cost about as much as the RGB conversion.
        .filter("showinfo", checksum=0)
        .output("pipe:", format="rawvideo", fps_mode="passthrough", an=None, sn=None, dn=None)
        .global_args("-nostdin", "-hide_banner", "-nostats", "-loglevel", "info")
    )
    process = ffmpeg.run_async(stream, cmd=FFMPEG, pipe_stdout=True, pipe_stderr=True)
    timestamps: queue.Queue[int | None] = queue.Queue()
    log: list[bytes] = []
    time_base: list[Fraction] = []
    reader = threading.Thread(target=_read_timestamps, args=(process.stderr, timestamps, log, time_base), daemon=True)
    reader.start()

    rate = Fraction(probe["nominal_fps"]) if probe.get("nominal_fps") else Fraction(25)
    start_s = Fraction(probe.get("video_start_s") or 0).limit_denominator(1_000_000)
    detector = ContentDetector(threshold=params.threshold, min_scene_len=params.min_scene_len_frames)
    times: list[float] = []
    frame_index: dict[float, int] = {}
    cuts: list[FrameTimecode] = []
    timecode: FrameTimecode | None = None
    buffer = bytearray(frame_bytes)
    # gbrp: the green, blue and red planes one after the other, refilled in place each frame.
    green, blue, red = np.frombuffer(buffer, dtype=np.uint8).reshape(3, height, width)
    try:
        while process.stdout.readinto(buffer) == frame_bytes:
            pts = timestamps.get()
            if pts is None:
                break
            seconds = Fraction(pts) * time_base[0] - start_s
            timecode = FrameTimecode(Timecode(pts=max(0, round(seconds / time_base[0])), time_base=time_base[0]), fps=rate)
            frame_index[timecode.seconds] = len(times)
            times.append(timecode.seconds)
            cuts.extend(detector.process_frame(timecode, cv2.merge((blue, green, red))))
        if timecode is not None:
            cuts.extend(detector.post_process(timecode))
    finally:
        process.stdout.close()
        returncode = process.wait()
        reader.join(timeout=5)
    if returncode != 0:
        raise failure("ffmpeg", path, returncode, b"".join(log))
    if not times:
        raise UnreadableMediaError(f"ffmpeg decoded no frame of {path.name}")
    return SceneDetection(
        scenes=_scenes_from_cuts(times, [frame_index[c.seconds] for c in cuts], probe),
        frames_decoded=len(times),
        detector=params.describe(),
    )


def _scenes_from_cuts(times: list[float], cut_frames: list[int], probe: dict[str, Any]) -> list[Scene]:
    """Scenes between consecutive cuts; the last one ends where the last frame ends."""
    last_duration = (times[-1] - times[-2]) if len(times) > 1 else 1 / (probe.get("fps") or 25)
    end_of_video = times[-1] + last_duration
    bounds = [0, *sorted(set(f for f in cut_frames if 0 < f < len(times))), len(times)]
    scenes = []
    for index, (first, stop) in enumerate(zip(bounds, bounds[1:], strict=False)):
        end_s = times[stop] if stop < len(times) else end_of_video
        scenes.append(Scene(index=index, start_s=round(times[first], 6), end_s=round(end_s, 6),
                            start_frame=first, end_frame=stop))
    return scenes
