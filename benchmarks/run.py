"""Speed and memory benchmark of the media steps, measured side by side in one run.

Scene detection (given the probe document, as the sidecar asset runs it) is timed against a plain
`ffmpeg -i FILE -an -f null -` decode of the same file and against PySceneDetect's own
`scenedetect.detect(FILE, ContentDetector())`, each detector in a fresh process and timed inside
it after its imports, like for like;
20 thumbnails are taken from a 10-minute clip and from the same clip repeated to an hour;
each measured step runs in a fresh process, so its peak memory, and that of its ffmpeg
children, is its own. Every time is the best of `--repeat` runs, interleaved so that load
from elsewhere hits all contenders alike.

    uv run python -m benchmarks.run [--quick] [--repeat N]

Synthetic clips are made once by ffmpeg into ~/.cache/heimdex-bench (HEIMDEX_BENCH_CACHE);
the real media come from ../shared/media/pyscenedetect (HEIMDEX_MEDIA_DIR).
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import scenedetect

from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import detect_scenes
from heimdex_pipeline.media.thumbnails import ThumbnailPolicy, extract_thumbnails, plan_thumbnails
from heimdex_pipeline.media.tools import FFMPEG
from tests.media.synthetic import make_clip

REPO = Path(__file__).resolve().parents[1]
REAL_CLIP = "testvideo.mp4"

# The targets.
DETECTION_RATIO_TARGET = 1.0
THUMBNAIL_COUNT = 20
THUMBNAIL_TARGET_S = 2.0
MEMORY_TARGET_MB = 400.0

@dataclass(frozen=True)
class ClipSpec:
    """A synthetic clip: consecutive test-pattern segments, so its cuts are known."""

    label: str
    segments_s: tuple[float, ...]
    size: str
    rate: int
    preset: str

    @property
    def file_name(self) -> str:
        """Cache file name; the digest changes whenever the encoding parameters do."""
        digest = hashlib.sha1(repr((self.segments_s, self.size, self.rate, self.preset)).encode()).hexdigest()[:8]
        return f"clip-{self.size}-{self.rate}fps-{self.preset}-{sum(self.segments_s):.0f}s-{digest}.mp4"


@dataclass(frozen=True)
class Plan:
    """What one benchmark run measures."""

    detection_clip: ClipSpec
    thumbnail_clip: ClipSpec
    thumbnail_interval_s: float
    # The thumbnail clip is also measured stream-copied this many times over, to show that
    # the cost does not follow the duration.
    long_copies: int


FULL = Plan(
    # x264's default preset (medium) is what most encoders ship with.
    detection_clip=ClipSpec("synthetic 60 s 1080p30", (12.0,) * 5, "1920x1080", 30, "medium"),
    # veryfast only keeps the one-off encode of ten minutes short: the cost of seeking
    # follows the keyframe interval (x264's default, 250 frames), not the preset.
    thumbnail_clip=ClipSpec("synthetic 10 min 720p30", (30.0,) * 20, "1280x720", 30, "veryfast"),
    thumbnail_interval_s=30.0,
    long_copies=6,
)
QUICK = Plan(
    detection_clip=ClipSpec("synthetic 12 s 1080p30", (4.0,) * 3, "1920x1080", 30, "veryfast"),
    thumbnail_clip=ClipSpec("synthetic 2 min 720p30", (12.0,) * 10, "1280x720", 30, "veryfast"),
    thumbnail_interval_s=6.0,
    long_copies=5,
)


@dataclass
class Run:
    """One measured run: wall time, and peak RSS in KiB of the process and of its largest child."""

    wall_s: float
    rss_kb: int
    child_rss_kb: int = 0
    output: dict[str, Any] = field(default_factory=dict)


@dataclass
class DetectionResult:
    """Everything measured on one file for the detection table."""

    label: str
    reference: tuple[str, list[int]] | None
    frames: int = 0
    cuts: list[int] = field(default_factory=list)
    pyscenedetect_cuts: list[int] | None = None
    decode: list[Run] = field(default_factory=list)
    sidecar: list[Run] = field(default_factory=list)
    pyscenedetect: list[Run] = field(default_factory=list)


@dataclass
class ThumbnailResult:
    """The thumbnail runs on one file."""

    label: str
    runs: list[Run] = field(default_factory=list)


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the report."""
    print(f"  .. {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Where generated clips are kept between runs (outside the repository)."""
    return Path(os.environ.get("HEIMDEX_BENCH_CACHE", Path.home() / ".cache" / "heimdex-bench"))


def media_dir() -> Path:
    """PySceneDetect's test media: HEIMDEX_MEDIA_DIR, else ../shared/media/pyscenedetect from the repo."""
    return Path(os.environ.get("HEIMDEX_MEDIA_DIR", REPO.parent / "shared" / "media" / "pyscenedetect"))


def synthetic_clip(spec: ClipSpec) -> tuple[Path, list[float]]:
    """The clip of `spec` and its cut times, encoded on first use and cached."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec.file_name
    cuts_file = path.with_suffix(".cuts.json")
    if not (path.is_file() and cuts_file.is_file()):
        log(f"encoding {path.name} ({spec.label}, x264 {spec.preset}); cached for later runs")
        partial = path.with_suffix(".part.mp4")
        cuts = make_clip(partial, spec.segments_s, size=spec.size, rate=spec.rate, preset=spec.preset)
        cuts_file.write_text(json.dumps(cuts))
        partial.replace(path)
    return path, json.loads(cuts_file.read_text())


def repeated_clip(path: Path, copies: int) -> Path:
    """`path` played `copies` times in a row, stream-copied (no re-encode) and cached."""
    out = path.with_name(f"{path.stem}-x{copies}.mp4")
    if not out.is_file():
        log(f"stream-copying {path.name} {copies} times into {out.name}")
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
            listing.write(f"file '{path}'\n" * copies)
        partial = out.with_suffix(".part.mp4")
        try:
            subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat",
                            "-safe", "0", "-i", listing.name, "-c", "copy", str(partial)], check=True)
        finally:
            os.unlink(listing.name)
        partial.replace(out)
    return out


def _peaks() -> tuple[int, int]:
    """Peak RSS (KiB on Linux) of this process and of the largest child it has waited for."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def detection_step(path: str) -> Run:
    """Scene detection given the probe document, as the sidecar asset runs it; in a fresh worker process.

    The probe is the asset upstream of the sidecar: it is timed apart and reported beside.
    """
    start = time.perf_counter()
    probe = probe_video(Path(path))
    probed = time.perf_counter()
    detection = detect_scenes(Path(path), probe)
    wall = time.perf_counter() - probed
    rss, child_rss = _peaks()
    return Run(wall, rss, child_rss, {"cuts": [scene.start_frame for scene in detection.scenes[1:]],
                                      "frames": detection.frame_count, "probe_s": probed - start})


def thumbnail_step(path: str, interval_s: float) -> Run:
    """Probe, plan and extract the thumbnails of a video; runs in a fresh worker process."""
    with tempfile.TemporaryDirectory(prefix="heimdex-bench-") as out:
        start = time.perf_counter()
        probe = probe_video(Path(path))
        policy = ThumbnailPolicy(interval_s=interval_s, max_count=THUMBNAIL_COUNT)
        slots = plan_thumbnails([], probe["duration_s"], policy)
        thumbnails = extract_thumbnails(Path(path), probe, slots, Path(out), policy.max_height)
        wall = time.perf_counter() - start
        written = sum(1 for thumbnail in thumbnails if thumbnail.path.stat().st_size > 0)
    rss, child_rss = _peaks()
    return Run(wall, rss, child_rss, {"count": written, "size": f"{thumbnails[0].width}x{thumbnails[0].height}",
                                      "duration_s": probe["duration_s"]})


def in_fresh_process(step: Callable[..., Run], *args: Any) -> Run:
    """Run a step in a newly spawned interpreter, so its peak RSS is not inherited."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(step, *args).result()


def timed_command(command: list[str]) -> tuple[Run, str]:
    """Wall time and peak RSS of a command, and its stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    stdout = process.stdout.read()
    process.stdout.close()
    # wait4 rather than wait: it also reports this one child's peak RSS.
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, command)
    return Run(wall, usage.ru_maxrss), stdout.decode("utf-8", "replace")


