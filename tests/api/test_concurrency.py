"""Many clients at once against a real uvicorn process: immediate-mode runs and racing commits."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import func, select

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Source, Upload, Video
from tests.api.live import api_server, commit_placed, placed_upload
from tests.api.support import bearer, make_token


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[str]:
    """The API in immediate mode over a SQLite-backed Dagster instance; the catalog on the test's database."""
    with api_server(tmp_path / "home", tmp_path / "derived", database_url, job_queue_backend="immediate") as url:
        yield url


@pytest.fixture
def sqlite_server(tmp_path: Path, sqlite_url: str) -> Iterator[str]:
    # Requests that wait for a run with their Idempotency-Key answer 409 after `idempotency_wait_s` (120 s):
    # a run on a slow, busy machine must not turn into that here, where what is awaited is the threads.
    with api_server(tmp_path / "home", tmp_path / "derived", sqlite_url, job_queue_backend="immediate",
                    idempotency_wait_s="900") as url:
        yield url


def _committed(url: str, headers: dict[str, str], org: str, source: Path) -> tuple[str, Path]:
    upload_id, path = placed_upload(url, headers, org, source)
    commit = commit_placed(url, headers, org, upload_id, path)
    assert commit.status_code == 200, commit.text
    return commit.json()["asset_id"], path


def _all_at_once(count: int, send) -> list:  # type: ignore[no-untyped-def]
    """`send(i)` from `count` threads released together."""
    barrier = threading.Barrier(count)

    def go(i: int):  # type: ignore[no-untyped-def]
        barrier.wait()
        return send(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(go, range(count)))


def _watch_health(url: str, until) -> float:  # type: ignore[no-untyped-def]
    """Ask for health every 0.2 s until `until()`; answer the slowest answer's seconds.

    A deadlocked process never answers (the 20 s timeout fails the test); a busy one must still answer.
    """
    slowest = 0.0
    while not until():
        started = time.monotonic()
        assert httpx.get(f"{url}/v1/health", timeout=20).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.2)
    return slowest


def test_concurrent_immediate_runs_neither_deadlock_nor_stall_health(sqlite_server: str, clip: Path) -> None:
    org = f"org-{uuid4().hex[:10]}"
    headers = bearer(make_token(org))
    asset_id, path = _committed(sqlite_server, headers, org, clip)
    body = {"org_id": org, "source_uri": path.as_uri()}

    def job(i: int) -> tuple[int, str]:
        kind = ("sidecar", "thumbnails")[i % 2]
        accepted = httpx.post(f"{sqlite_server}/v1/assets/{asset_id}/{kind}", headers=headers, json=body, timeout=180)
        assert accepted.status_code == 202, accepted.text
        # Immediate mode: the run is final when the 202 arrives.
        job = httpx.get(f"{sqlite_server}{accepted.json()['location']}", headers=headers, timeout=60)
        return job.status_code, job.json()["status"]

    pool = ThreadPoolExecutor(8)
    try:
        jobs = [pool.submit(job, i) for i in range(8)]
        slowest_health = _watch_health(sqlite_server, lambda: all(j.done() for j in jobs))
        assert [j.result() for j in jobs] == [(200, "succeeded")] * 8
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    assert slowest_health < 5, slowest_health


def test_job_requests_waiting_for_a_run_leave_threads_to_other_requests(sqlite_server: str, clip: Path,
                                                                        testvideo: Path) -> None:
    # More requests wait for one run than anyio's default pool has threads (40); reads must still answer.
    org = f"org-{uuid4().hex[:10]}"
    headers = bearer(make_token(org))
    _, small = _committed(sqlite_server, headers, org, clip)
    asset_id, path = _committed(sqlite_server, headers, org, testvideo)
    body = {"org_id": org, "source_uri": path.as_uri()}

    def job(_: int) -> httpx.Response:
        return httpx.post(f"{sqlite_server}/v1/assets/{asset_id}/sidecar", json=body, timeout=300,
                          headers={**headers, "Idempotency-Key": "one-long-run"})

    pool = ThreadPoolExecutor(48)
    try:
        started_all = time.monotonic()
        jobs = [pool.submit(job, i) for i in range(48)]
        time.sleep(0.5)  # let them arrive and wait
        reads = []
        while not all(j.done() for j in jobs):
            started = time.monotonic()
            probe = httpx.post(f"{sqlite_server}/v1/ingest/probe", headers=headers, timeout=60,
                               json={"org_id": org, "source_uri": small.as_uri()})
            assert probe.status_code == 200, probe.text
            assert httpx.get(f"{sqlite_server}/v1/health", timeout=60).status_code == 200
            reads.append(time.monotonic() - started)
            time.sleep(0.2)
        answers = [j.result() for j in jobs]
        run_s = time.monotonic() - started_all
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    assert {a.status_code for a in answers} == {202} and len({a.json()["job_id"] for a in answers}) == 1
    # Without threads of their own, the waiting requests hold every thread: the first read lasts
    # until the run ends. How many reads fit in the run depends on the machine's speed, not on this.
    assert reads and max(reads) < run_s / 2, (reads, run_s)


def test_racing_commits_of_one_upload_make_one_winner_and_one_run(server: str, database_url: str, clip: Path) -> None:
    org = f"org-{uuid4().hex[:10]}"
    headers = bearer(make_token(org))
    upload_id, path = placed_upload(server, headers, org, clip)
    answers = _all_at_once(10, lambda _: commit_placed(server, headers, org, upload_id, path))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * 9, [a.text for a in answers]
    assert all(a.json()["error"] == "upload_already_committed" for a in answers if a.status_code == 409)
    (winner,) = [a.json() for a in answers if a.status_code == 200]
    assert winner["job_id"] is not None and winner["status"] == "ready"
    job = httpx.get(f"{server}/v1/jobs/{winner['job_id']}", headers=headers, timeout=60).json()
    assert job["status"] == "succeeded" and job["asset_id"] == winner["asset_id"]
    with session_scope(database_url) as session:
        assert session.scalar(select(func.count()).select_from(Video).where(Video.org_id == org)) == 1
        assert session.scalar(select(func.count()).select_from(Source).where(Source.org_id == org)) == 1
        assert session.get(Upload, upload_id).status == "committed"


def test_racing_commits_of_one_content_make_one_run(server: str, database_url: str, clip: Path) -> None:
    org = f"org-{uuid4().hex[:10]}"
    headers = bearer(make_token(org))
    uploads = [placed_upload(server, headers, org, clip) for _ in range(6)]
    answers = _all_at_once(6, lambda i: commit_placed(server, headers, org, *uploads[i]))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert len({a.json()["asset_id"] for a in answers}) == 1
    assert len([a for a in answers if a.json()["job_id"] is not None]) == 1
    with session_scope(database_url) as session:
        assert session.scalar(select(func.count()).select_from(Video).where(Video.org_id == org)) == 1
        assert session.scalar(select(func.count()).select_from(Source).where(Source.org_id == org)) == 6
