"""`HEIMDEX_JOB_QUEUE_BACKEND=dagster` on the production shape: the API submits runs to a real Dagster
webserver, the queued run coordinator holds them, and a real `dagster-daemon` launches them and runs
the upload sensor; Dagster's storage and the catalog are on SQLite, then on PostgreSQL."""

import os
import shutil
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from heimdex_pipeline.media.fingerprint import asset_id_for
from tests.api.support import SECRET, bearer, commit, make_token, place
from tests.catalogue import hash_file
from tests.dagster_home import (
    WORKSPACE_YAML,
    free_port,
    instance_yaml,
    prepare,
    start_process,
    stop_process,
    wait_until_serving,
)

FINAL = {"succeeded", "failed", "canceled"}
# One worker takes the module (`--dist loadgroup`), so that each backend's webserver and daemon start once:
# split across workers, each would start its own.
pytestmark = pytest.mark.xdist_group("queued")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def webserver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """dagster-webserver and dagster-daemon over a fresh DAGSTER_HOME, with this test's derived root and catalog."""
    database_url = request.getfixturevalue(f"{request.param}_url")
    storage_url = request.getfixturevalue("postgres_database")() if request.param == "postgresql" else None
    home = tmp_path_factory.mktemp("queued_home")
    derived = tmp_path_factory.mktemp("queued_derived")
    (home / "dagster.yaml").write_text(instance_yaml({"postgres": {"postgres_url": storage_url}} if storage_url else None))
    (home / "workspace.yaml").write_text(WORKSPACE_YAML)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(derived),
           "HEIMDEX_DATABASE_URL": database_url, "HEIMDEX_SENSOR_INTERVAL_S": "2"}
    prepare(env)
    bin_dir = Path(sys.executable).parent
    webserver = start_process([str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                                 "-w", str(home / "workspace.yaml")], env, home / "webserver.log")
    daemon = start_process([str(bin_dir / "dagster-daemon"), "run", "-w", str(home / "workspace.yaml")], env,
                           home / "daemon.log")
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/server_info", webserver, home / "webserver.log", 120)
        instance = DagsterInstance.from_config(str(home))
        yield {"url": f"http://127.0.0.1:{port}", "home": home, "derived": derived, "database_url": database_url,
               "instance": instance}
        instance.dispose()
    finally:
        stop_process(daemon)
        stop_process(webserver)


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
        time.sleep(0.1)
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
    # The daemon dequeues the run, then it runs: each state seen in order, none skipped.
    order = [state for i, state in enumerate(s["status"] for s in ingest) if i == 0 or state != ingest[i - 1]["status"]]
    assert order == ["queued", "running", "succeeded"], order
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
                           dagster_webserver_url=f"http://127.0.0.1:{free_port()}", migrate_on_start=False,
                           dagster_submit_timeout_s=2)
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


class _Webserver(BaseHTTPRequestHandler):
    """In front of the real webserver, failing as a busy one does, as `script` says for each request in turn:
    `fail` answers 502 without passing it on; `lose` passes it on (the run is made) and closes the
    connection without the answer, as a client's timeout loses it; `pass` passes it on and answers."""

    script: list[str]
    target: str

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        what = self.script.pop(0) if self.script else "pass"
        if what == "fail":
            self.send_error(502)
            return
        forwarded = urllib.request.Request(self.target + self.path, data=body,
                                           headers={"Content-Type": self.headers["Content-Type"]})
        with urllib.request.urlopen(forwarded, timeout=120) as answer:
            data = answer.read()
        if what == "lose":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
@pytest.mark.parametrize("script", [["fail", "fail"], ["lose"]])
def test_a_failing_webserver_is_asked_again_and_a_lost_answer_found(make_client, webserver: dict[str, Any],
                                                                     clips, script: list[str]) -> None:
    """A commit does not fail while the webserver fails or answers too late within `dagster_submit_timeout_s`,
    and a run it made without answering is found, not submitted again."""
    handler = type("Script", (_Webserver,), {"script": list(script), "target": webserver["url"]})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        settings = ApiSettings(derived_root=webserver["derived"], database_url=webserver["database_url"],
                               jwt_secret=SECRET, env="development", job_queue_backend="dagster",
                               dagster_webserver_url=f"http://127.0.0.1:{proxy.server_port}", migrate_on_start=False,
                               dagster_submit_timeout_s=60)
        client, org = make_client(settings, webserver["instance"]), f"org-{uuid4().hex[:10]}"
        auth = bearer(make_token(org))
        clip, _ = clips((1.0, 0.5 + len(script) / 10), size="160x120")  # content of its own
        upload_id, path = place(client, auth, org, clip)
        committed = commit(client, auth, org, upload_id, path)
        assert committed.status_code == 200, committed.text
        asset_id = committed.json()["asset_id"]
        runs = webserver["instance"].get_run_records(RunsFilter(tags={"dagster/partition": asset_id}))
        assert [run.dagster_run.run_id for run in runs] == [committed.json()["job_id"]]
        assert handler.script == []
    finally:
        proxy.shutdown()


@pytest.mark.slow
def test_file_dropped_in_the_bucket_is_ingested_by_the_running_sensor(webserver: dict[str, Any], clip: Path) -> None:
    org = f"org-{uuid4().hex[:10]}"
    target = webserver["derived"] / "uploads" / org / "camera" / "dropped.mp4"
    target.parent.mkdir(parents=True)
    shutil.copyfile(clip, target)
    asset_id = asset_id_for(org, hash_file(target, 1_000_000_000))
    instance: DagsterInstance = webserver["instance"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = instance.get_run_records(RunsFilter(tags={"dagster/partition": asset_id}))
        if runs and runs[0].dagster_run.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE):
            break
        time.sleep(1)
    else:
        pytest.fail(f"the sensor did not ingest the file: {(webserver['home'] / 'daemon.log').read_text()[-3000:]}")
    (run,) = runs
    assert run.dagster_run.status == DagsterRunStatus.SUCCESS
    assert run.dagster_run.job_name == "ingest_video" and run.dagster_run.tags["heimdex/origin"] == "sensor"
    assert (webserver["derived"] / org / "sidecars" / f"{asset_id}.vna.json").is_file()
