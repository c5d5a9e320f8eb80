"""Synthetic clips with known cut points, made by ffmpeg: for tests, benchmarks and demos."""

import subprocess
from collections.abc import Sequence
from pathlib import Path

from heimdex_pipeline.media.tools import FFMPEG

# Patterns that look nothing alike, so each join is a hard cut for any detector.
PATTERNS = (
    "testsrc2=size={size}:rate={rate}",
    "smptehdbars=size={size}:rate={rate}",
    "mandelbrot=size={size}:rate={rate}",
    "rgbtestsrc=size={size}:rate={rate}",
    "testsrc=size={size}:rate={rate}",
    "yuvtestsrc=size={size}:rate={rate}",
)


def make_clip(out: Path, durations_s: Sequence[float], size: str = "320x240", rate: int = 25,
              extra_args: Sequence[str] = (), preset: str = "veryfast") -> list[float]:
    """Encode one H.264 clip of consecutive segments, each another pattern; return the cut times.

    Each segment is a whole number of frames, so the returned cuts are exact frame times.
    """
    frames = [max(1, round(duration * rate)) for duration in durations_s]
    inputs: list[str] = []
    for i, count in enumerate(frames):
        pattern = PATTERNS[i % len(PATTERNS)].format(size=size, rate=rate)
        inputs += ["-f", "lavfi", "-i", f"{pattern},trim=end_frame={count},setpts=PTS-STARTPTS"]
    joined = "".join(f"[{i}:v]" for i in range(len(durations_s)))
    graph = f"{joined}concat=n={len(durations_s)}:v=1:a=0,scale={size.replace('x', ':')},setsar=1,format=yuv420p[v]"
    subprocess.run(
        [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *inputs, "-filter_complex", graph,
         "-map", "[v]", "-c:v", "libx264", "-preset", preset, *extra_args, str(out)],
        check=True,
    )
    cuts, elapsed = [], 0
    for count in frames[:-1]:
        elapsed += count
        cuts.append(elapsed / rate)
    return cuts
