"""Fault 3: PostgreSQL restarted while runs execute and the API takes traffic.

A private PostgreSQL 15 cluster (never the shared server on 5432) holds Dagster's storage and the
catalog; a real uvicorn serves the API over it and executes the ingest runs in its process (the
default `immediate` mode), while threads send requests through a stop, a 4 s outage and a start.
"""

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from heimdex_api.main import create_app
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.runs.tags import PARENT_RUN_TAG, RETRY_NUMBER_TAG
from tests.api.support import SECRET, bearer, make_token, uri_path
from tests.dagster_home import free_port, instance_yaml, start_process, stop_process, wait_until_serving
from tests.faults.support_io import PrivateCluster, private_cluster

# How long the server stays down: longer than one request, shorter than the assets' retry budget.
OUTAGE_S = 4.0
FINAL = {"succeeded", "failed", "canceled"}
# Starting a run in `dagster` mode also asks the webserver, whose own storage may be the one away.
COMMIT_CODES = ("database_unavailable", "dagster_unavailable")


def _check_unavailable(answer: httpx.Response, codes: tuple[str, ...] = ("database_unavailable",)) -> None:
    """A 503 says why in its JSON code, when to retry in Retry-After, and holds no traceback."""
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] in codes, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    assert "Traceback" not in answer.text and "postgresql://" not in answer.text


def test_catalog_down_answers_503_database_unavailable(tmp_path: Path) -> None:
    """Fast, no processes: a catalog URL where no server listens answers 503 on every database route."""
    settings = ApiSettings(derived_root=tmp_path / "derived", database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x",
                           jwt_secret=SECRET, env="development", migrate_on_start=False)
    org = f"org-{uuid4().hex[:10]}"
    auth = bearer(make_token(org))
    with DagsterInstance.ephemeral() as instance, \
            TestClient(create_app(settings, instance=instance), raise_server_exceptions=False) as client:
        assert client.get("/v1/health").status_code == 200
        answers = [
            client.post("/v1/ingest/init", headers=auth, json={"org_id": org, "source_name": "a.mp4",
                                                                "content_length": 10, "content_type": "video/mp4"}),
            client.get(f"/v1/assets/v_{'0' * 32}", headers=auth),
            client.get(f"/v1/assets/v_{'0' * 32}/sidecar", headers=auth),
            client.post("/v1/ingest/commit", headers=auth,
                        json={"org_id": org, "upload_id": f"up_{'0' * 32}", "source_uri": (tmp_path / "a.mp4").as_uri()}),
        ]
    for answer in answers:
        _check_unavailable(answer)
    # No upload folder is left behind by the refused init.
    assert not list((tmp_path / "derived" / "uploads").rglob("up_*"))


@dataclass
class Stack:
    """The private cluster and the API over it."""

    cluster: PrivateCluster
    api: str
    instance: DagsterInstance
    log: Path
    process: subprocess.Popen


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API (a real uvicorn, runs executed in the process: the default `immediate` mode) with
    Dagster's storage and the catalog on a private cluster."""
    with private_cluster(free_port()) as cluster:
        storage_url = cluster.create_database("dagster")
        catalog_url = cluster.create_database("heimdex")
        migrate(catalog_url)
        home = tmp_path_factory.mktemp("pg_fault_home")
        (home / "dagster.yaml").write_text(instance_yaml({"postgres": {"postgres_url": storage_url}}))
        port, log = free_port(), home / "api.log"
        env = {**os.environ, "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(tmp_path_factory.mktemp("derived")),
               "HEIMDEX_DATABASE_URL": catalog_url, "HEIMDEX_JOB_QUEUE_BACKEND": "immediate",
               # The production backoff (2 s, 6 s, 14 s): a step must outlast the outage by retrying.
               "HEIMDEX_RETRY_DELAY_S": "2", "HEIMDEX_RETRY_MAX_RETRIES": "3",
               "HEIMDEX_JWT_SECRET": SECRET, "HEIMDEX_ENV": "development", "HEIMDEX_MIGRATE_ON_START": "false"}
        process = start_process([sys.executable, "-m", "uvicorn", "heimdex_api.main:app", "--host", "127.0.0.1",
                          "--port", str(port)], env, log)
        instance = DagsterInstance.from_config(str(home))
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/v1/health", process, log, 120)
            yield Stack(cluster, f"http://127.0.0.1:{port}", instance, log, process)
        finally:
            instance.dispose()
            stop_process(process)