def pyscenedetect_step(path: str) -> Run:
    """PySceneDetect's own detection with ContentDetector's defaults, as its CLI runs it; in a fresh worker
    process, timed after the imports like the sidecar."""
    start = time.perf_counter()
    scenes = scenedetect.detect(path, scenedetect.ContentDetector())
    wall = time.perf_counter() - start
    rss, child_rss = _peaks()
    return Run(wall, rss, child_rss, {"cuts": [begin.get_frames() for begin, _ in scenes[1:]]})


def same_cuts(ours: list[int], theirs: list[int] | None) -> bool | None:
    """Equal within one frame, cut by cut; None when there is nothing to compare with."""
    if theirs is None:
        return None
    return len(ours) == len(theirs) and all(abs(a - b) <= 1 for a, b in zip(ours, theirs, strict=True))


def measure_detection(label: str, path: Path, reference: tuple[str, list[int]] | None, repeat: int) -> DetectionResult:
    """Decode, sidecar detection and PySceneDetect's detection of one file, interleaved, `repeat` times."""
    result = DetectionResult(label=label, reference=reference)
    decode = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path), "-an", "-f", "null", "-"]
    for attempt in range(1, repeat + 1):
        run, _ = timed_command(decode)
        result.decode.append(run)
        sidecar = in_fresh_process(detection_step, str(path))
        result.sidecar.append(sidecar)
        result.cuts, result.frames = sidecar.output["cuts"], sidecar.output["frames"]
        line = f"{label} run {attempt}/{repeat}: decode {run.wall_s:.2f} s, sidecar {sidecar.wall_s:.2f} s"
        theirs = in_fresh_process(pyscenedetect_step, str(path))
        result.pyscenedetect.append(theirs)
        result.pyscenedetect_cuts = theirs.output["cuts"]
        log(f"{line}, PySceneDetect {theirs.wall_s:.2f} s")
    return result


