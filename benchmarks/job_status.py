"""Job-status load: `GET /v1/jobs/{id}` against `GET /v1/health` on the real API, with Dagster's
storage in PostgreSQL holding `--runs` runs of the org.

Two fresh databases on the local PostgreSQL server (Dagster's storage, and the catalog at
`alembic upgrade head`) are made and dropped at the end. A few real `ingest_video` runs, started
as the API starts them, leave real sidecars and thumbnails in the store; the other runs are
seeded through the instance's storage API (the run, then its run and step events), tagged as the
API tags them: mostly succeeded with a sidecar (a copy of a real one), some failed at a step,
some queued, plus other orgs' runs. The API then runs in production settings from its entry point
(`python -m heimdex_api.serve`, as `scripts/run.sh` starts it) in one worker process, since each
process keeps its own finished jobs, and the same load (`benchmarks/http_load.py`) is
driven at both routes in alternating rounds: cold rounds, each on a freshly started server, then
warm rounds once every id has been read, each phase with its own verdict (medians of its rounds).

    uv run python -m benchmarks.job_status [--runs 10000] [--concurrency 32] [--seconds 10]

The issue's target: jobs at >= 50% of health's requests per second.
"""

import argparse
import logging
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, EventLogEntry
from dagster._core.events import JobFailureData, StepFailureData, StepSuccessData
from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_shared.error import SerializableErrorInfo

from benchmarks.http_load import LoadResult, request_bytes, run_load
from benchmarks.run import log, print_header, table
from heimdex_api.core.config import ApiSettings
from heimdex_api.core.security import READ, mint_token
from heimdex_api.services.dagster_instance import tuned_for_serving
from heimdex_api.services.launchers import JOB_NAMES, ImmediateLauncher, JobRequest, pipeline_definitions, start_run
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.runs.tags import PARTITION_TAG, run_tags
from heimdex_pipeline.storage import store_from_settings
from heimdex_pipeline.storage.layout import sidecar_key
from tests.catalogue import catalogue_upload
from tests.dagster_home import REPO_ROOT, free_port, instance_yaml, start_process, stop_process, wait_until_serving
from tests.media.synthetic import make_clip
from tests.postgres import create_database, drop_databases

ORG = "org-bench"
OTHER_ORGS = ("org-other-a", "org-other-b", "org-other-c")
RATIO_TARGET = 0.5
# A kept finished job answers far faster than a read from Dagster: a fresh server and one that has
# answered every id are measured apart, each with its own verdict.
PHASES = ("cold", "warm")
# Shares of the seeded runs: what a busy org's history looks like.
STATUS_WEIGHTS = {DagsterRunStatus.SUCCESS: 0.85, DagsterRunStatus.FAILURE: 0.10, DagsterRunStatus.QUEUED: 0.05}
TYPE_WEIGHTS = {"ingest": 0.7, "sidecar": 0.15, "thumbnails": 0.15}
STEPS = {"ingest": ("probe_metadata", "scene_sidecar", "thumbnails"), "sidecar": ("probe_metadata", "scene_sidecar"),
         "thumbnails": ("thumbnails",)}


@dataclass(frozen=True)
class SeededRun:
    """One run to seed: whose, which job, on which video, how it ended."""

    org_id: str
    job_type: str
    asset_id: str
    status: DagsterRunStatus
    started: float


def _origin(job_name: str) -> RemoteJobOrigin:
    """Where a queued run's job comes from, as the webserver records it for workspace.yaml's code location."""
    target = LoadableTargetOrigin(executable_path=sys.executable, module_name="heimdex_pipeline.definitions",
                                  working_directory=str(REPO_ROOT))
    location = ManagedGrpcPythonEnvCodeLocationOrigin(target, location_name="heimdex")
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_name)


def _event(run: DagsterRun, event_type: DagsterEventType, timestamp: float, step_key: str | None = None,
           data: object = None) -> EventLogEntry:
    event = DagsterEvent(event_type_value=event_type.value, job_name=run.job_name, step_key=step_key,
                         event_specific_data=data)
    return EventLogEntry(error_info=None, level=logging.INFO, user_message="", run_id=run.run_id,
                         timestamp=timestamp, step_key=step_key, job_name=run.job_name, dagster_event=event)


