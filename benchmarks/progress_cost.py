"""What reporting progress costs the scene step: detection on one clip with and without a report.

The report is the scene step's own (`heimdex_pipeline.assets.progress`) without Dagster: a log
line and an upsert of the run's `run_progress` row in a real SQLite catalog, about once a second.
Runs alternate between the two, so that load from elsewhere hits both alike; each figure is the
median of `--repeat` runs.

    uv run python -m benchmarks.progress_cost [--repeat 7] [--quick]
"""

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.run import FULL, QUICK, log, print_header, synthetic_clip, table
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.catalog.repository import record_progress
from heimdex_pipeline.media.detector import DetectorParams
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import detect_scenes

# The bound on what progress may cost the scene step.
MAX_OVERHEAD = 0.02


def _detect(path: Path, probe: dict, catalog_url: str | None) -> tuple[float, int]:
    """Seconds of one detection, and how many reports it made (None catalog: no report)."""
    reports = 0

    def report(done: int, total: int) -> None:
        nonlocal reports
        reports += 1
        logging.getLogger("heimdex.bench").info("scene_sidecar: %s of %s frames", done, total)
        with session_scope(catalog_url) as session:
            record_progress(session, "bench-run", "scene_sidecar", "frames", done, total)

    start = time.perf_counter()
    detect_scenes(path, probe, DetectorParams(), progress=report if catalog_url else None)
    return time.perf_counter() - start, reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each kind (default 7)")
    parser.add_argument("--quick", action="store_true", help="the quick plan's short clip")
    args = parser.parse_args()
    spec = (QUICK if args.quick else FULL).detection_clip
    print_header("What progress costs the scene step", f"uv run python -m benchmarks.progress_cost "
                                                        f"--repeat {args.repeat}{' --quick' if args.quick else ''}")
    path, _ = synthetic_clip(spec)
    probe = probe_video(path)
    with tempfile.TemporaryDirectory(prefix="heimdex-bench-") as folder:
        catalog_url = f"sqlite:///{Path(folder) / 'catalog.db'}"
        migrate(catalog_url)
        _detect(path, probe, None)  # warm the file cache and the imports
        quiet, reporting, reports = [], [], 0
        for attempt in range(1, args.repeat + 1):
            quiet.append(_detect(path, probe, None)[0])
            seconds, reports = _detect(path, probe, catalog_url)
            reporting.append(seconds)
            log(f"run {attempt}/{args.repeat}: {quiet[-1]:.2f} s without, {seconds:.2f} s with ({reports} reports)")
    without, with_ = statistics.median(quiet), statistics.median(reporting)
    overhead = with_ / without - 1
    print(table(["clip", "frames", "without s", "with s", "reports", "overhead"],
                [[spec.label, str(round(probe["duration_s"] * (probe["fps"] or 25))), f"{without:.2f}", f"{with_:.2f}",
                  str(reports), f"{overhead:+.1%}"]]))
    print()
    print(f"{'PASS' if overhead <= MAX_OVERHEAD else 'MISS'}  progress costs the scene step <= {MAX_OVERHEAD:.0%}: "
          f"{overhead:+.1%} (median of {args.repeat})")


if __name__ == "__main__":
    main()