def measure_thumbnails(files: list[tuple[str, Path]], interval_s: float, repeat: int) -> list[ThumbnailResult]:
    """The thumbnail step on each file, interleaved, `repeat` times."""
    results = [ThumbnailResult(label) for label, _ in files]
    for attempt in range(1, repeat + 1):
        for result, (label, path) in zip(results, files, strict=True):
            result.runs.append(in_fresh_process(thumbnail_step, str(path), interval_s))
            log(f"thumbnails of {label} run {attempt}/{repeat}: {result.runs[-1].wall_s:.2f} s")
    return results


def best(runs: list[Run]) -> float:
    """The least noisy figure of a repeated timing: its minimum."""
    return min(run.wall_s for run in runs)


def mb(kib: int) -> float:
    """KiB (ru_maxrss on Linux) to MB."""
    return kib * 1024 / 1e6


def yes_no(value: bool | None) -> str:
    """A table cell for a comparison."""
    return "n/a" if value is None else ("yes" if value else "NO")


def table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * width for width in widths), *lines[1:]])


def machine() -> list[str]:
    """The figures' context: processor, memory, tool versions, load."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), model)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    ffmpeg_version = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True).stdout.split(" Copyright")[0]
    return [f"{os.cpu_count()} x {model}, {memory:.0f} GiB RAM, {platform.system()} {platform.release()}",
            f"{ffmpeg_version}; Python {platform.python_version()}; PySceneDetect {scenedetect.__version__}"]


def print_header(title: str, run: str) -> None:
    """A report's first lines: what was measured, on which machine, and how it was run."""
    print(title)
    for line in machine():
        print(f"  {line}")
    print(f"  {run}")
    print()