def seed_run(instance: DagsterInstance, seeded: SeededRun) -> str:
    """Add the run, then the events a real one leaves in the event log for its status (start and end times included)."""
    queued = seeded.status == DagsterRunStatus.QUEUED
    job_name = JOB_NAMES[seeded.job_type]
    run = instance.add_run(DagsterRun(
        job_name=job_name, run_id=str(uuid4()), remote_job_origin=_origin(job_name) if queued else None,
        status=DagsterRunStatus.QUEUED if queued else DagsterRunStatus.NOT_STARTED,
        tags={PARTITION_TAG: seeded.asset_id, **run_tags(seeded.org_id, seeded.job_type, origin="api")}))
    if queued:
        return run.run_id
    clock = seeded.started
    instance.handle_new_event(_event(run, DagsterEventType.RUN_START, clock))
    for step in STEPS[seeded.job_type]:
        clock += random.uniform(0.5, 4.0)
        instance.handle_new_event(_event(run, DagsterEventType.STEP_START, clock, step))
        clock += random.uniform(0.5, 4.0)
        if seeded.status == DagsterRunStatus.FAILURE:
            error = SerializableErrorInfo(f"ffprobe could not read the file: moov atom not found ({step})", [], "MediaError")
            instance.handle_new_event(_event(run, DagsterEventType.STEP_FAILURE, clock, step,
                                             StepFailureData(error=error, user_failure_data=None)))
            instance.handle_new_event(_event(run, DagsterEventType.RUN_FAILURE, clock + 0.1, data=JobFailureData(None)))
            return run.run_id
        instance.handle_new_event(_event(run, DagsterEventType.STEP_SUCCESS, clock, step,
                                         StepSuccessData(duration_ms=1000.0)))
    instance.handle_new_event(_event(run, DagsterEventType.RUN_SUCCESS, clock + 0.1))
    return run.run_id


def plan_runs(count: int, org_id: str) -> list[SeededRun]:
    """`count` runs of one org over the last 90 days, on about one video per 1.3 runs."""
    videos = [f"v_{uuid4().hex}" for _ in range(max(1, int(count / 1.3)))]
    now = time.time()
    statuses = random.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()), k=count)
    types = random.choices(list(TYPE_WEIGHTS), weights=list(TYPE_WEIGHTS.values()), k=count)
    return [SeededRun(org_id, job_type, random.choice(videos), status, now - random.uniform(60, 90 * 86400))
            for status, job_type in zip(statuses, types, strict=True)]


def real_runs(settings: ApiSettings, instance: DagsterInstance, workdir: Path, count: int) -> list[str]:
    """`count` real ingests of distinct clips, started as the API starts them; their asset ids."""
    store = store_from_settings(settings)
    launcher = ImmediateLauncher(pipeline_definitions(settings), instance)
    asset_ids = []
    for index in range(count):
        clip = workdir / f"clip-{index}.mp4"
        make_clip(clip, [2.0 + index, 2.0, 1.0 + index / 2])
        asset_id = catalogue_upload(store, settings.catalog_url, instance, clip, org_id=ORG)
        start_run(settings, instance, launcher, JobRequest("ingest", asset_id, ORG, JOB_NAMES["ingest"]))
        asset_ids.append(asset_id)
    return asset_ids


def seed(settings: ApiSettings, instance: DagsterInstance, runs: int, other_runs: int,
         real: list[str]) -> list[str]:
    """Seed the org's runs and other orgs'; each succeeded run of the org gets a copy of a real sidecar.
    Answers the org's run ids, the real runs' included."""
    store = store_from_settings(settings)
    sidecars = [store.read_json(sidecar_key(ORG, asset_id)) for asset_id in real]
    org_runs = [record.dagster_run.run_id for record in instance.get_run_records()]
    plans = plan_runs(runs - len(org_runs), ORG) + [run for org in OTHER_ORGS for run in plan_runs(other_runs, org)]
    started = time.monotonic()
    for index, seeded in enumerate(plans):
        run_id = seed_run(instance, seeded)
        if seeded.org_id == ORG:
            org_runs.append(run_id)
            if seeded.status == DagsterRunStatus.SUCCESS:
                store.write_json(sidecar_key(ORG, seeded.asset_id), {**random.choice(sidecars),
                                                                     "asset_id": seeded.asset_id})
        if index % 2000 == 1999:
            log(f"seeded {index + 1}/{len(plans)} runs ({time.monotonic() - started:.0f} s)")
    return org_runs


