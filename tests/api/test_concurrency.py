"""Many clients at once against a real uvicorn process: immediate-mode runs, racing commits."""

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from tests.api.server import api_server
from tests.api.support import bearer, make_token, uri_path


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[str]:
    """The API in immediate mode, Dagster's storage and the catalog on SQLite."""
    derived = tmp_path / "derived"
    with api_server(tmp_path / "home", derived, f"sqlite:///{tmp_path / 'catalog.db'}",
                    job_queue_backend="immediate") as url:
        yield url


def _committed(url: str, headers: dict[str, str], org: str, source: Path) -> tuple[str, Path]:
    init = httpx.post(f"{url}/v1/ingest/init", headers=headers, timeout=60,
                      json={"org_id": org, "source_name": "clip.mp4", "content_length": source.stat().st_size})
    assert init.status_code == 201, init.text
    path = uri_path(init.json()["presigned"]["asset_uri"])
    shutil.copyfile(source, path)
    commit = httpx.post(f"{url}/v1/ingest/commit", headers=headers, timeout=300,
                        json={"org_id": org, "upload_id": init.json()["upload_id"], "source_uri": path.as_uri()})
    assert commit.status_code == 200, commit.text
    return commit.json()["asset_id"], path


def test_concurrent_immediate_runs_neither_deadlock_nor_stall_health(sqlite_server: str, clip: Path) -> None:
    org = f"org-{uuid4().hex[:10]}"
    headers = bearer(make_token(org))
    asset_id, path = _committed(sqlite_server, headers, org, clip)
    body = {"org_id": org, "source_uri": path.as_uri()}

    def job(i: int) -> tuple[int, str]:
        kind = ("sidecar", "thumbnails")[i % 2]
        accepted = httpx.post(f"{sqlite_server}/v1/assets/{asset_id}/{kind}", headers=headers, json=body, timeout=300)
        assert accepted.status_code == 202, accepted.text
        # Immediate mode: the run is final when the 202 arrives.
        job = httpx.get(f"{sqlite_server}{accepted.json()['location']}", headers=headers, timeout=60)
        return job.status_code, job.json()["status"]

    pool = ThreadPoolExecutor(8)
    try:
        jobs = [pool.submit(job, i) for i in range(8)]
        slowest_health = 0.0
        while not all(j.done() for j in jobs):
            started = time.monotonic()
            # A deadlocked process never answers; a busy one must still answer health at once.
            assert httpx.get(f"{sqlite_server}/v1/health", timeout=20).status_code == 200
            slowest_health = max(slowest_health, time.monotonic() - started)
            time.sleep(0.2)
        assert [j.result() for j in jobs] == [(200, "succeeded")] * 8
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    assert slowest_health < 5, slowest_health
