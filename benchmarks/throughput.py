"""Ingest throughput through the daemon, against the floor of the media work alone.

1. The floor: the media work of the ingest's three assets (probe, scene detection with the
   sidecar's detector, the default thumbnail policy) on each clip, back to back in this one
   process after a warm-up: what the machine can do with no orchestration at all.
2. The daemon path: `./scripts/run.sh`, started as a user starts it, on a fresh DAGSTER_HOME,
   derived root and SQLite catalog, free ports, and secrets of its own in the environment (the
   user's `.env` is left alone). Once the web UI and the API answer, all clips are dropped at
   once into the upload bucket (each copied under a hidden name, then renamed), and the runs
   are read from the instance until every clip's ingest has succeeded. The whole process tree's
   memory is sampled meanwhile. `--kill-one` SIGKILLs one run worker in the middle of its run
   and times run monitoring's detection and the retry's start.
3. Latency: once the batch is done, `--single` more clips are dropped one at a time into the
   idle pipeline, each after the one before has finished and after a random pause of up to one
   sensor cycle, so that the drops fall anywhere in the sensor's cycle: drop -> run started.

    uv run python -m benchmarks.throughput [--clips 20] [--single 5] [--floor-only] [--keep] [--kill-one]

The N clips are distinct 10-second 1280x720 H.264 clips with three known cuts each (each is
its own asset id), made once by ffmpeg into the benchmarks' cache (HEIMDEX_BENCH_CACHE).
"""

import argparse
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunRecord

from benchmarks.run import REPO, ClipSpec, log, print_header, synthetic_clip, table
from heimdex_pipeline.assets.video import DETECTOR, ThumbnailConfig
from heimdex_pipeline.core.settings import get_settings
from heimdex_pipeline.media.fingerprint import asset_id_for, hash_content
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import detect_scenes
from heimdex_pipeline.media.thumbnails import ThumbnailPolicy, extract_thumbnails, plan_thumbnails
from heimdex_pipeline.runs.tags import PARENT_RUN_TAG, PARTITION_TAG
from tests.dagster_home import free_port, start_process
from tests.faults.process_tree import kill_session, session

ORG = "bench"
RATE = 30
# Four segments, three cuts; clip i moves the first cut by i frames, so every clip differs.
MAX_CLIPS = 60
MAX_SINGLE = 10
# Dagster's sensor daemon loops every 5 s: a pause drawn from this range lands anywhere in a cycle.
SENSOR_CYCLE_S = 5.0
MEMORY_SAMPLE_S = 0.5
STOP_BUDGET_S = 20.0


def clip_spec(index: int) -> ClipSpec:
    """The index-th distinct clip: 10 s of 720p30, its first cut `index` frames later than clip 0's."""
    first = 1.0 + index / RATE
    return ClipSpec(f"clip {index}", (first, 3.0, 3.0, 3.0 - index / RATE), "1280x720", RATE, "veryfast")


def asset_id_of(path: Path) -> str:
    """The asset id the upload sensor gives this file dropped under the bench org."""
    data = path.read_bytes()

    def read(offset: int, length: int | None) -> Iterator[bytes]:
        yield data[offset:None if length is None else offset + length]
    return asset_id_for(ORG, hash_content(len(data), read, get_settings().weak_threshold_bytes))


@dataclass
class Clip:
    """One generated clip, what the floor measured on it and what its daemon run took."""

    index: int
    path: Path
    cuts: int
    asset_id: str
    media_s: float = 0.0
    found_cuts: int = 0
    dropped_at: float = 0.0
    runs: list[RunRecord] = field(default_factory=list)


def media_work(path: Path, out_dir: Path) -> int:
    """The ingest's media work on one video, as its assets do it; the number of cuts found."""
    probe = probe_video(path)
    detection = detect_scenes(path, probe, DETECTOR)
    config = ThumbnailConfig()
    policy = ThumbnailPolicy(interval_s=config.interval_s, max_count=config.max_count, max_height=config.max_height)
    slots = plan_thumbnails(detection.scenes, probe["duration_s"], policy)
    extract_thumbnails(path, probe, slots, out_dir, policy.max_height)
    return len(detection.scenes) - 1