def server_env(home: Path, derived: Path, catalog_url: str) -> dict[str, str]:
    """The API's environment: production, fresh secrets, the PostgreSQL instance, queued job launches."""
    return {**os.environ, "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(derived),
            "HEIMDEX_DATABASE_URL": catalog_url, "HEIMDEX_ENV": "production",
            "HEIMDEX_JWT_SECRET": secrets.token_urlsafe(48), "HEIMDEX_URL_SIGNING_KEY": secrets.token_urlsafe(48),
            "HEIMDEX_JOB_QUEUE_BACKEND": "dagster"}


def _row(label: str, result: LoadResult, server_cpu_s: float) -> list[str]:
    return [label, f"{result.rate:.0f}", f"{result.percentile(0.5) * 1000:.1f}", f"{result.percentile(0.99) * 1000:.1f}",
            str(result.errors), f"{server_cpu_s / result.seconds:.0%}", f"{result.client_cpu_s / result.seconds:.0%}"]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children (uvicorn runs the app in itself)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def _profiler(pid: int, output: Path | None, seconds: float) -> subprocess.Popen | None:
    """py-spy sampling the server (every thread, idle ones left out) while a round runs, if asked for."""
    if output is None:
        return None
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--format", "raw",
                             "--output", str(output), "--nonblocking"], stdout=subprocess.DEVNULL)


