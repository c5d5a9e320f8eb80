"""Storyboard cost: the step on a 10-minute clip and on the hour made of it, and what it adds to a short ingest.

1. The storyboard's media work (`probe_video` + `make_storyboard`, 160 px tiles) in a freshly
   spawned process, on the benchmark's 10-minute 720p30 clip (50 tiles, by seeking) and on the
   same clip stream-copied six times (an hour: 100 tiles, by seeking), best of `--repeat`.
2. The ingest of a 5 s 320x240 clip, as the tests make them (`materialize` of the ingest's assets
   and checks on a fresh Dagster instance and SQLite catalog, in this process), with and without
   the storyboard and its check, interleaved: the median of `--ingests` runs of each.

    uv run python -m benchmarks.storyboard [--quick] [--repeat N] [--ingests N]

The clips are those of `benchmarks.run`, cached in ~/.cache/heimdex-bench (HEIMDEX_BENCH_CACHE).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dagster import instance_for_test, materialize

from benchmarks.run import (
    FULL,
    QUICK,
    Run,
    best,
    in_fresh_process,
    log,
    print_header,
    repeated_clip,
    synthetic_clip,
    table,
)
from heimdex_pipeline.assets import VIDEO_CHECKS, probe_metadata, scene_sidecar, storyboard, thumbnails
from heimdex_pipeline.assets.checks import storyboard_matches_sprite
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.core.settings import PipelineSettings
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.storyboard import decodes_through, make_storyboard
from heimdex_pipeline.resources import MediaStorage, resources_from
from tests.catalogue import catalogue_upload
from tests.media.synthetic import make_clip

TILE_WIDTH = 160
SHORT_CLIP = (2.0, 1.5, 1.5)


def storyboard_step(path: str) -> Run:
    """Probe and make the storyboard of a video; runs in a fresh worker process."""
    with tempfile.TemporaryDirectory(prefix="heimdex-bench-") as out:
        start = time.perf_counter()
        probe = probe_video(Path(path))
        board = make_storyboard(Path(path), probe, Path(out), TILE_WIDTH)
        wall = time.perf_counter() - start
    return Run(wall, 0, 0, {"tiles": len(board.tiles), "sprite": f"{board.sprite_width}x{board.sprite_height}",
                            "path": "one pass" if decodes_through(probe) else "seeking",
                            "duration_s": probe["duration_s"]})


def ingest_seconds(clip: Path, runs: int) -> tuple[list[float], list[float]]:
    """Wall seconds of the ingest's materialisation of a short clip without and with the storyboard."""
    without = [probe_metadata, scene_sidecar, thumbnails, *(c for c in VIDEO_CHECKS if c is not storyboard_matches_sprite)]
    with_it = [probe_metadata, scene_sidecar, thumbnails, storyboard, *VIDEO_CHECKS]
    times: dict[int, list[float]] = {0: [], 1: []}
    with tempfile.TemporaryDirectory(prefix="heimdex-bench-") as folder, \
            instance_for_test(temp_dir=folder) as instance:
        catalog_url = f"sqlite:///{folder}/catalog.db"
        migrate(catalog_url)
        storage = MediaStorage(backend="local", root=os.path.join(folder, "derived"))
        resources = {**resources_from(PipelineSettings(database_url=catalog_url)), "storage": storage}
        asset_id = catalogue_upload(storage.store, catalog_url, instance, clip, "bench")
        materialize(with_it, partition_key=asset_id, instance=instance, resources=resources)  # warm-up
        for attempt in range(runs):
            for which, assets in enumerate((without, with_it)):
                start = time.perf_counter()
                assert materialize(assets, partition_key=asset_id, instance=instance, resources=resources).success
                times[which].append(time.perf_counter() - start)
            log(f"ingest run {attempt + 1}/{runs}: {times[0][-1]:.2f} s without, {times[1][-1]:.2f} s with")
    return times[0], times[1]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.storyboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 2-minute clip and its copies, one run each")
    parser.add_argument("--repeat", type=int, help="runs per storyboard timing, the best one counts (default 3)")
    parser.add_argument("--ingests", type=int, default=5, help="ingests of the short clip without and with (default 5)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    repeat = args.repeat or (1 if args.quick else 3)

    clip, _ = synthetic_clip(plan.thumbnail_clip)
    files = [(plan.thumbnail_clip.label, clip), (f"the same x{plan.long_copies} (stream copy)",
                                                repeated_clip(clip, plan.long_copies))]
    started, load_before = time.perf_counter(), os.getloadavg()
    runs: dict[str, list[Run]] = {label: [] for label, _ in files}
    for attempt in range(repeat):
        for label, path in files:
            runs[label].append(in_fresh_process(storyboard_step, str(path)))
            log(f"storyboard of {label} run {attempt + 1}/{repeat}: {runs[label][-1].wall_s:.2f} s")
    with tempfile.TemporaryDirectory(prefix="heimdex-bench-") as folder:
        short = Path(folder) / "short.mp4"
        make_clip(short, SHORT_CLIP)
        without, with_it = ingest_seconds(short, args.ingests)
    load_after = os.getloadavg()

    command = "uv run python -m benchmarks.storyboard" + (" --quick" if args.quick else "")
    print_header("Heimdex storyboard benchmark",
                 f"{command}: measured in {time.perf_counter() - started:.0f} s; "
                 f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"Storyboard, wall seconds: probe + plan + frames + sprite + track, {TILE_WIDTH} px tiles, best of {repeat}")
    rows = []
    for label, _ in files:
        sample = runs[label][0].output
        rows.append([label, f"{sample['duration_s']:.0f}", str(sample["tiles"]), sample["sprite"], sample["path"],
                     f"{best(runs[label]):.2f}", " ".join(f"{run.wall_s:.2f}" for run in runs[label])])
    print(table(["file", "duration s", "tiles", "sprite", "frames by", "best s", "runs s"], rows))
    print()
    print(f"Ingest of a {sum(SHORT_CLIP):g} s 320x240 clip (materialize, in process), median of {args.ingests}")
    added = statistics.median(with_it) - statistics.median(without)
    print(table(["ingest", "median s", "runs s"], [
        ["without storyboard", f"{statistics.median(without):.2f}", " ".join(f"{t:.2f}" for t in without)],
        ["with storyboard and its check", f"{statistics.median(with_it):.2f}", " ".join(f"{t:.2f}" for t in with_it)],
        ["added", f"{added:.2f}", ""]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