def measure_floor(clips: list[Clip]) -> None:
    """Each clip's media work, back to back after one warm-up, timed into its `media_s`."""
    with tempfile.TemporaryDirectory(prefix="heimdex-floor-") as scratch:
        media_work(clips[0].path, Path(scratch) / "warm-up")
        for clip in clips:
            begin = time.perf_counter()
            clip.found_cuts = media_work(clip.path, Path(scratch) / str(clip.index))
            clip.media_s = time.perf_counter() - begin


class MemorySampler(threading.Thread):
    """Peak summed RSS of a session's processes, and of the largest run worker with its children.

    The run workers are known by the pid of their runs' RUN_START event (`workers`, run id to
    pid, filled by the caller): how a launcher starts them is its own business.
    """

    def __init__(self, sid: int) -> None:
        super().__init__(daemon=True)
        self.sid = sid
        self.workers: dict[str, int] = {}
        self.peak_total = 0
        self.peak_worker = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(MEMORY_SAMPLE_S):
            rss: dict[int, int] = {}
            for proc in session(self.sid):
                try:
                    rss[proc.pid] = psutil.Process(proc.pid).memory_info().rss
                except psutil.Error:
                    continue  # gone since it was listed
            self.peak_total = max(self.peak_total, sum(rss.values()))
            for pid in list(self.workers.values()):
                try:
                    tree = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
                except psutil.Error:
                    continue
                self.peak_worker = max(self.peak_worker, sum(rss.get(p, 0) for p in tree))


@dataclass
class Site:
    """Where the benchmark's own Heimdex runs: its DAGSTER_HOME, derived root, ports and environment."""

    root: Path
    api_port: int = field(default_factory=free_port)
    dagster_port: int = field(default_factory=free_port)

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def derived(self) -> Path:
        return self.root / "derived"

    def env(self) -> dict[str, str]:
        """The user's environment, with everything that would point at their own data replaced."""
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "HEIMDEX_DERIVED_ROOT": str(self.derived),
            "HEIMDEX_STORAGE": "local",
            "HEIMDEX_DATABASE_URL": f"sqlite:///{self.derived / 'heimdex.db'}",
            "HEIMDEX_API_PORT": str(self.api_port),
            "DAGSTER_PORT": str(self.dagster_port),
            "HEIMDEX_DAGSTER_WEBSERVER_URL": f"http://127.0.0.1:{self.dagster_port}",
            # Set here, the secrets keep scripts/secrets.sh from writing the user's .env.
            "HEIMDEX_JWT_SECRET": secrets.token_urlsafe(64),
            "HEIMDEX_URL_SIGNING_KEY": secrets.token_urlsafe(64),
        }


