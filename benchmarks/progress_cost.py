"""What reporting progress costs the scene step: detection on one clip with and without a report.

The report is the scene step's own (`heimdex_pipeline.assets.progress`) without Dagster: a log
line and an upsert of the run's `run_progress` row in a real SQLite catalog, about once a second.
Runs alternate between the two, so that load from elsewhere hits both alike. The verdict is on
the wall clock: each pair's difference (with / without - 1), and a distribution-free 95%
confidence interval of their median (order statistics of the pairs). PASS when the whole interval
is within the target, MISS when it is wholly above, UNDECIDED when the machine's noise is wider
than the target (more `--repeat` narrows it). The time spent in the reports themselves is printed
beside it, as an explanation of the difference, not as the verdict.

    uv run python -m benchmarks.progress_cost [--repeat 15] [--quick]
"""

import argparse
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.run import FULL, QUICK, log, print_header, synthetic_clip, table
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.catalog.repository import record_progress
from heimdex_pipeline.media.detector import ContentParams
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
    detect_scenes(path, probe, ContentParams(), progress=report if catalog_url else None)
    return time.perf_counter() - start, reports, reporting


def _update_cost() -> float:
    """Seconds one `Progress.update` takes between reports: the scene step makes one per frame."""
    progress, count = Progress(10**9, None), 200_000
    start = time.perf_counter()
    for done in range(count):
        progress.update(done)
    return (time.perf_counter() - start) / count


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median: the order statistics k and n-k+1 of the values, with the
    largest k whose binomial coverage is still at least `confidence` (the whole range when n is too small)."""
    ordered, n = sorted(values), len(values)
    k = 1
    while k < n // 2 + 1:
        outside = 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n  # P(median outside [x(k+1), x(n-k)])
        if 1 - outside < confidence:
            break
        k += 1
    return ordered[k - 1], ordered[n - k]


def verdict(low: float, high: float, target: float) -> str:
    """PASS when the interval is within the target, MISS when wholly above it, UNDECIDED otherwise."""
    if high <= target:
        return "PASS"
    return "MISS" if low > target else "UNDECIDED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="pairs of runs (default 15)")
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
    differences = [with_run / quiet_run - 1 for quiet_run, with_run in zip(quiet, reporting, strict=True)]
    low, high = median_interval(differences)
    # What the reports themselves take (plus the per-frame count, inside the detection): why the
    # wall clock differs, or how little of its difference is theirs.
    frames = round(probe["duration_s"] * (probe["fps"] or 25))
    spent = statistics.median(in_reports) + frames * _update_cost()
    print(table(["clip", "frames", "pairs", "without s", "with s", "median pair difference", "95% interval",
                 "reports", "in reports + counts ms", "their share"],
                [[spec.label, str(frames), str(args.repeat), f"{without:.2f}", f"{with_:.2f}",
                  f"{statistics.median(differences):+.1%}", f"{low:+.1%} .. {high:+.1%}", str(reports),
                  f"{spent * 1000:.1f}", f"{spent / without:.2%}"]]))
    print()
    print(f"{verdict(low, high, MAX_OVERHEAD)}  the reports cost the scene step <= {MAX_OVERHEAD:.0%} of its wall "
          f"time: median pair difference {statistics.median(differences):+.1%}, 95% interval {low:+.1%} .. "
          f"{high:+.1%} ({args.repeat} pairs)")


if __name__ == "__main__":
    main()
