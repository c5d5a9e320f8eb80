"""Dagster's own cost of an ingest run: the CPU and events of one run of a clip so short that little else is left.

The ingest job (probe, scenes, thumbnails, storyboard, QC and the checks of each) runs in this process,
as the API's immediate mode runs it, on a real instance: SQLite in a temporary DAGSTER_HOME, or
PostgreSQL (`--postgres`, a fresh database on that server, dropped afterwards), with a SQLite
catalog and a local derived root. The clip is 2 s of 160x120 with one cut, so its media work is a
small part of a run; the rest is Dagster's: a step per asset and one per asset's checks, their events,
the run record. Each run is of a video of its own (the same clip for another org). One warm-up run,
then `--runs` runs; each is timed by `time.process_time()` (this process's CPU, which includes the
in-process decoding but not the ffmpeg processes the steps start) and by the wall clock, and its
events are counted in the instance.

    uv run python -m benchmarks.run_cost [--runs 5] [--postgres] [--repo PATH]

`--repo` measures the code of another checkout (a `git archive` of a commit to compare with)
with this script.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

CLIP_SEGMENTS_S = (1.0, 1.0)


def measure(runs: int, postgres: bool) -> list[tuple[float, float, int]]:
    """(CPU s, wall s, events) of each of `runs` ingest runs after a warm-up, on SQLite or PostgreSQL."""
    # Imported here, after `--repo` has chosen the code measured.
    from dagster import Definitions
    from dagster._core.test_utils import instance_for_test

    from benchmarks.run import log
    from heimdex_pipeline.catalog.migrate import migrate
    from heimdex_pipeline.core.settings import PipelineSettings
    from heimdex_pipeline.definitions import defs
    from heimdex_pipeline.resources import MediaStorage, resources_from
    from tests.catalogue import catalogue_upload
    from tests.media.synthetic import make_clip
    from tests.postgres import create_database, drop_databases

    with tempfile.TemporaryDirectory(prefix="heimdex-run-cost-") as tmp:
        folder = Path(tmp)
        clip = folder / "clip.mp4"
        make_clip(clip, CLIP_SEGMENTS_S, size="160x120")
        catalog_url = f"sqlite:///{folder / 'catalog.db'}"
        migrate(catalog_url)
        (folder / "derived" / "uploads").mkdir(parents=True)
        (folder / "dagster_home").mkdir()
        storage = MediaStorage(backend="local", root=str(folder / "derived"))
        settings = PipelineSettings(_env_file=None, derived_root=folder / "derived", database_url=catalog_url)
        # The definitions with this catalog and root, as the API's immediate mode makes them.
        job = Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
                          resources={**resources_from(settings), "storage": storage}).resolve_job_def("ingest_video")
        made = [create_database(prefix="heimdex_bench")] if postgres else []
        overrides = {"storage": {"postgres": {"postgres_url": made[0]}}} if postgres else None
        figures = []
        try:
            with instance_for_test(temp_dir=str(folder / "dagster_home"), overrides=overrides) as instance:
                for index in range(runs + 1):
                    asset_id = catalogue_upload(storage.store, catalog_url, instance, clip, f"org-{index}")
                    cpu, wall = time.process_time(), time.perf_counter()
                    run_id = job.execute_in_process(instance=instance, partition_key=asset_id).run_id
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                    figures.append((cpu, wall, len(instance.all_logs(run_id))))
                    log(f"run {index}{' (warm-up)' if not index else ''}: {cpu:.2f} CPU s, {wall:.2f} s, "
                        f"{figures[-1][2]} events")
        finally:
            drop_databases(made)
    return figures[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="Dagster's storage on the local PostgreSQL")
    parser.add_argument("--repo", type=Path, help="measure the code of this checkout")
    args = parser.parse_args()
    if args.repo:
        sys.path.insert(0, str(args.repo.resolve()))
    import heimdex_pipeline
    from benchmarks.run import print_header, table

    print_header(f"Dagster's own cost of an ingest run, {'PostgreSQL' if args.postgres else 'SQLite'}",
                 f"code: {Path(heimdex_pipeline.__file__).parent.parent}; {' '.join(sys.argv)}")
    figures = measure(args.runs, args.postgres)
    cpu, wall, events = zip(*figures, strict=True)
    print(table(["runs", "CPU s a run: median (min-max)", "wall s a run: median", "events a run"],
          [[str(len(figures)), f"{statistics.median(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f})",
            f"{statistics.median(wall):.2f}", f"{statistics.median(events):g}"]]))


if __name__ == "__main__":
    main()