def answers(url: str) -> bool:
    """Whether `url` answers 200 right now."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def run_script(site: Site) -> Iterator[subprocess.Popen]:
    """`./scripts/run.sh` on the site, in a session of its own, until both ports answer; stopped
    at the end by Ctrl-C to its process group, and whatever is left of its session killed."""
    log_path = site.root / "run.log"
    script = start_process(["bash", str(REPO / "scripts" / "run.sh")], site.env(), log_path, new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (answers(f"http://127.0.0.1:{site.api_port}/v1/health")
                   and answers(f"http://127.0.0.1:{site.dagster_port}/server_info")):
            if script.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"run.sh did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield script
    finally:
        with suppress(ProcessLookupError):  # the script and its group may be gone already
            os.killpg(script.pid, signal.SIGINT)
        try:
            script.wait(timeout=STOP_BUDGET_S)
        except subprocess.TimeoutExpired:
            log("run.sh still running after Ctrl-C; killing its session")
        kill_session(script.pid, grace_s=0)


def drop(clip: Clip, bucket: Path) -> None:
    """Copy a clip into the bucket under a hidden name, then rename it into place; note when."""
    hidden = bucket / f".clip-{clip.index:02d}.mp4"
    shutil.copyfile(clip.path, hidden)
    hidden.rename(bucket / f"clip-{clip.index:02d}.mp4")
    clip.dropped_at = time.time()


def event_times(instance: DagsterInstance, run_id: str) -> dict[str, list[tuple[str | None, float]]]:
    """The run's launch, start, failure and step events: (step key, timestamp) by event type."""
    kinds = {DagsterEventType.RUN_STARTING, DagsterEventType.RUN_START, DagsterEventType.RUN_FAILURE,
             DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
    found: dict[str, list[tuple[str | None, float]]] = {kind.value: [] for kind in kinds}
    for entry in instance.all_logs(run_id, of_type=kinds):
        found[entry.dagster_event_type.value].append((entry.step_key, entry.timestamp))
    return found


def step_seconds(events: dict[str, list[tuple[str | None, float]]]) -> float:
    """The steps' own time: from each step's first start to its success, summed."""
    starts: dict[str | None, float] = {}
    for key, at in events[DagsterEventType.STEP_START.value]:
        starts.setdefault(key, at)
    return sum(at - starts[key] for key, at in events[DagsterEventType.STEP_SUCCESS.value] if key in starts)


@dataclass
class KillOne:
    """`--kill-one`: the run whose worker was killed, and when."""

    run_id: str = ""
    killed_at: float = 0.0

    def maybe_kill(self, instance: DagsterInstance, workers: dict[str, int]) -> None:
        """SIGKILL the worker of the first running run that has begun a step, once."""
        if self.run_id:
            return
        for run_id, pid in workers.items():
            run = instance.get_run_by_id(run_id)
            if run and run.status == DagsterRunStatus.STARTED and instance.all_logs(
                    run_id, of_type=DagsterEventType.STEP_START):
                os.kill(pid, signal.SIGKILL)
                self.run_id, self.killed_at = run_id, time.time()
                log(f"killed the worker (pid {pid}) of run {run_id}")
                return


def note_workers(instance: DagsterInstance, records: list[RunRecord], workers: dict[str, int]) -> None:
    """Add the worker pid of each started run not yet known: its RUN_START event's."""
    for record in records:
        run_id = record.dagster_run.run_id
        if run_id not in workers and record.dagster_run.status == DagsterRunStatus.STARTED:
            start = instance.all_logs(run_id, of_type=DagsterEventType.RUN_START)
            if start and start[0].dagster_event and start[0].dagster_event.pid:
                workers[run_id] = start[0].dagster_event.pid


def wait_for_runs(instance: DagsterInstance, clips: list[Clip], timeout_s: float, workers: dict[str, int],
                  kill: KillOne | None) -> float:
    """Poll the instance until every clip has a successful run; the time of the last success.

    Meanwhile `workers` learns each run's worker pid.
    """
    by_asset = {clip.asset_id: clip for clip in clips}
    deadline = time.monotonic() + timeout_s
    while True:
        records = instance.get_run_records()
        for clip in clips:
            clip.runs = []
        for record in records:
            clip = by_asset.get(record.dagster_run.tags.get(PARTITION_TAG, ""))
            if clip:
                clip.runs.append(record)
        done = [clip for clip in clips if any(r.dagster_run.status == DagsterRunStatus.SUCCESS for r in clip.runs)]
        if len(done) == len(clips):
            return max(r.end_time for clip in clips for r in clip.runs if r.end_time is not None
                       and r.dagster_run.status == DagsterRunStatus.SUCCESS)
        note_workers(instance, records, workers)
        if kill is not None:
            kill.maybe_kill(instance, workers)
        if time.monotonic() > deadline:
            states = {r.dagster_run.run_id[:8]: r.dagster_run.status.value for clip in clips for r in clip.runs}
            raise TimeoutError(f"{len(done)}/{len(clips)} clips ingested after {timeout_s:.0f} s; runs: {states}")
        time.sleep(0.5)


@dataclass
class RunFigures:
    """What one clip's successful run took, in seconds."""

    to_created: float
    to_started: float
    # RUN_STARTING -> RUN_START: the launcher's part, a worker process started and its imports.
    launch: float
    wall: float
    steps: float
    overhead: float
    wall_minus_steps: float
    # The run's duration as the web UI shows it (RUN_START -> end) minus the media work.
    ui_overhead: float


def run_figures(instance: DagsterInstance, clip: Clip) -> RunFigures:
    """The figures of the clip's successful run; its queueing counts from the drop."""
    first = min(clip.runs, key=lambda r: r.create_timestamp)
    record = next(r for r in clip.runs if r.dagster_run.status == DagsterRunStatus.SUCCESS)
    events = event_times(instance, record.dagster_run.run_id)
    launched = events[DagsterEventType.RUN_STARTING.value]
    began = launched[0][1] if launched else record.start_time
    wall, steps = record.end_time - began, step_seconds(events)
    launch = events[DagsterEventType.RUN_START.value][0][1] - began
    return RunFigures(first.create_timestamp.timestamp() - clip.dropped_at, record.start_time - clip.dropped_at,
                      launch, wall, steps, wall - clip.media_s, wall - steps, record.end_time - record.start_time - clip.media_s)


def kill_report(instance: DagsterInstance, kill: KillOne) -> str:
    """When the killed run's failure was recorded, and when its retry started."""
    failure = event_times(instance, kill.run_id)[DagsterEventType.RUN_FAILURE.value]
    retries = [r for r in instance.get_run_records() if r.dagster_run.tags.get(PARENT_RUN_TAG) == kill.run_id]
    if not failure or not retries or retries[0].start_time is None:
        return f"killed run {kill.run_id}: no failure event or no started retry"
    detected = failure[0][1]
    return (f"kill -> failure detected {detected - kill.killed_at:.1f} s; "
            f"detected -> retry STARTED {retries[0].start_time - detected:.1f} s")


@dataclass
class DaemonPath:
    """What the daemon path measured: the wall time from first drop to last success, each clip's
    run figures, the memory peaks, and `--kill-one`'s timings."""

    wall_s: float
    figures: list[RunFigures]
    memory: MemorySampler
    killed: str
    single: list[RunFigures]


def measure_single_drops(instance: DagsterInstance, singles: list[Clip], bucket: Path, timeout_s: float) -> list[RunFigures]:
    """Drop each clip alone into the idle pipeline, at a random moment of the sensor's cycle."""
    pauses = random.Random(0)
    for clip in singles:
        time.sleep(pauses.uniform(0, SENSOR_CYCLE_S))
        drop(clip, bucket)
        wait_for_runs(instance, [clip], timeout_s, {}, None)
    return [run_figures(instance, clip) for clip in singles]


def measure_daemon_path(clips: list[Clip], singles: list[Clip], timeout_s: float, kill: KillOne | None,
                        keep: bool) -> DaemonPath:
    """Start `./scripts/run.sh` on a fresh site, drop every clip at once and wait for their runs,
    then drop the singles one by one."""
    site = Site(Path(tempfile.mkdtemp(prefix="heimdex-throughput-")))
    log(f"starting ./scripts/run.sh on {site.root}")
    try:
        with run_script(site) as script:
            bucket = site.derived / "uploads" / ORG
            bucket.mkdir(parents=True, exist_ok=True)
            memory = MemorySampler(script.pid)
            memory.start()
            with DagsterInstance.from_config(str(site.home)) as instance:
                log(f"dropping {len(clips)} clips")
                for clip in clips:
                    drop(clip, bucket)
                last = wait_for_runs(instance, clips, timeout_s, memory.workers, kill)
                figures = [run_figures(instance, clip) for clip in clips]
                killed = kill_report(instance, kill) if kill else ""
                if singles:
                    log(f"dropping {len(singles)} clips one at a time")
                single = measure_single_drops(instance, singles, bucket, timeout_s)
            memory.stopped.set()
            memory.join()
        return DaemonPath(last - clips[0].dropped_at, figures, memory, killed, single)
    finally:
        if keep:
            log(f"kept {site.root}")
        else:
            shutil.rmtree(site.root, ignore_errors=True)


def summary(label: str, values: list[float]) -> list[str]:
    """Median and max of one column."""
    return [label, f"{statistics.median(values):.1f}", f"{max(values):.1f}"]


def print_floor(clips: list[Clip], floor_s: float) -> None:
    """The floor's table and its videos an hour."""
    rows = [[str(c.index), f"{c.media_s:.2f}", str(c.found_cuts), str(c.cuts)] for c in clips]
    print("Floor: the media work (probe, scenes, thumbnails) back to back in one process, after a warm-up")
    print(table(["clip", "media s", "cuts found", "cuts made"], rows))
    print(f"floor: {floor_s:.1f} s for {len(clips)}, {floor_s / len(clips):.2f} s a video, "
          f"{len(clips) / floor_s * 3600:.0f} videos an hour")


def print_daemon_path(clips: list[Clip], floor_s: float, daemon: DaemonPath) -> None:
    """The per-run table, its medians and maxima, the throughput against the floor, the memory."""
    print("Daemon path: ./scripts/run.sh, all clips dropped at once; seconds")
    print("created = drop -> run created; started = drop -> run STARTED; wall = RUN_STARTING -> run end;")
    print("steps = sum of STEP_START -> STEP_SUCCESS; overhead = wall - the clip's media s from the floor")
    figures = daemon.figures
    rows = [[str(c.index), f"{f.to_created:.1f}", f"{f.to_started:.1f}", f"{f.wall:.1f}", f"{f.steps:.1f}",
             f"{c.media_s:.2f}", f"{f.overhead:.1f}", f"{f.wall_minus_steps:.1f}", str(len(c.runs))]
            for c, f in zip(clips, figures, strict=True)]
    print(table(["clip", "created", "started", "wall", "steps", "media", "overhead", "wall-steps", "runs"], rows))
    print()
    columns = {"drop -> created": [f.to_created for f in figures], "drop -> STARTED": [f.to_started for f in figures],
               "launch (RUN_STARTING -> RUN_START)": [f.launch for f in figures],
               "run wall": [f.wall for f in figures], "steps": [f.steps for f in figures],
               "overhead (wall - media)": [f.overhead for f in figures],
               "UI duration - media": [f.ui_overhead for f in figures],
               "wall - steps": [f.wall_minus_steps for f in figures]}
    print(table(["per run, s", "median", "max"], [summary(label, values) for label, values in columns.items()]))
    print()
    per_hour, floor_per_hour = len(clips) / daemon.wall_s * 3600, len(clips) / floor_s * 3600
    print(f"first drop -> last run success: {daemon.wall_s:.1f} s, {per_hour:.0f} videos an hour; "
          f"floor {floor_per_hour:.0f}: the daemon path does {per_hour / floor_per_hour:.1%} of the floor")
    print(f"peak memory: run.sh's whole process tree {daemon.memory.peak_total / 1e6:.0f} MB; "
          f"one run worker with its children {daemon.memory.peak_worker / 1e6:.0f} MB")
    if daemon.killed:
        print(daemon.killed)
    if daemon.single:
        print()
        print("One clip at a time into the idle pipeline (a random pause of up to 5 s before each drop); seconds")
        rows = [[f"{f.to_created:.1f}", f"{f.to_started:.1f}", f"{f.to_started + f.wall:.1f}"] for f in daemon.single]
        print(table(["drop -> created", "drop -> STARTED", "drop -> done"], rows))
        print(table(["single drops, s", "median", "max"], [
            summary("drop -> created", [f.to_created for f in daemon.single]),
            summary("drop -> STARTED", [f.to_started for f in daemon.single])]))


def main(argv: list[str] | None = None) -> int:
    """Measure the floor, then (unless `--floor-only`) the daemon path, and print the report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=20, choices=range(1, MAX_CLIPS + 1), metavar="N",
                        help=f"distinct clips dropped at once (1..{MAX_CLIPS}, default 20)")
    parser.add_argument("--single", type=int, default=5, choices=range(MAX_SINGLE + 1), metavar="K",
                        help=f"clips then dropped one at a time into the idle pipeline (0..{MAX_SINGLE}, default 5)")
    parser.add_argument("--floor-only", action="store_true", help="measure the media work alone, no daemon")
    parser.add_argument("--keep", action="store_true", help="keep the site (DAGSTER_HOME, derived root, logs)")
    parser.add_argument("--kill-one", action="store_true", help="SIGKILL one run worker mid-run, time its retry")
    parser.add_argument("--timeout", type=float, help="seconds to wait for the runs (default 120 + 60 per clip)")
    args = parser.parse_args(argv)

    made = []
    for index in range(args.clips + args.single):
        path, cuts = synthetic_clip(clip_spec(index))
        made.append(Clip(index, path, len(cuts), asset_id_of(path)))
    clips, singles = made[:args.clips], made[args.clips:]
    load_before = os.getloadavg()
    log(f"floor: media work of {len(made)} clips in one process")
    measure_floor(made)
    floor_s = sum(clip.media_s for clip in clips)
    daemon = None
    if not args.floor_only:
        daemon = measure_daemon_path(clips, singles, args.timeout or 120 + 60 * len(clips),
                                     KillOne() if args.kill_one else None, args.keep)
    load_after = os.getloadavg()

    options = " --floor-only" if args.floor_only else " --kill-one" if args.kill_one else ""
    print_header("Heimdex ingest throughput",
                 f"uv run python -m benchmarks.throughput --clips {args.clips} --single {args.single}{options}: "
                 f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"{len(clips)} distinct clips, 10 s 1280x720 30 fps H.264 (x264 veryfast), 3 cuts each")
    print()
    print_floor(clips, floor_s)
    if daemon:
        print()
        print_daemon_path(clips, floor_s, daemon)
    return 0


if __name__ == "__main__":
    sys.exit(main())
