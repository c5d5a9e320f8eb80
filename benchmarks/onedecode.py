"""One decode per video: the media work of a whole ingest against a plain decode of the file, step by step.

Each file's ingest media work runs in a freshly spawned process, timed after its imports, step by step as
the assets run it, in wall seconds and CPU seconds (the process's and its children's: ffmpeg, ffprobe):

- probe: `probe_video`;
- scenes: `detect_scenes` with the sidecar's detector; `shared` also taps its decode loops
  (`shared_frames.scene_pass_tap`: storyboard tiles, luma figures) and writes the intermediate
  (`SharedFrames.to_bytes`) to a file, as the `scene_sidecar` asset writes it beside the sidecar;
- thumbnails: one per scene, at most 20, 360 px (`ThumbnailConfig`'s defaults);
- storyboard: `make_storyboard`, 160 px tiles (with `shared`, given the intermediate's tiles);
- qc: `measure_qc` (with `shared`, given the intermediate's luma figures).

Two modes, alternating, the best of `--repeat` each: `separate`, each step decoding for itself (what
main does, and what each step still does when the intermediate is missing), and `shared`. Against them,
a plain decode: `ffmpeg -i FILE -an -f null -` (ffmpeg's default threads), the best of as many runs.

    uv run python -m benchmarks.onedecode [--repeat N]

Files: typical, PySceneDetect's `testvideo.mp4` (720p, no audio) and `issue-195-aspect-ratio.mp4` (576p,
AAC), and a 10 s 720p30 clip with three cuts and a tone (x264 veryfast, as `benchmarks.throughput`'s);
adversarial, 12 s of 1080p30 noise over a moving pattern with a tone, x264 medium with one keyframe
every 20 s (long GOP). The synthetic clips are made once into the benchmarks' cache.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.qc import cpu_seconds
from benchmarks.run import Run, cache_dir, in_fresh_process, log, media_dir, print_header, table, timed_command
from heimdex_pipeline.media.tools import FFMPEG

STEPS = ("probe", "scenes", "thumbnails", "storyboard", "qc")
MODES = ("separate", "shared")
TONE = "sine=frequency=440:sample_rate=48000"


def _encode(name: str, video: str, args: list[str]) -> Path:
    """A synthetic clip with a tone, encoded on first use and cached."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.is_file():
        log(f"encoding {name}; cached for later runs")
        partial = path.with_suffix(".part.mp4")
        subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", video,
                        "-f", "lavfi", "-i", TONE, "-shortest", "-c:v", "libx264", *args, "-c:a", "aac",
                        str(partial)], check=True)
        partial.replace(path)
    return path


def files() -> list[tuple[str, str, Path]]:
    """(kind, label, path) of every file measured."""
    typical = _encode(
            "onedecode-720p-10s.mp4",
            "testsrc2=size=1280x720:rate=30:duration=2[a];smptehdbars=size=1280x720:rate=30:duration=3[b];"
            "mandelbrot=size=1280x720:rate=30,trim=duration=3,setpts=PTS-STARTPTS[c];"
            "rgbtestsrc=size=1280x720:rate=30:duration=2[d];[a][b][c][d]concat=n=4:v=1:a=0,format=yuv420p",
            ["-preset", "veryfast"])
    adversarial = _encode("onedecode-1080p-noise-longgop.mp4",
                          "testsrc2=size=1920x1080:rate=30:duration=12,noise=alls=14:allf=t+u,format=yuv420p",
                          ["-preset", "medium", "-g", "600", "-keyint_min", "600"])
    return [("typical", "testvideo.mp4", media_dir() / "testvideo.mp4"),
            ("typical", "issue-195-aspect-ratio.mp4", media_dir() / "issue-195-aspect-ratio.mp4"),
            ("typical", "synthetic 10 s 720p30, 3 cuts", typical),
            ("adversarial", "synthetic 12 s 1080p30 noise, long GOP", adversarial)]


