"""A crowd on the API served as `scripts/run.sh` serves it: keep-alive readers, uploads and health
checks at once.

The benchmark starts its own site in a temporary folder, loopback only, on random ports: a
DAGSTER_HOME with the repository's dagster.yaml (SQLite), the catalog prepared as run.sh
prepares it, `dg dev` (webserver and daemon) and the API in `dagster` mode with production
settings. One video is uploaded and ingested first. Then, for `--seconds`:

- `--readers` keep-alive connections (benchmarks/http_load.py, over `--clients` processes) read
  that video's job and asset (`GET /v1/jobs/{id}`, `GET /v1/assets/{id}`) one request after the other;
- `--uploads` clients at once each upload a distinct clip by init, one `PUT` and commit;
- `/v1/health` is sampled every 0.25 s on a fresh connection from a process of its own, so that
  no thread of this one (the uploads) delays the sample's own reading.

After the load it waits (at most `--ready-timeout` s) until every committed upload is ready.

    uv run python -m benchmarks.crowd [--server entry|uvicorn] [--repo PATH] [--readers 300] [--uploads 20] [--seconds 30]

`--server entry` serves the API as run.sh does now (`python -m heimdex_api.serve`, its workers
`HEIMDEX_API_WORKERS`); `--server uvicorn` as it did before (`uvicorn heimdex_api.main:app`, one
process), with `--repo` a checkout of that code (e.g. `git archive main | tar -x -C DIR`).
The goal: health p99 <= 100 ms, readers' p99 <= 1 s, no drop, no 5xx, every upload ready.
"""

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import platform
import secrets
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from benchmarks.http_load import LoadResult, request_bytes, run_load
from heimdex_api.core.config import ApiSettings
from heimdex_api.core.security import READ, WRITE, mint_token
from tests.media.synthetic import make_clip
from tests.dagster_home import REPO_ROOT, free_port, wait_until_serving

ORG = "org-crowd"
HEALTH_EVERY_S = 0.25
HEALTH_TIMEOUT_S = 10.0
GOAL = {"health_p99_s": 0.100, "readers_p99_s": 1.0}


