"""QC cost: the technical QC pass against the media work of the rest of a video's ingest.

Each step runs in a freshly spawned process, timed after its imports, as a running asset: its wall
seconds and its CPU seconds (its own and its children's: ffmpeg, ffprobe), the best of `--repeat`.

- ingest: `probe_video`, `detect_scenes`, `extract_thumbnails` (one per scene, at most 20, 360 px)
  and `make_storyboard` (160 px tiles): the media work of the other four assets;
- qc: `measure_qc` given the probe, as the `media_qc` asset calls it (one ffmpeg pass).

CPU seconds are the figure to read on a shared machine: wall seconds grow with whatever else runs.

    uv run python -m benchmarks.qc [--repeat N]

The files are PySceneDetect's test media with audio or without (`HEIMDEX_MEDIA_DIR`, as `benchmarks.run`).
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import Run, in_fresh_process, log, media_dir, print_header, table

FILES = ("testvideo.mp4", "issue-195-aspect-ratio.mp4", "issue-134-rotate.mp4", "goldeneye-vfr-drop3.mp4",
         "issue-236-split-copy.mkv")
THUMBNAILS, THUMBNAIL_HEIGHT, TILE_WIDTH = 20, 360, 160


def cpu_seconds() -> float:
    """CPU seconds of this process and of the children it has waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def ingest_step(path: str) -> Run:
    """The media work of probe_metadata, scene_sidecar, thumbnails and storyboard; in a fresh process."""
    from heimdex_pipeline.media.probe import probe_video
    from heimdex_pipeline.media.scenes import detect_scenes
    from heimdex_pipeline.media.storyboard import make_storyboard
    from heimdex_pipeline.media.thumbnails import ThumbnailPolicy, extract_thumbnails, plan_thumbnails

    with tempfile.TemporaryDirectory(prefix="heimdex-bench-") as out:
        cpu, start = cpu_seconds(), time.perf_counter()
        probe = probe_video(Path(path))
        scenes = detect_scenes(Path(path), probe).scenes
        policy = ThumbnailPolicy(max_count=THUMBNAILS, max_height=THUMBNAIL_HEIGHT)
        slots = plan_thumbnails(scenes, probe["duration_s"], policy)
        extract_thumbnails(Path(path), probe, slots, Path(out) / "thumbnails", policy.max_height)
        make_storyboard(Path(path), probe, Path(out) / "storyboard", TILE_WIDTH)
        wall = time.perf_counter() - start
    return Run(wall, 0, 0, {"cpu_s": cpu_seconds() - cpu, "probe": probe})


def qc_step(path: str, probe: dict) -> Run:
    """`measure_qc` given the probe, as the media_qc asset runs it; in a fresh process."""
    from heimdex_pipeline.media.qc import measure_qc

    cpu, start = cpu_seconds(), time.perf_counter()
    report = measure_qc(Path(path), probe)
    wall = time.perf_counter() - start
    return Run(wall, 0, 0, {"cpu_s": cpu_seconds() - cpu, "lufs": report.loudness.integrated_lufs if report.loudness else None,
                            "scan": report.interlacing.scan})


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.qc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each step, the best one counts (default 3)")
    args = parser.parse_args(argv)
    started, load_before = time.perf_counter(), os.getloadavg()
    rows, total = [], {"ingest": 0.0, "qc": 0.0}
    for name in FILES:
        path = str(media_dir() / name)
        ingest, qc = [], []
        for attempt in range(args.repeat):
            ingest.append(in_fresh_process(ingest_step, path))
            qc.append(in_fresh_process(qc_step, path, ingest[-1].output["probe"]))
            log(f"{name} run {attempt + 1}/{args.repeat}: ingest {ingest[-1].output['cpu_s']:.2f} CPU s, "
                f"qc {qc[-1].output['cpu_s']:.2f} CPU s")
        probe = ingest[0].output["probe"]
        audio = next((s for s in probe["streams"] if s.get("codec_type") == "audio"), None)
        ingest_cpu, qc_cpu = min(r.output["cpu_s"] for r in ingest), min(r.output["cpu_s"] for r in qc)
        total["ingest"] += ingest_cpu
        total["qc"] += qc_cpu
        rows.append([name, f"{probe['width']}x{probe['height']}", f"{probe['duration_s']:.1f}",
                     f"{audio['codec']} {audio['channels']} ch" if audio else "none",
                     f"{min(r.wall_s for r in ingest):.2f}", f"{ingest_cpu:.2f}", f"{min(r.wall_s for r in qc):.2f}",
                     f"{qc_cpu:.2f}", f"{qc_cpu / ingest_cpu:.0%}"])
    load_after = os.getloadavg()
    print_header("Heimdex QC cost benchmark",
                 f"uv run python -m benchmarks.qc: best of {args.repeat}, measured in "
                 f"{time.perf_counter() - started:.0f} s; load average {load_before[0]:.2f} before, "
                 f"{load_after[0]:.2f} after")
    print("ingest = probe + scenes + thumbnails + storyboard; qc = measure_qc (one ffmpeg pass); CPU s include children")
    print(table(["file", "size", "duration s", "audio", "ingest wall s", "ingest CPU s", "qc wall s", "qc CPU s",
                 "qc / ingest CPU"], rows))
    print(f"All files: QC adds {total['qc'] / total['ingest']:.0%} to the ingest's media work in CPU seconds "
          f"({total['qc']:.2f} s on top of {total['ingest']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
