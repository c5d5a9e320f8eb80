"""Speed of Heimdex's shot detector against a plain decode and PySceneDetect's detectors, file by file.

For each file: `ffmpeg -i FILE -an -f null -` (a plain decode); `detect_scenes` with Heimdex's detector
(the default) and with ContentDetector (its two looks); `scenedetect.detect(FILE, Detector())` for
ContentDetector and HistogramDetector (the PySceneDetect detectors nearest Heimdex's in accuracy on
`benchmarks.shots`). And the floors of a scene step: PyAV decoding every frame as the step's decoder
does (`configure_decoder`: frame threads, H.264's loop filter skipped) and doing nothing with the
pictures, then the same decoding the reference frames only (what a first look of two decodes): a
detector fed every frame cannot be faster than the first. Every timing is the best of `--repeat`
runs, interleaved, in this process after its imports; the probe is not counted (it is the upstream
step).

The files: PySceneDetect's testvideo.mp4 (real footage), one edit of `benchmarks.shots` at
1280x720 (typical), and 10 s of 720p grain that changes every pixel of every frame (adversarial),
made by ffmpeg into the shots cache.

    uv run python -m benchmarks.shot_speed [--repeat N]
"""

import argparse
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import scenedetect

from benchmarks.run import media_dir, print_header
from benchmarks.shot_edits import build, plan
from benchmarks.shots import SEED, cache_dir
from heimdex_pipeline.media.decoding import configure_decoder, open_container
from heimdex_pipeline.media.detector import ContentParams, HeimdexParams
from heimdex_pipeline.media.limits import current_limits
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import detect_scenes
from heimdex_pipeline.media.tools import FFMPEG

# The goals of issue 21: the scene step against a plain decode, and against PySceneDetect's nearest detector.
TYPICAL_RATIO, ADVERSARIAL_RATIO, FASTER_THAN_NEAREST = 0.6, 1.0, 2.0


def noise_clip() -> Path:
    """10 s of 720p30 grain over a test pattern, every pixel new each frame (made once)."""
    out = cache_dir() / "noise-720p30-10s.mp4"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc2=s=1280x720:r=30:d=10,noise=alls=60:allf=t+u", "-c:v", "libx264", "-preset",
                        "veryfast", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def decode_only(path: Path, skip_frame: str) -> int:
    """Decode the video stream as the scene step's decoder does, the pictures left unused; `skip_frame`
    NONREF decodes the reference frames only. Answers the frames decoded."""
    limits = current_limits()
    with open_container(path, limits, limits.timeout_s) as container:
        stream = container.streams.video[0]
        configure_decoder(stream.codec_context, fast=True, limits=limits)
        stream.codec_context.skip_frame = skip_frame
        return sum(1 for _ in container.decode(stream))


def measure(path: Path, repeat: int) -> dict[str, float]:
    """Best wall seconds of each contender on `path`."""
    probe = probe_video(path)
    contenders: dict[str, Callable[[], object]] = {
        "decode": lambda: subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-i", str(path), "-an", "-f",
                                          "null", "-"], check=True),
        "every frame": lambda: decode_only(path, "DEFAULT"),
        "reference frames": lambda: decode_only(path, "NONREF"),
        "heimdex": lambda: detect_scenes(path, probe, HeimdexParams()),
        "content two looks": lambda: detect_scenes(path, probe, ContentParams()),
        "ContentDetector": lambda: scenedetect.detect(str(path), scenedetect.ContentDetector()),
        "HistogramDetector": lambda: scenedetect.detect(str(path), scenedetect.HistogramDetector()),
    }
    best = {name: float("inf") for name in contenders}
    for _ in range(repeat):
        for name, run in contenders.items():
            best[name] = min(best[name], _timed(run))
    return best


def main(argv: list[str] | None = None) -> int:
    """Measure each file, print the table and the goals; exit 1 when a goal is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shot_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs per timing, the best counts (default 2)")
    args = parser.parse_args(argv)
    edit = next(e for e in plan(SEED) if e.width == 1280)
    files = [("testvideo.mp4 (real footage)", media_dir() / "testvideo.mp4", TYPICAL_RATIO),
             (f"{edit.name} (an edit of benchmarks.shots)", build(edit, media_dir(), cache_dir()), TYPICAL_RATIO),
             ("720p30 grain, 10 s (adversarial)", noise_clip(), ADVERSARIAL_RATIO)]
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    results = [(label, goal, measure(path, args.repeat)) for label, path, goal in files]
    command = shlex.join(["uv", "run", "python", "-m", "benchmarks.shot_speed", *(sys.argv[1:] if argv is None else argv)])
    print_header("Heimdex shot detector speed",
                 f"{command}: best of {args.repeat}, measured in {time.perf_counter() - started:.0f} s; "
                 f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("Wall seconds; x decode = the scene step over a plain ffmpeg decode of the same file.\n")
    print("| file | plain decode | floor: every frame (x decode) | floor: reference frames (x decode) | "
          "Heimdex (x decode) | ContentDetector, Heimdex's two looks | PySceneDetect ContentDetector | "
          "PySceneDetect HistogramDetector | PySceneDetect's nearest / Heimdex |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    status = 0
    goals = []
    for label, goal, best in results:
        ratio = best["heimdex"] / best["decode"]
        nearest = min(best["ContentDetector"], best["HistogramDetector"]) / best["heimdex"]
        floors = " | ".join(f"{best[floor]:.2f} ({best[floor] / best['decode']:.2f}x)"
                            for floor in ("every frame", "reference frames"))
        print(f"| {label} | {best['decode']:.2f} | {floors} | {best['heimdex']:.2f} ({ratio:.2f}x) | "
              f"{best['content two looks']:.2f} | {best['ContentDetector']:.2f} | {best['HistogramDetector']:.2f} | "
              f"{nearest:.1f}x |")
        goals += [(f"{label}: Heimdex <= {goal}x decode: {ratio:.2f}x", ratio <= goal),
                  (f"{label}: >= {FASTER_THAN_NEAREST:.0f}x faster than PySceneDetect's nearest: {nearest:.1f}x",
                   nearest >= FASTER_THAN_NEAREST)]
    print("\nIssue 21's speed goals:")
    for line, met in goals:
        print(f"- {line}: {'met' if met else 'MISSED'}")
        status |= not met
    return status


if __name__ == "__main__":
    sys.exit(main())