def detection_report(results: list[DetectionResult]) -> str:
    """The detection table."""
    rows = []
    for result in results:
        decode_s, sidecar_s = best(result.decode), best(result.sidecar)
        theirs_s = best(result.pyscenedetect)
        reference = "n/a"
        if result.reference:
            reference = f"{yes_no(same_cuts(result.cuts, result.reference[1]))} ({result.reference[0]})"
        probe_s = min(run.output["probe_s"] for run in result.sidecar)
        rows.append([
            result.label, str(result.frames), f"{decode_s:.2f}", f"{probe_s:.2f}", f"{sidecar_s:.2f}",
            f"{theirs_s:.2f}", f"{sidecar_s / decode_s:.2f}x", f"{(probe_s + sidecar_s) / decode_s:.2f}x",
            f"{sidecar_s / theirs_s:.2f}x", str(len(result.cuts)),
            yes_no(same_cuts(result.cuts, result.pyscenedetect_cuts)), reference,
        ])
    return table(["file", "frames", "decode s", "probe s", "sidecar s", "PySceneDetect s", "sidecar/decode",
                  "with probe", "sidecar/PySceneDetect", "cuts", "= PySceneDetect cuts", "= reference cuts"], rows)


def thumbnail_report(results: list[ThumbnailResult]) -> str:
    """The thumbnail table."""
    rows = []
    for result in results:
        sample = result.runs[0].output
        rows.append([result.label, f"{sample['duration_s']:.0f}", str(sample["count"]), sample["size"],
                     f"{best(result.runs):.2f}", " ".join(f"{run.wall_s:.2f}" for run in result.runs)])
    return table(["file", "duration s", "thumbnails", "size", "best s", "runs s"], rows)


def memory_report(detections: list[DetectionResult], thumbnails: list[ThumbnailResult]) -> tuple[str, dict[str, float]]:
    """The memory table, and each measured step's total peak in MB."""
    # Children count at the largest one's peak times how many run at once: ffprobe and
    # ffmpeg take turns in detection, extraction runs one ffmpeg per CPU. A child's
    # ru_maxrss also holds its parent's pages from before exec, so this is an upper bound.
    parallel = min(os.cpu_count() or 1, THUMBNAIL_COUNT)
    steps = [*((f"detection, {r.label}", r.sidecar, 1) for r in detections),
             *((f"thumbnails, {r.label}", r.runs, parallel) for r in thumbnails)]
    rows, totals = [], {}
    for label, runs, at_once in steps:
        own, child = mb(max(run.rss_kb for run in runs)), mb(max(run.child_rss_kb for run in runs))
        totals[label] = own + at_once * child
        rows.append([label, f"{own:.0f}", f"{child:.0f}", str(at_once), f"{totals[label]:.0f}"])
    for result in detections:
        decode_mb = mb(max(run.rss_kb for run in result.decode))
        rows.append([f"(for comparison) plain decode, {result.label}", "", f"{decode_mb:.0f}", "1", ""])
        rows.append([f"(for comparison) PySceneDetect, {result.label}",
                     f"{mb(max(r.rss_kb for r in result.pyscenedetect)):.0f}", "", "", ""])
    return table(["step", "process", "largest child", "children at once", "total"], rows), totals


