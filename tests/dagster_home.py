"""The repository's `dagster.yaml`, as tests give it to the Dagster processes they start, and the
helpers that start and stop those processes, and wait for them."""

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

# The repository's code location, loadable from any DAGSTER_HOME (workspace.yaml's paths are relative).
WORKSPACE_YAML = f"""\
load_from:
  - python_module:
      module_name: heimdex_pipeline.definitions
      location_name: heimdex
      working_directory: {REPO_ROOT}
"""


def instance_yaml(storage: dict[str, Any] | None = None) -> str:
    """The embedded default instance config (queued coordinator, pools, monitoring), on `storage` if given."""
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    if storage:
        config["storage"] = storage
    return yaml.safe_dump(config)


def prepare(env: dict[str, str]) -> None:
    """`python -m heimdex_pipeline.admin.prepare` with `env`, as run.sh and docker-compose.yml run it before
    the services start: the catalog's schema and the instance's pools."""
    done = subprocess.run([sys.executable, "-m", "heimdex_pipeline.admin.prepare"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(command: list[str], env: dict[str, str], log_path: Path,
                  new_session: bool = False) -> subprocess.Popen:
    """Start `command` in the repository with its output in `log_path`; `new_session` makes it lead a
    session of its own, so that every process it starts can be found (and stopped) by session id."""
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=new_session)


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_until_serving(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    """Poll `url` until it answers 200; fail with the end of the process's log if it dies or takes too long."""
    def answers() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    wait_for(f"{url} answering", answers, timeout_s, every_s=0.3, alive=lambda: process.poll() is None,
             details=lambda: log_path.read_text(errors="replace")[-3000:])


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float, every_s: float = 0.5,
             alive: Callable[[], bool] = lambda: True, details: Callable[[], str] = lambda: "") -> T:
    """Poll `check` until it answers something truthy; fail with `what` and `details()` (a log, say) after
    `timeout_s`, or as soon as `alive()` says what it waits on is gone."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = check()
        if answer:
            return answer
        if not alive():
            raise AssertionError(f"gone before {what}\n{details()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}\n{details()}")
        time.sleep(every_s)
