"""What reporting progress costs the scene step: detection on one clip with and without a report.

The report is the scene step's own (`heimdex_pipeline.assets.progress`) without Dagster: a log
line and an upsert of the run's `run_progress` row in a real SQLite catalog, about once a second.
Runs alternate between the two, so that load from elsewhere hits both alike; each figure is the
median of `--repeat` runs. The wall times differ by the machine's noise as much as by the
reports, so the verdict is on the cost proper: the time spent in the reports plus one count
(`Progress.update`) per frame, against the detection's time.

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
from heimdex_pipeline.media.progress import Progress
from heimdex_pipeline.media.scenes import detect_scenes

# The bound on what progress may cost the scene step.
MAX_OVERHEAD = 0.02


def _detect(path: Path, probe: dict, catalog_url: str | None) -> tuple[float, int, float]:
    """Seconds of one detection, how many reports it made and the seconds spent in them (None catalog:
    no report)."""
    reports, reporting = 0, 0.0

    def report(done: int, total: int) -> None:
        nonlocal reports, reporting
        start = time.perf_counter()
        logging.getLogger("heimdex.bench").info("scene_sidecar: %s of %s frames", done, total)
        with session_scope(catalog_url) as session:
            record_progress(session, "bench-run", "scene_sidecar", "frames", done, total)
        reports, reporting = reports + 1, reporting + time.perf_counter() - start

    start = time.perf_counter()
    detect_scenes(path, probe, DetectorParams(), progress=report if catalog_url else None)
    return time.perf_counter() - start, reports, reporting


def _update_cost() -> float:
    """Seconds one `Progress.update` takes between reports: the scene step makes one per frame."""
    progress, count = Progress(10**9, None), 200_000
    start = time.perf_counter()
    for done in range(count):
        progress.update(done)
    return (time.perf_counter() - start) / count


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
        quiet, reporting, in_reports, reports = [], [], [], 0
        for attempt in range(1, args.repeat + 1):
            quiet.append(_detect(path, probe, None)[0])
            seconds, reports, spent = _detect(path, probe, catalog_url)
            reporting.append(seconds)
            in_reports.append(spent)
            log(f"run {attempt}/{args.repeat}: {quiet[-1]:.2f} s without, {seconds:.2f} s with "
                f"({reports} reports, {spent * 1000:.1f} ms in them)")
    without, with_ = statistics.median(quiet), statistics.median(reporting)
    # The wall times differ by the machine's noise as much as by the reports: the time spent in
    # the reports themselves (plus the per-frame count, inside the detection) is the cost proper.
    frames = round(probe["duration_s"] * (probe["fps"] or 25))
    spent = statistics.median(in_reports) + frames * _update_cost()
    print(table(["clip", "frames", "without s", "with s", "wall difference", "reports", "reports + counts ms", "share"],
                [[spec.label, str(frames), f"{without:.2f}", f"{with_:.2f}", f"{with_ / without - 1:+.1%}", str(reports),
                  f"{spent * 1000:.1f}", f"{spent / without:.2%}"]]))
    print()
    print(f"{'PASS' if spent / without <= MAX_OVERHEAD else 'MISS'}  the reports cost the scene step "
          f"<= {MAX_OVERHEAD:.0%}: {spent / without:.2%} (medians of {args.repeat}; wall difference "
          f"{with_ / without - 1:+.1%})")


if __name__ == "__main__":
    main()