def log(message: str) -> None:
    print(f"[crowd {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def request(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None,
            timeout_s: float = 120.0) -> tuple[int, bytes]:
    """One request on a fresh connection: its status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


class Site:
    """The run.sh-like site: its folders, environment, processes and the API's port."""

    def __init__(self, workdir: Path, repo: Path, server: str) -> None:
        self.workdir, self.repo, self.server = workdir, repo, server
        self.home, self.derived = workdir / "dagster_home", workdir / "derived"
        self.home.mkdir()
        (self.derived / "uploads").mkdir(parents=True)
        shutil.copy(repo / "dagster.yaml", self.home / "dagster.yaml")
        self.port, self.dagster_port = free_port(), free_port()
        # Nothing of this shell's HEIMDEX_* settings but the worker count.
        inherited = {name: value for name, value in os.environ.items()
                     if not name.startswith("HEIMDEX_") or name == "HEIMDEX_API_WORKERS"}
        self.env = {**inherited, "PYTHONPATH": str(repo), "DAGSTER_HOME": str(self.home),
                    "HEIMDEX_DERIVED_ROOT": str(self.derived), "HEIMDEX_ENV": "production",
                    "HEIMDEX_JWT_SECRET": secrets.token_urlsafe(48), "HEIMDEX_URL_SIGNING_KEY": secrets.token_urlsafe(48),
                    "HEIMDEX_JOB_QUEUE_BACKEND": "dagster",
                    "HEIMDEX_DAGSTER_WEBSERVER_URL": f"http://127.0.0.1:{self.dagster_port}"}
        self.settings = ApiSettings(_env_file=None, jwt_secret=self.env["HEIMDEX_JWT_SECRET"],
                                    url_signing_key=self.env["HEIMDEX_URL_SIGNING_KEY"])
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        subprocess.run([sys.executable, "-m", "heimdex_pipeline.admin.prepare"], env=self.env, cwd=self.repo, check=True,
                       stdout=subprocess.DEVNULL)
        dagster = [str(Path(sys.executable).parent / "dg"), "dev", "-h", "127.0.0.1", "-p", str(self.dagster_port),
                   "-w", "workspace.yaml"]
        self.processes.append(self._start(dagster, "dagster.log"))
        api = ([sys.executable, "-m", "heimdex_api.serve"] if self.server == "entry"
               else [sys.executable, "-m", "uvicorn", "heimdex_api.main:app"])
        self.processes.append(self._start([*api, "--host", "127.0.0.1", "--port", str(self.port)], "api.log"))
        wait_until_serving(f"http://127.0.0.1:{self.dagster_port}/server_info", self.processes[0],
                           self.workdir / "dagster.log", 240)
        wait_until_serving(f"http://127.0.0.1:{self.port}/v1/health", self.processes[1], self.workdir / "api.log", 120)

    def _start(self, command: list[str], log_name: str) -> subprocess.Popen:
        with (self.workdir / log_name).open("wb") as output:
            # A session of its own: stopping it reaches every process it started (code servers, run workers).
            return subprocess.Popen(command, env=self.env, cwd=self.repo, stdout=output, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def stop(self) -> None:
        """SIGINT to each service's process group, as run.sh stops them; SIGKILL to what is left after 15 s."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + 15
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def profile(self, folder: Path, seconds: float) -> list[subprocess.Popen]:
        """py-spy on every process of the API (the workers, or the one) for the load's `seconds`."""
        folder.mkdir(parents=True, exist_ok=True)
        api = psutil.Process(self.processes[1].pid)
        return [subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(process.pid),
                                  "--duration", str(int(seconds) + 2), "--format", "raw", "--nonblocking",
                                  "--output", str(folder / f"api-{process.pid}.txt")], stdout=subprocess.DEVNULL)
                for process in [api, *api.children(recursive=True)] if "python" in process.name()]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(ORG, [READ, WRITE], self.settings, ttl_s=3600)}"}

    def upload(self, clip: Path) -> tuple[list[int], str | None, str | None]:
        """init, PUT, commit of `clip`: every status answered, the asset id and job id; if refused, None and
        the refusal (`<status> <error code>`)."""
        data = clip.read_bytes()
        statuses = []
        body = json.dumps({"org_id": ORG, "source_name": clip.name, "content_length": len(data),
                           "content_type": "video/mp4"}).encode()
        status, answer = request(self.port, "POST", "/v1/ingest/init", {**self.auth, "Content-Type": "application/json"},
                                 body)
        statuses.append(status)
        if status != 201:
            return statuses, None, _refusal(status, answer)
        init = json.loads(answer)
        url = urlsplit(init["presigned"]["upload_url"])
        status, _ = request(self.port, "PUT", f"{url.path}?{url.query}", init["presigned"]["upload_headers"], data)
        statuses.append(status)
        if status != 200:
            return statuses, None, _refusal(status, answer)
        body = json.dumps({"org_id": ORG, "upload_id": init["upload_id"],
                           "source_uri": init["presigned"]["asset_uri"]}).encode()
        status, answer = request(self.port, "POST", "/v1/ingest/commit",
                                 {**self.auth, "Content-Type": "application/json"}, body)
        statuses.append(status)
        if status != 200:
            return statuses, None, _refusal(status, answer)
        committed = json.loads(answer)
        return statuses, committed["asset_id"], committed.get("job_id")

    def asset_status(self, asset_id: str) -> str:
        status, answer = request(self.port, "GET", f"/v1/assets/{asset_id}", self.auth)
        return json.loads(answer)["status"] if status == 200 else f"http {status}"

    def wait_ready(self, asset_ids: list[str], timeout_s: float) -> tuple[int, float]:
        """How many of `asset_ids` are ready within `timeout_s`, and when the last one was."""
        started, waiting = time.monotonic(), set(asset_ids)
        while waiting and time.monotonic() - started < timeout_s:
            waiting = {asset_id for asset_id in waiting if self.asset_status(asset_id) != "ready"}
            if waiting:
                time.sleep(1.0)
        return len(asset_ids) - len(waiting), time.monotonic() - started


def _refusal(status: int, answer: bytes) -> str:
    try:
        return f"{status} {json.loads(answer)['error']}"
    except (ValueError, KeyError, TypeError):
        return str(status)


def upload_one(site: Site, clip: Path, uploads: list[tuple[list[int], str | None, str | None]]) -> None:
    """One upload; a connection the server reset or left unanswered (120 s) counts as status 0."""
    try:
        uploads.append(site.upload(clip))
    except (OSError, http.client.HTTPException) as exc:
        uploads.append(([0], None, type(exc).__name__))