@dataclass
class Traffic:
    """Every answer the API gave during the test, with when it came."""

    answers: list[tuple[float, str, int, httpx.Response]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, what: str, answer: httpx.Response) -> httpx.Response:
        with self.lock:
            self.answers.append((time.monotonic(), what, answer.status_code, answer))
        return answer

    def once(self, body: Callable[[], None]) -> threading.Thread:
        """Run `body` in a thread; its error is kept for the test, not lost in the thread."""
        def run() -> None:
            try:
                body()
            except BaseException as exc:
                self.errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def loop(self, body: Callable[[], None]) -> threading.Thread:
        """Run `body` in a thread again and again until `stop` is set."""
        def repeat() -> None:
            while not self.stop.is_set():
                body()

        return self.once(repeat)


def _until_not_503(traffic: Traffic, what: str, send: Callable[[], httpx.Response], timeout_s: float = 120) -> httpx.Response:
    """Send until the answer is not a 503, waiting Retry-After between tries, as a client should."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = traffic.record(what, send())
        if answer.status_code != 503 or time.monotonic() > deadline:
            return answer
        _check_unavailable(answer, COMMIT_CODES if what == "commit" else ("database_unavailable",))
        time.sleep(min(float(answer.headers["Retry-After"]), 1.0))


def _upload(client: httpx.Client, traffic: Traffic, auth: dict[str, str], org: str, source: Path) -> dict[str, Any]:
    """Init, place the file, commit: each step retried on 503 until it is answered."""
    init = _until_not_503(traffic, "init", lambda: client.post("/v1/ingest/init", headers=auth, json={
        "org_id": org, "source_name": source.name, "content_length": source.stat().st_size,
        "content_type": "video/mp4"}))
    assert init.status_code == 201, init.text
    target = uri_path(init.json()["presigned"]["asset_uri"])
    shutil.copyfile(source, target)
    body = {"org_id": org, "upload_id": init.json()["upload_id"], "source_uri": target.as_uri()}
    committed = _until_not_503(traffic, "commit", lambda: client.post("/v1/ingest/commit", headers=auth, json=body))
    if committed.status_code == 409 and any(what == "commit" and status == 503 for _, what, status, _ in traffic.answers):
        # A commit cut by the outage after its catalog write: the upload is committed, and its
        # run must come all the same (checked at the end through the asset).
        assert committed.json()["error"] == "upload_already_committed", committed.text
        return {"asset_id": committed.json()["detail"]["asset_id"], "job_id": None, "source_uri": target.as_uri()}
    assert committed.status_code == 200, committed.text
    assert committed.json()["job_id"], committed.json()
    return committed.json()


# The API keeps one connection to each of Dagster's storages open (as Dagster's webserver does):
# the first read on it after the restart meets the dropped connection and answers 503 once; a
# client retries after Retry-After, as for any 503.
def _final_job(client: httpx.Client, traffic: Traffic, auth: dict[str, str], job_id: str,
               timeout_s: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = _until_not_503(traffic, "job", lambda: client.get(f"/v1/jobs/{job_id}", headers=auth))
        assert answer.status_code == 200, answer.text
        if answer.json()["status"] in FINAL:
            return answer.json()
        time.sleep(0.5)
    pytest.fail(f"the job {job_id} did not finish")


def _final_asset(client: httpx.Client, traffic: Traffic, auth: dict[str, str], asset_id: str,
                 timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = _until_not_503(traffic, "asset", lambda: client.get(f"/v1/assets/{asset_id}", headers=auth))
        assert answer.status_code == 200, answer.text
        if answer.json()["status"] in ("ready", "failed"):
            break
        time.sleep(0.5)
    return answer.json()


@pytest.mark.slow
def test_postgres_restart_under_traffic(stack: Stack, clips) -> None:
    org = f"org-{uuid4().hex[:10]}"
    auth = bearer(make_token(org))
    # Distinct content, so that each commit runs its own ingest.
    sources = [clips((1.0, 1.0 + i / 4), size="160x120")[0] for i in range(3)]
    traffic = Traffic()
    committed: list[dict[str, Any]] = []
    runs_before = {record.dagster_run.run_id for record in stack.instance.get_run_records()}
    # A new connection per request: an error is then the server's, never a stale keep-alive's.
    with httpx.Client(base_url=stack.api, timeout=120, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        def upload_all() -> None:
            for source in sources:
                committed.append(_upload(client, traffic, auth, org, source))

        uploader = traffic.once(upload_all)
        # Restart the server while the first ingest run executes (in the API process).
        deadline = time.monotonic() + 120
        while not [r for r in stack.instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
                   if r.dagster_run.run_id not in runs_before]:
            assert time.monotonic() < deadline and uploader.is_alive(), "no run started"
            time.sleep(0.05)
        asset_id = lambda: committed[0]["asset_id"] if committed else f"v_{'0' * 32}"  # noqa: E731
        readers = [
            traffic.loop(lambda: traffic.record("health", client.get("/v1/health"))),
            traffic.loop(lambda: traffic.record("asset", client.get(f"/v1/assets/{asset_id()}", headers=auth))),
            traffic.loop(lambda: traffic.record("init", client.post("/v1/ingest/init", headers=auth, json={
                "org_id": org, "source_name": "probe.mp4", "content_length": 1, "content_type": "video/mp4"}))),
        ]
        time.sleep(0.5)
        down_at = time.monotonic()
        stack.cluster.stop()
        time.sleep(OUTAGE_S)
        stack.cluster.start()
        up_at = time.monotonic()

        uploader.join(240)
        assert not uploader.is_alive(), "the uploads did not get through after the restart"
        time.sleep(1.0)
        traffic.stop.set()
        for thread in readers:
            thread.join(60)
        assert not traffic.errors, "\n".join(map(repr, traffic.errors))
        jobs = {c["job_id"]: _final_job(client, traffic, auth, c["job_id"]) for c in committed if c["job_id"]}
        # A run whose event write was cut by the shutdown fails (dagster-postgres retries
        # connecting, not a statement on a dropped connection); the launcher runs it again, so the
        # job a commit answers is the run that finished.
        assets = {c["asset_id"]: _final_asset(client, traffic, auth, c["asset_id"]) for c in committed}

    # The API never failed: 503 database_unavailable while the server was away, nothing else.
    answers = traffic.answers
    assert {status for *_, status, _ in answers} <= {200, 201, 404, 503}, sorted({(w, s) for _, w, s, _ in answers})
    unavailable = [(at, what) for at, what, status, answer in answers if status == 503]
    for _, what, status, answer in answers:
        if status == 503:
            _check_unavailable(answer, COMMIT_CODES if what == "commit" else ("database_unavailable",))
    assert unavailable, "no request saw the outage"
    assert all(status == 200 for _, what, status, _ in answers if what == "health")
    assert "Traceback" not in stack.log.read_text()
    # It recovered without a restart: the same process answers, with the database behind it.
    assert stack.process.poll() is None
    recovered = [at for at, what, status, _ in answers if at > up_at and what == "init" and status == 201]
    assert recovered, "no write succeeded after the restart"
    print(f"\noutage {OUTAGE_S:.1f} s: first 503 {unavailable[0][0] - down_at:.2f} s after the stop, "
          f"last 503 {max(at for at, _ in unavailable) - up_at:.2f} s and first write {recovered[0] - up_at:.2f} s "
          f"after the start; {len(unavailable)} 503s in {len(answers)} answers")

    # No upload lost: each committed, its run succeeded, its asset ready; no run left behind.
    assert len(committed) == len(sources) and len(assets) == len(sources)
    assert all(job["status"] == "succeeded" for job in jobs.values()), jobs
    assert all(asset["status"] == "ready" for asset in assets.values()), assets
    runs = [r.dagster_run for r in stack.instance.get_run_records() if r.dagster_run.run_id not in runs_before]
    assert {run.status for run in runs} <= {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}, runs
    retries = sum(len(stack.instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY)) for run in runs)
    rerun = [run for run in runs if RETRY_NUMBER_TAG in run.tags]
    assert all(run.tags[PARENT_RUN_TAG] in {r.run_id for r in runs} for run in rerun)
    print(f"{len(runs)} runs, {len(rerun)} run again after losing the database; {retries} step retries")
