"""Fault 8: SIGTERM or Ctrl-C (SIGINT) to `./scripts/run.sh`: every process it started exits within 15 s.

The real script runs on a temporary DAGSTER_HOME, derived root and free ports, in a session of its
own. Once the API and the web UI answer, the signal is sent two ways:

- Ctrl-C: SIGINT to the script's process group, as a terminal sends it to its foreground job,
  while the run of a commit through the script's API (queued mode, started by the script's daemon)
  detects scenes;
- SIGTERM to the script alone, as `kill` or a supervisor sends it, to a script started the way
  another script's `./scripts/run.sh &` starts it (SIGINT ignored), while the run the upload
  sensor asked for detects scenes.

Either way the run must end marked as failed, not stay `STARTED` for ever, and its scene step must not
have succeeded.

Every process of the session must be gone within 15 s: uv, the API and its workers, `dg dev`, its webserver,
daemon, code servers and run workers.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from dagster import DagsterEventType, DagsterRunStatus

from tests.api.support import SECRET, bearer, make_token
from tests.dagster_home import REPO_ROOT, free_port, start_process
from tests.faults.dagster_site import DagsterSite, first_event
from tests.faults.process_tree import kill_session, session

STOP_BUDGET_S = 15
# What `dg dev` and the script start, by a piece of their command lines.
SERVICES = {"api": "heimdex_api.serve", "dg dev": "dg dev",
            "webserver": "dagster_webserver", "daemon": "dagster._daemon run", "code server": "dagster api grpc"}


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _commit_through_the_api(api_url: str, source: Path, org: str) -> tuple[dict, float]:
    """Upload `source` over HTTP and commit it; the commit's answer and how long it took."""
    auth = bearer(make_token(org, ["assets:write"], secret=SECRET))
    with httpx.Client(timeout=60) as http:
        init = http.post(f"{api_url}/v1/ingest/init", headers=auth, json={
            "org_id": org, "source_name": source.name, "content_length": source.stat().st_size})
        assert init.status_code == 201, init.text
        presigned = init.json()["presigned"]
        put = http.put(presigned["upload_url"], content=source.read_bytes(), headers=presigned["upload_headers"])
        assert put.status_code in (200, 201, 204), put.text
        started = time.monotonic()
        committed = http.post(f"{api_url}/v1/ingest/commit", headers=auth, json={
            "org_id": org, "upload_id": init.json()["upload_id"], "source_uri": presigned["asset_uri"]})
        assert committed.status_code == 200, committed.text
        return committed.json(), time.monotonic() - started


@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
def test_run_script_stops_every_process_it_started(how: str, dagster_site: DagsterSite, long_video: Path) -> None:
    api_port, dagster_port = free_port(), free_port()
    env = {**dagster_site.env, "HEIMDEX_API_PORT": str(api_port), "DAGSTER_PORT": str(dagster_port),
           "HEIMDEX_ENV": "development", "HEIMDEX_JWT_SECRET": SECRET}
    # The script writes the instance config itself, as it does on a first run.
    (dagster_site.home / "dagster.yaml").unlink()
    run_sh = str(REPO_ROOT / "scripts" / "run.sh")
    # Ctrl-C: SIGINT handled by default, as in a terminal's foreground job, whatever the test runner was
    # started with (a runner started by a non-interactive `&` ignores it, and bash cannot trap what it was
    # started ignoring). SIGTERM: `trap "" INT` then exec, so the script starts with SIGINT ignored, as
    # after a non-interactive `&`.
    command = (["env", "--default-signal=INT", "bash", run_sh] if how == "Ctrl-C"
               else ["bash", "-c", 'trap "" INT; exec bash "$0"', run_sh])
    script = start_process(command, env, dagster_site.home / "run.log", new_session=True)
    try:
        dagster_site.wait_until(
            lambda: script.poll() is None and _answers(f"http://127.0.0.1:{api_port}/v1/health")
            and _answers(f"http://127.0.0.1:{dagster_port}/server_info"), 240, "answer from both ports")
        assert script.poll() is None, dagster_site.logs()
        if how == "Ctrl-C":
            # The script's API bounds request heads (heimdex_api/serve.py): 8 MB of header answers 431.
            big = httpx.get(f"http://127.0.0.1:{api_port}/v1/health", headers={"X-Pad": "a" * 8_000_000})
            assert big.status_code == 431, big.text[:200]
            # The script's API queues runs for the script's daemon: the commit answers at once.
            answer, took_s = _commit_through_the_api(f"http://127.0.0.1:{api_port}", long_video, "org-signals")
            print(f"\ncommit through run.sh's API answered {answer['status']} in {took_s:.2f} s")
            assert answer["status"] == "queued" and answer["job_id"], answer
            committed = answer["job_id"]
        else:
            dagster_site.drop(long_video, "org-signals", "long.mp4")
            committed = None
        with dagster_site.instance() as instance:
            def scene_step_decoding():
                started = [run for run in instance.get_runs() if run.status == DagsterRunStatus.STARTED
                           and committed in (None, run.run_id)]
                # Once the step reports frames decoded: its libraries are loaded, and it decodes for
                # seconds more on this video.
                return (started and any(entry.message.startswith("scene_sidecar: ") and "frames" in entry.message
                                        for entry in instance.all_logs(started[0].run_id))
                        and first_event(instance, started[0].run_id, DagsterEventType.RUN_START))

            # The signal comes during the scene step's decoding: the run is in flight.
            start = dagster_site.wait_until(scene_step_decoding, 240, "scene step of the script's daemon's run")
        run_id, worker = start.run_id, start.dagster_event.pid
        before = session(script.pid)
        commands = " | ".join(proc.cmdline for proc in before)
        assert all(piece in commands for piece in SERVICES.values()), commands
        assert worker in {proc.pid for proc in before}

        if how == "Ctrl-C":
            os.killpg(script.pid, signal.SIGINT)
        else:
            os.kill(script.pid, signal.SIGTERM)
        sent_at, signalled = time.monotonic(), time.time()
        while session(script.pid) and time.monotonic() - sent_at < STOP_BUDGET_S:
            time.sleep(0.2)
        left = session(script.pid)
        print(f"\nfault 8 figures: {how}: {len(before)} processes gone in {time.monotonic() - sent_at:.1f} s")
        assert not left, "still running after 15 s:\n" + "\n".join(f"{p.pid} {p.cmdline[:150]}" for p in left)
        assert script.wait(timeout=5) in (128 + signal.SIGINT, 128 + signal.SIGTERM)
        with dagster_site.instance() as instance:
            ended = first_event(instance, run_id, DagsterEventType.STEP_SUCCESS, "scene_sidecar")
            began = first_event(instance, run_id, DagsterEventType.STEP_START, "scene_sidecar")
            assert ended is None, (
                f"the scene step ended {ended.timestamp - signalled:+.1f} s after the signal, sent "
                f"{signalled - began.timestamp:.1f} s after it began:\n{dagster_site.logs()}")
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
    finally:
        kill_session(script.pid, grace_s=0)
        try:
            script.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
