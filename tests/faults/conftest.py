"""Fixtures of the fault tests.

Dagster-side faults (test_run_worker_killed, test_daemon_restart, test_duplicate_tick,
test_run_script_signals): `dagster_site`, `start_daemon`, `long_video`.
"""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from dagster import DagsterInstance

from heimdex_pipeline.catalog.db import migrate
from heimdex_pipeline.media.tools import FFMPEG
from tests.dagster_home import WORKSPACE_YAML, instance_yaml, start_process
from tests.faults.process_tree import kill_session

BIN = Path(sys.executable).parent
T = TypeVar("T")


@dataclass
class DagsterSite:
    """A DAGSTER_HOME holding the repository's dagster.yaml (SQLite storage), a derived root with its
    bucket, a migrated SQLite catalog, and the environment the Dagster processes of a test run with."""

    home: Path
    derived: Path
    catalog_url: str
    env: dict[str, str]

    @property
    def workspace(self) -> Path:
        return self.home / "workspace.yaml"

    def instance(self) -> DagsterInstance:
        """The site's instance, as the test's own process opens it (the caller disposes of it)."""
        return DagsterInstance.from_config(str(self.home))

    def drop(self, source: Path, org_id: str, name: str) -> Path:
        """Copy `source` whole into the bucket, as `<uploads>/<org_id>/<name>`."""
        target = self.derived / "uploads" / org_id / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target

    def logs(self) -> str:
        """The end of each process log of the site, for a failure's message."""
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
                         for log in sorted(self.home.glob("*.log")))

    def wait_until(self, condition: Callable[[], T], timeout_s: float, what: str) -> T:
        """Poll `condition` until it answers something true; fail with the logs after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if found := condition():
                return found
            time.sleep(0.1)
        pytest.fail(f"no {what} within {timeout_s:.0f} s\n{self.logs()}")


@pytest.fixture
def dagster_site(tmp_path: Path) -> DagsterSite:
    """A fresh site; the upload sensor ticks every second."""
    home, derived = tmp_path / "dagster_home", tmp_path / "derived"
    home.mkdir()
    (derived / "uploads").mkdir(parents=True)
    (home / "dagster.yaml").write_text(instance_yaml())
    (home / "workspace.yaml").write_text(WORKSPACE_YAML)
    catalog_url = f"sqlite:///{derived / 'heimdex.db'}"
    migrate(catalog_url)
    env = {**os.environ, "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(derived),
           "HEIMDEX_DATABASE_URL": catalog_url, "HEIMDEX_SENSOR_INTERVAL_S": "1"}
    return DagsterSite(home=home, derived=derived, catalog_url=catalog_url, env=env)


@pytest.fixture
def start_daemon(dagster_site: DagsterSite) -> Iterator[Callable[[], subprocess.Popen]]:
    """Start `dagster-daemon run` on the site, each in a session of its own; at the end every process
    of those sessions (code servers, run workers, step processes, orphans too) is stopped."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        log = dagster_site.home / f"daemon-{len(started)}.log"
        daemon = start_process([str(BIN / "dagster-daemon"), "run", "-w", str(dagster_site.workspace)],
                               dagster_site.env, log, new_session=True)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        kill_session(daemon.pid)
        daemon.wait(timeout=10)


@pytest.fixture(scope="session")
def long_video(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PySceneDetect's test video six times over (2.4 min of 720p, stream-copied at once): scene
    detection takes several seconds on it, long enough to kill a run worker in the middle of it."""
    folder = tmp_path_factory.mktemp("long_video")
    listing = folder / "parts.txt"
    listing.write_text("".join(f"file '{media_dir / 'testvideo.mp4'}'\n" for _ in range(6)))
    out = folder / "testvideo_x6.mp4"
    subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-c", "copy", str(out)], check=True, timeout=60)
    return out