def verdicts(detections: list[DetectionResult], thumbnails: list[ThumbnailResult],
             memory: dict[str, float]) -> list[tuple[bool, str]]:
    """PASS or MISS, with the figure, for each target of the issue."""
    found = []
    for result in detections:
        ratio = best(result.sidecar) / best(result.decode)
        found.append((ratio <= DETECTION_RATIO_TARGET,
                      f"scene detection <= {DETECTION_RATIO_TARGET:.1f}x plain decode, {result.label}: {ratio:.2f}x"))
    for result in detections:
        checks = [same_cuts(result.cuts, result.pyscenedetect_cuts)]
        against = f"PySceneDetect {result.pyscenedetect_cuts}"
        if result.reference:
            checks.append(same_cuts(result.cuts, result.reference[1]))
            against += f", {result.reference[0]} {result.reference[1]}"
        compared = [check for check in checks if check is not None]
        found.append((bool(compared) and all(compared),
                      f"same cuts as ContentDetector's defaults, {result.label}: {result.cuts} ({against})"))
    for result in thumbnails:
        count, seconds = result.runs[0].output["count"], best(result.runs)
        found.append((seconds < THUMBNAIL_TARGET_S and count == THUMBNAIL_COUNT,
                      f"{THUMBNAIL_COUNT} thumbnails in < {THUMBNAIL_TARGET_S:.0f} s, {result.label}: "
                      f"{seconds:.2f} s ({count} written)"))
    for label, total in memory.items():
        found.append((total < MEMORY_TARGET_MB, f"peak memory < {MEMORY_TARGET_MB:.0f} MB, {label}: {total:.0f} MB"))
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; exit status 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short clips and one run each: a smoke test")
    parser.add_argument("--repeat", type=int, help="runs per timing, the best one counts (default 3, quick 1)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    repeat = args.repeat or (1 if args.quick else 3)

    detection_path, detection_cuts = synthetic_clip(plan.detection_clip)
    thumbnail_path, _ = synthetic_clip(plan.thumbnail_clip)
    long_path = repeated_clip(thumbnail_path, plan.long_copies)
    rate = plan.detection_clip.rate
    known = ("known", [round(cut * rate) for cut in detection_cuts])
    detection_files = [(plan.detection_clip.label, detection_path, known)]
    real_path = media_dir() / REAL_CLIP
    if real_path.is_file():
        golden = media_dir() / "goldens" / f"{REAL_CLIP}.ContentDetector.default.json"
        reference = ("golden", json.loads(golden.read_text())["cuts"]) if golden.is_file() else None
        detection_files.append((REAL_CLIP, real_path, reference))
    else:
        log(f"{real_path} not found (set HEIMDEX_MEDIA_DIR); measuring the synthetic clip only")

    started, load_before = time.perf_counter(), os.getloadavg()
    detections = [measure_detection(label, path, reference, repeat) for label, path, reference in detection_files]
    thumbnails = measure_thumbnails([(plan.thumbnail_clip.label, thumbnail_path),
                                     (f"the same x{plan.long_copies} (stream copy)", long_path)],
                                    plan.thumbnail_interval_s, repeat)
    load_after = os.getloadavg()

    command = "uv run python -m benchmarks.run" + (" --quick" if args.quick else "")
    print_header("Heimdex media benchmark",
                 f"{command}: best of {repeat} run(s) per timing, measured in {time.perf_counter() - started:.0f} s; "
                 f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print("Scene detection, wall seconds. sidecar = detect_scenes in a fresh process, given the probe document")
    print("(the probe is the upstream asset: probe s = probe_video, best of the same runs);")
    print("decode = ffmpeg -i FILE -an -f null -; PySceneDetect = scenedetect.detect(FILE, ContentDetector()) in a fresh")
    print("process, timed after its imports as the sidecar is")
    print(detection_report(detections))
    print()
    print(f"Thumbnails, wall seconds: probe + plan + extract, interval {plan.thumbnail_interval_s:g} s, "
          f"max {THUMBNAIL_COUNT}")
    print(thumbnail_report(thumbnails))
    print()
    report, memory = memory_report(detections, thumbnails)
    print("Peak memory (RSS, MB), each step in a fresh process; total = process + children at once x largest child,")
    print("an upper bound (a child's peak includes its parent's pages from before exec)")
    print(report)
    print()
    print("Targets")
    found = verdicts(detections, thumbnails, memory)
    for passed, text in found:
        print(f"  {'PASS' if passed else 'MISS'}  {text}")
    return 0 if all(passed for passed, _ in found) else 1


if __name__ == "__main__":
    sys.exit(main())