def sample_health(port: int, stop: EventType, answers: "Queue[tuple[list[float], list[str]]]") -> None:
    """`/v1/health` on a fresh connection every HEALTH_EVERY_S until `stop`; then its latencies and failures
    into `answers`. Run in a process of its own."""
    latencies: list[float] = []
    failures: list[str] = []
    while not stop.is_set():
        started = time.perf_counter()
        try:
            status, _ = request(port, "GET", "/v1/health", {}, timeout_s=HEALTH_TIMEOUT_S)
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                failures.append(f"http {status}")
        except (OSError, http.client.HTTPException) as exc:
            failures.append(type(exc).__name__)
        stop.wait(max(0.0, HEALTH_EVERY_S - (time.perf_counter() - started)))
    answers.put((latencies, failures))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def report(args: argparse.Namespace, command: str, load_before: str, load_after: str, readers: LoadResult,
           health: list[float], health_failures: list[str], uploads: list[tuple[list[int], str | None, str | None]],
           ready: int, ready_s: float, workers: str) -> str:
    upload_statuses = [status for statuses, _, _ in uploads for status in statuses]
    committed = sum(asset_id is not None for _, asset_id, _ in uploads)
    fivexx = sum(status >= 500 for status in [*readers.statuses, *upload_statuses])
    reader_p99 = readers.percentile(0.99)
    health_p99 = percentile(health, 0.99)
    reached = (health_p99 <= GOAL["health_p99_s"] and reader_p99 <= GOAL["readers_p99_s"] and not readers.dropped
               and not health_failures and not fivexx and ready == committed == len(uploads))
    ms = lambda seconds: f"{seconds * 1000:.0f} ms"  # noqa: E731
    lines = [
        f"    {command}",
        "",
        f"- server: `{args.server}` ({workers}); {args.readers} keep-alive readers over {args.clients} client "
        f"processes, {args.uploads} uploads, {args.seconds:g} s; {platform.python_version()}, {os.cpu_count()} cores",
        f"- load before: `{load_before}`",
        f"- load after:  `{load_after}`",
        "",
        "| measure | figure |",
        "| --- | --- |",
        f"| /v1/health on fresh connections: samples, p50, p99, max | {len(health)}, {ms(percentile(health, 0.5))}, "
        f"{ms(health_p99)}, {ms(max(health, default=float('nan')))} |",
        f"| /v1/health unanswered within {HEALTH_TIMEOUT_S:g} s or refused | {len(health_failures)} |",
        f"| readers: answers, per second | {readers.requests}, {readers.rate:.0f} |",
        f"| readers: p50, p99, max | {ms(readers.percentile(0.5))}, {ms(reader_p99)}, "
        f"{ms(max(readers.latencies_s, default=float('nan')))} |",
        f"| readers: over 1 s | {sum(latency > 1.0 for latency in readers.latencies_s)} |",
        f"| readers: dropped connections (reset, closed, or no answer in 30 s) | {readers.dropped} |",
        f"| non-200 answers to readers; 5xx to anyone | {readers.errors}; {fivexx} |",
        f"| uploads committed | {committed} of {len(uploads)} |",
        f"| uploads refused: why | {', '.join(sorted(str(why) for _, asset, why in uploads if not asset)) or '-'} |",
        f"| committed uploads ready | {ready} of {committed}, {ready_s:.0f} s after the load |",
        f"| goal reached | {'yes' if reached else 'no'} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("entry", "uvicorn"), default="entry",
                        help="entry: python -m heimdex_api.serve; uvicorn: uvicorn heimdex_api.main:app")
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help="the checkout whose API is served")
    parser.add_argument("--readers", type=int, default=300)
    parser.add_argument("--clients", type=int, default=2, help="client processes the readers are spread over")
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the site's folder (its logs) at the end")
    parser.add_argument("--profile", type=Path, help="a folder for py-spy's collapsed stacks of each API process")
    args = parser.parse_args(argv)
    command = "uv run python -m benchmarks.crowd " + " ".join(argv if argv is not None else sys.argv[1:])
    workdir = Path(tempfile.mkdtemp(prefix="heimdex-crowd-"))
    site = Site(workdir, args.repo.resolve(), args.server)
    try:
        clips = []
        for index in range(args.uploads + 1):  # distinct content: each is a new video
            clips.append(workdir / f"crowd-{index}.mp4")
            make_clip(clips[-1], [1.0 + index / 10, 1.0], size="160x120")
        log(f"site in {workdir}; starting")
        site.start()
        statuses, asset_id, job_id = site.upload(clips[0])
        assert asset_id and job_id, f"the first upload was refused: {statuses}"
        ready, seconds = site.wait_ready([asset_id], args.ready_timeout)
        assert ready == 1, f"the first video was not ready in {seconds:.0f} s"
        log(f"first video ready in {seconds:.0f} s")
        host = f"127.0.0.1:{site.port}"
        reads = [request_bytes(host, f"/v1/jobs/{job_id}", site.auth),
                 request_bytes(host, f"/v1/assets/{asset_id}", site.auth)]
        spawn = multiprocessing.get_context("spawn")
        stop, answers = spawn.Event(), spawn.Queue()
        uploads: list[Any] = []
        sampler = spawn.Process(target=sample_health, args=(site.port, stop, answers))
        uploaders = [threading.Thread(target=upload_one, args=(site, clip, uploads)) for clip in clips[1:]]
        profilers = site.profile(args.profile, args.seconds) if args.profile else []
        load_before = uptime()
        sampler.start()
        # The uploads start with the readers' first requests (run_load starts them 2 s from now).
        threading.Timer(2.0, lambda: [thread.start() for thread in uploaders]).start()
        readers = run_load("127.0.0.1", site.port, reads, args.readers, args.clients, args.seconds)
        stop.set()
        health, health_failures = answers.get()
        sampler.join()
        load_after = uptime()
        for profiler in profilers:
            profiler.wait()
        for thread in uploaders:
            thread.join()
        log("load done; waiting for the uploads to be ready")
        ready, ready_s = site.wait_ready([asset for _, asset, _ in uploads if asset], args.ready_timeout)
        workers = (f"HEIMDEX_API_WORKERS={site.settings.api_workers}" if args.server == "entry" else "one process")
        print(report(args, command, load_before, load_after, readers, health, health_failures, uploads, ready,
                     ready_s, workers))
        return 0
    finally:
        site.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