def read_each_once(base_url: str, run_ids: list[str], headers: dict[str, str]) -> int:
    """GET every job once (8 at a time), so the server keeps each finished one; how many answered other than 200."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client, ThreadPoolExecutor(8) as pool:
        return sum(status != 200 for status in pool.map(lambda run_id: client.get(f"/v1/jobs/{run_id}").status_code,
                                                         run_ids))


def start_server(env: dict[str, str], workdir: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """The API as `scripts/run.sh` starts it, once it answers; the process and its host:port."""
    port = port or free_port()
    server = start_process([sys.executable, "-m", "heimdex_api.serve", "--host", "127.0.0.1", "--port", str(port)],
                           {**env, "HEIMDEX_API_WORKERS": "1"}, workdir / "api.log")
    wait_until_serving(f"http://127.0.0.1:{port}/v1/health", server, workdir / "api.log", timeout_s=120)
    return server, f"127.0.0.1:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs of the benchmark's org in the storage")
    parser.add_argument("--other-runs", type=int, default=1_000, help="runs of each of three other orgs")
    parser.add_argument("--real-runs", type=int, default=3, help="real ingests, whose sidecars the others copy")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections of the load")
    parser.add_argument("--clients", type=int, default=2, help="client processes the connections are spread over")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of health then jobs, cold and warm each")
    parser.add_argument("--profile", type=Path, help="py-spy's collapsed stacks of the server in the first cold jobs round")
    args = parser.parse_args(argv)
    command = "uv run python -m benchmarks.job_status " + " ".join(argv if argv is not None else sys.argv[1:])
    workdir = Path(tempfile.mkdtemp(prefix="heimdex-job-status-"))
    databases = [create_database("heimdex_bench"), create_database("heimdex_bench")]
    server = None
    try:
        dagster_url, catalog_url = databases
        home, derived = workdir / "dagster_home", workdir / "derived"
        home.mkdir()
        (home / "dagster.yaml").write_text(instance_yaml({"postgres": {"postgres_url": dagster_url}}))
        env = server_env(home, derived, catalog_url)
        os.environ.update({key: env[key] for key in ("HEIMDEX_DERIVED_ROOT", "HEIMDEX_DATABASE_URL")})
        settings = ApiSettings(jwt_secret=env["HEIMDEX_JWT_SECRET"], url_signing_key=env["HEIMDEX_URL_SIGNING_KEY"])
        migrate(catalog_url)
        with DagsterInstance.from_config(str(home)) as instance:
            # The API's own setup (one pooled connection, no table reflection per run event): seeding
            # takes minutes instead of an hour.
            tuned_for_serving(instance)
            started = time.monotonic()
            real = real_runs(settings, instance, workdir, args.real_runs)
            log(f"{len(real)} real ingest runs in {time.monotonic() - started:.0f} s")
            started = time.monotonic()
            run_ids = seed(settings, instance, args.runs, args.other_runs, real)
            seed_s = time.monotonic() - started
            total = instance.get_runs_count()
        log(f"{total} runs in the storage, seeded in {seed_s:.0f} s")

        server, host = start_server(env, workdir)
        token = {"Authorization": f"Bearer {mint_token(ORG, [READ], settings)}"}
        # One id is kept apart for the warm-ups, so a cold round reads none it has answered before.
        warm_up_id, *round_ids = run_ids
        targets = {"health": [request_bytes(host, "/v1/health", {})],
                   "jobs": [request_bytes(host, f"/v1/jobs/{run_id}", token) for run_id in round_ids]}
        warm_up = [request_bytes(host, f"/v1/jobs/{warm_up_id}", token)]
        port = int(host.rsplit(":", 1)[1])
        rows, results = [], {phase: {name: [] for name in targets} for phase in PHASES}

        def measure(phase: str, round_number: int) -> None:
            for name, requests in targets.items():
                cpu = _cpu_s(server.pid)
                profile = phase == "cold" and name == "jobs" and round_number == 1
                profiler = _profiler(server.pid, args.profile, args.seconds) if profile else None
                # A cold round reads each id at most once, so that every read is a miss.
                result = run_load("127.0.0.1", port, requests, args.concurrency, args.clients, args.seconds,
                                  each_once=phase == "cold" and name == "jobs")
                results[phase][name].append(result)
                if profiler is not None:
                    profiler.wait()
                rows.append(_row(f"{phase} {name} #{round_number}", result, _cpu_s(server.pid) - cpu))
                log(f"{phase} {name} round {round_number}: {result.rate:.0f} requests/s")

        load_before = os.getloadavg()[0]
        # Cold: each round on a freshly started server, which has kept no finished job yet; its
        # warm-up (connections, the instance, the routes' first calls) reads one id kept apart.
        for round_number in range(1, args.rounds + 1):
            if round_number > 1:
                stop_process(server)
                server, host = start_server(env, workdir, port)
            run_load("127.0.0.1", port, warm_up, args.concurrency, args.clients, 2.0)
            measure("cold", round_number)
        # Warm: every id of the org answered once before, so every finished job is kept.
        failed = read_each_once(f"http://{host}", round_ids, token)
        log(f"every id read once: {len(round_ids)} requests, {failed} not 200")
        for round_number in range(1, args.rounds + 1):
            measure("warm", round_number)
        # The client's check: health again with twice the client processes; a client that held the
        # server back would show here as more requests per second.
        cpu = _cpu_s(server.pid)
        check = run_load("127.0.0.1", port, targets["health"], args.concurrency, 2 * args.clients, args.seconds)
        rows.append(_row(f"health, {2 * args.clients} clients", check, _cpu_s(server.pid) - cpu))
        load_after = os.getloadavg()[0]
    finally:
        if server is not None:
            stop_process(server)
        drop_databases(databases)
        shutil.rmtree(workdir, ignore_errors=True)

    print_header("Heimdex job-status load", f"{command}: load average {load_before:.2f} before, {load_after:.2f} after")
    print(f"Dagster storage: PostgreSQL, {total} runs ({len(run_ids)} of the org: {args.real_runs} real ingests, "
          f"the rest seeded); python -m heimdex_api.serve, one worker, production settings.")
    print(f"Load: {args.concurrency} keep-alive connections over {args.clients} client processes, "
          f"{args.seconds:.0f} s a round, jobs over random run ids of the org.")
    print("cold: each round on a freshly started server, which has kept no finished job, each id read at most once "
          "(every read a miss; the round ends early if every id was read);")
    print("warm: after every id was read once (every finished job kept), ids at random.")
    print()
    print(table(["round", "requests/s", "p50 ms", "p99 ms", "errors", "server CPU", "client CPU"], rows))
    print()
    passed = True
    for phase in PHASES:
        health, jobs = (statistics.median(result.rate for result in results[phase][name]) for name in targets)
        errors = sum(result.errors for runs in results[phase].values() for result in runs)
        verdict = jobs / health >= RATIO_TARGET and errors == 0
        passed = passed and verdict
        print(f"{'PASS' if verdict else 'FAIL'}  {phase}: jobs at >= {RATIO_TARGET:.0%} of health's throughput, no "
              f"errors (medians of {args.rounds} rounds: health {health:.0f}/s, jobs {jobs:.0f}/s, "
              f"{jobs / health:.0%}; {errors} errors)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
