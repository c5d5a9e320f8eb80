"""`HEIMDEX_JOB_QUEUE_BACKEND=dagster`: the API submits runs to a real Dagster webserver, which launches them."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from dagster import DagsterInstance
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from tests.api.support import SECRET, bearer, commit, make_token, place

REPO_ROOT = Path(__file__).resolve().parents[2]
FINAL = {"succeeded", "failed", "canceled"}

# The default run coordinator launches each submitted run at once, so no daemon is needed here;
# production uses the queued coordinator and `dagster-daemon run`.
DAGSTER_YAML = """\
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""

WORKSPACE_YAML = f"""\
load_from:
  - python_module:
      module_name: heimdex_pipeline.definitions
      location_name: heimdex
      working_directory: {REPO_ROOT}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def webserver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A dagster-webserver over a fresh DAGSTER_HOME, loading the pipeline with this test's derived root and catalog."""
    database_url = request.getfixturevalue(f"{request.param}_url")
    home = tmp_path_factory.mktemp("queued_home")
    derived = tmp_path_factory.mktemp("queued_derived")
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    (home / "workspace.yaml").write_text(WORKSPACE_YAML)
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(derived),
           "HEIMDEX_DATABASE_URL": database_url}
    log = (home / "webserver.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
         "-w", str(home / "workspace.yaml")], env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not start: {(home / 'webserver.log').read_text()[-3000:]}")
            time.sleep(0.5)
        instance = DagsterInstance.from_config(str(home))
        yield {"url": f"http://127.0.0.1:{port}", "home": home, "derived": derived, "database_url": database_url,
               "instance": instance}
        instance.dispose()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def queued_client(make_client, webserver: dict[str, Any]) -> TestClient:
    settings = ApiSettings(derived_root=webserver["derived"], database_url=webserver["database_url"], jwt_secret=SECRET,
                           env="development", job_queue_backend="dagster", dagster_webserver_url=webserver["url"],
                           migrate_on_start=False)
    return make_client(settings, webserver["instance"])


def _poll(client: TestClient, headers: dict[str, str], location: str, timeout_s: float = 180) -> list[dict]:
    """Every answer of the job until it is final."""
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = client.get(location, headers=headers)
        assert answer.status_code == 200, answer.text
        seen.append(answer.json())
        if answer.json()["status"] in FINAL:
            return seen
        time.sleep(0.3)
    pytest.fail(f"the job did not finish: {seen[-1]}")


@pytest.mark.slow
def test_seed_guide_flow_queued(queued_client: TestClient, webserver: dict[str, Any], testvideo: Path) -> None:
    client, org = queued_client, f"org-{uuid4().hex[:10]}"
    auth = bearer(make_token(org))
    upload_id, path = place(client, auth, org, testvideo, name="sample.mp4")
    committed = commit(client, auth, org, upload_id, path)
    assert committed.status_code == 200, committed.text
    asset_id, ingest_id = committed.json()["asset_id"], committed.json()["job_id"]
    # dagster: the request returned before the run finished
    assert committed.json()["status"] == "queued" and ingest_id
    ingest = _poll(client, auth, f"/v1/jobs/{ingest_id}")
    assert ingest[-1]["status"] == "succeeded", ingest[-1]
    assert ingest[-1]["type"] == "ingest" and ingest[-1]["asset_id"] == asset_id

    probe = client.post("/v1/ingest/probe", headers=auth, json={"org_id": org, "source_uri": path.as_uri()})
    assert probe.status_code == 200 and probe.json()["asset_id"] == asset_id

    headers = {**auth, "Idempotency-Key": "queued-1"}
    body = {"org_id": org, "source_uri": path.as_uri()}
    accepted = client.post(f"/v1/assets/{asset_id}/sidecar", headers=headers, json=body)
    assert accepted.status_code == 202, accepted.text
    assert client.post(f"/v1/assets/{asset_id}/sidecar", headers=headers, json=body).json() == accepted.json()
    states = _poll(client, auth, accepted.json()["location"])
    assert states[-1]["status"] == "succeeded", states[-1]
    assert {s["status"] for s in states} <= {"queued", "running", "succeeded"}
    assert states[-1]["result"]["sidecar_uri"].endswith(f"/{org}/sidecars/{asset_id}.vna.json")

    asset = client.get(f"/v1/assets/{asset_id}", headers=auth).json()
    assert asset["status"] == "ready" and asset["sidecar"]["storage_key"] == f"sidecars/{asset_id}.vna.json"
    sidecar = client.get(f"/v1/assets/{asset_id}/sidecar", headers=auth)
    assert sidecar.status_code == 200 and sidecar.json()["asset_id"] == asset_id

    # The same content again: no second ingest run.
    runs = len(webserver["instance"].get_run_records())
    again_id, again_path = place(client, auth, org, testvideo, name="again.mp4")
    again = commit(client, auth, org, again_id, again_path).json()
    assert again["asset_id"] == asset_id and again["job_id"] is None and again["status"] == "ready"
    assert len(webserver["instance"].get_run_records()) == runs


@pytest.mark.slow
def test_unreachable_webserver_undoes_the_commit(make_client, webserver: dict[str, Any], clip: Path) -> None:
    settings = ApiSettings(derived_root=webserver["derived"], database_url=webserver["database_url"], jwt_secret=SECRET,
                           env="development", job_queue_backend="dagster",
                           dagster_webserver_url=f"http://127.0.0.1:{_free_port()}", migrate_on_start=False)
    client, org = make_client(settings, webserver["instance"]), f"org-{uuid4().hex[:10]}"
    auth = bearer(make_token(org))
    upload_id, path = place(client, auth, org, clip)
    partitions = set(webserver["instance"].get_dynamic_partitions("videos"))
    failed = commit(client, auth, org, upload_id, path)
    assert failed.status_code == 503 and failed.json()["error"] == "dagster_unavailable"
    assert set(webserver["instance"].get_dynamic_partitions("videos")) == partitions
    # The upload is pending again: a retry against a live webserver commits it.
    retry = make_client(settings.model_copy(update={"dagster_webserver_url": webserver["url"]}), webserver["instance"])
    assert commit(retry, auth, org, upload_id, path).status_code == 200