def ingest(path: str, mode: str) -> Run:
    """The ingest's media work on one file, step by step; in a fresh process. Output: per step (wall, CPU)."""
    from heimdex_pipeline.assets.video import DETECTOR, ThumbnailConfig
    from heimdex_pipeline.core.settings import get_settings
    from heimdex_pipeline.media.frame_taps import SharedFrames
    from heimdex_pipeline.media.probe import probe_video
    from heimdex_pipeline.media.qc import measure_qc, thresholds_from
    from heimdex_pipeline.media.scenes import detect_scenes
    from heimdex_pipeline.media.shared_frames import scene_pass_tap
    from heimdex_pipeline.media.storyboard import make_storyboard
    from heimdex_pipeline.media.thumbnails import ThumbnailPolicy, extract_thumbnails, plan_thumbnails

    source, times = Path(path), {}
    settings = get_settings()
    thresholds = thresholds_from(settings)

    def timed(step: str, work):  # noqa: ANN001, ANN202 (a closure over the steps' own types)
        """Run `work` and add its wall and CPU seconds to the step's."""
        cpu, start = cpu_seconds(), time.perf_counter()
        result = work()
        wall, used = times.get(step, (0.0, 0.0))
        times[step] = (wall + time.perf_counter() - start, used + cpu_seconds() - cpu)
        return result

    with tempfile.TemporaryDirectory(prefix="heimdex-bench-") as scratch:
        out = Path(scratch)
        probe = timed("probe", lambda: probe_video(source))

        def scenes():  # noqa: ANN202
            if mode == "separate":
                return detect_scenes(source, probe, DETECTOR), None
            tap = scene_pass_tap(probe, settings.storyboard_tile_width, thresholds.black_pixel_threshold)
            detection = detect_scenes(source, probe, DETECTOR, tap=tap)
            (out / "frames.npz").write_bytes(tap.shared(detection.frame_count).to_bytes())
            return detection, out / "frames.npz"
        detection, frames = timed("scenes", scenes)

        def shared() -> SharedFrames | None:
            return SharedFrames.from_bytes(frames.read_bytes()) if frames is not None else None
        config = ThumbnailConfig()
        policy = ThumbnailPolicy(interval_s=config.interval_s, max_count=config.max_count, max_height=config.max_height)
        timed("thumbnails", lambda: extract_thumbnails(source, probe, plan_thumbnails(
            detection.scenes, probe["duration_s"], policy), out / "thumbnails", policy.max_height))
        # Each step reads the intermediate itself, as its asset does.
        tiles = timed("storyboard", lambda: (kept := shared()) and kept.tiles)
        board = timed("storyboard", lambda: make_storyboard(source, probe, out / "storyboard",
                                                            settings.storyboard_tile_width, tiles=tiles or None))
        pictures = timed("qc", lambda: (kept := shared()) and kept.pictures)
        report = timed("qc", lambda: measure_qc(source, probe, thresholds, pictures=pictures or None))
    total_wall = sum(wall for wall, _ in times.values())
    return Run(total_wall, 0, 0, {"steps": times, "frames": detection.frame_count,
                                  "frames_decoded": detection.frames_decoded, "tiles_shared": board.takes(tiles or None),
                                  "qc_pictures": report.pictures.source if report.pictures else "ffmpeg",
                                  "black": len(report.black), "freeze": len(report.freeze),
                                  "size": f"{probe['width']}x{probe['height']}", "duration_s": probe["duration_s"]})


def plain_decode(path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of `ffmpeg -i FILE -an -f null -`."""
    before = os.times()
    run, _ = timed_command([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path), "-an",
                            "-f", "null", "-"])
    after = os.times()
    return run.wall_s, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onedecode", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mode and of the decode (default 3)")
    args = parser.parse_args(argv)
    started, load_before = time.perf_counter(), os.getloadavg()
    step_rows, total_rows = [], []
    for kind, label, path in files():
        runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
        decodes: list[tuple[float, float]] = []
        for attempt in range(args.repeat):
            decodes.append(plain_decode(path))
            for mode in MODES:
                runs[mode].append(in_fresh_process(ingest, str(path), mode))
            log(f"{label} run {attempt + 1}/{args.repeat}: decode {decodes[-1][1]:.2f} CPU s, "
                + ", ".join(f"{mode} {sum(c for _, c in runs[mode][-1].output['steps'].values()):.2f} CPU s"
                            for mode in MODES))
        decode_wall, decode_cpu = min(w for w, _ in decodes), min(c for _, c in decodes)
        for mode in MODES:
            # Each step's best over the runs, in wall and in CPU seconds.
            best = {step: (min(r.output["steps"][step][0] for r in runs[mode]),
                           min(r.output["steps"][step][1] for r in runs[mode])) for step in STEPS}
            wall, cpu = sum(w for w, _ in best.values()), sum(c for _, c in best.values())
            first = runs[mode][0].output
            step_rows.append([label, mode, *(f"{best[s][1]:.2f}" for s in STEPS), f"{cpu:.2f}", f"{decode_cpu:.2f}",
                              f"{best['scenes'][1] / decode_cpu:.2f}x", f"{cpu / decode_cpu:.2f}x",
                              f"{best['qc'][1] / (cpu - best['qc'][1]):.0%}"])
            total_rows.append([label, kind, first["size"], f"{first['duration_s']:.1f}", mode, f"{wall:.2f}",
                               f"{decode_wall:.2f}", f"{wall / decode_wall:.2f}x",
                               f"{best['scenes'][0] / decode_wall:.2f}x", f"{first['frames_decoded']}/{first['frames']}",
                               "yes" if first["tiles_shared"] else "no", first["qc_pictures"]])
    load_after = os.getloadavg()
    print_header("Heimdex one-decode benchmark",
                 f"uv run python -m benchmarks.onedecode: best of {args.repeat}, measured in "
                 f"{time.perf_counter() - started:.0f} s; load average {load_before[0]:.2f} before, "
                 f"{load_after[0]:.2f} after")
    print("CPU seconds per step (the process's and its children's), best of the runs; decode = ffmpeg -i FILE -an "
          "-f null -;\nqc share = qc / the other four steps")
    print(table(["file", "mode", *STEPS, "ingest", "decode", "scenes/decode", "ingest/decode", "qc share"],
                step_rows))
    print()
    print("Wall seconds, each step's best summed; frames decoded by the scene pass (a second look's count twice)")
    print(table(["file", "kind", "size", "duration s", "mode", "ingest s", "decode s", "ingest/decode",
                 "scenes/decode", "scene frames decoded", "tiles shared", "qc pictures"], total_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
