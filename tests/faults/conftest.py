"""Fixtures of the fault tests.

Dagster-side faults (test_run_worker_killed, test_daemon_restart, test_duplicate_tick,
test_run_script_signals): `dagster_site`, `start_daemon`, `long_video`.
"""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance

from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.media.tools import FFMPEG
from heimdex_pipeline.runs.pools import prepare_pools
from tests.dagster_home import WORKSPACE_YAML, instance_yaml, start_process
from tests.faults.dagster_site import DagsterSite
from tests.faults.process_tree import kill_session

BIN = Path(sys.executable).parent


@pytest.fixture
def dagster_site(tmp_path: Path) -> DagsterSite:
    """A fresh site; the upload sensor ticks every second."""
    home, derived = tmp_path / "dagster_home", tmp_path / "derived"
    home.mkdir()
    (derived / "uploads").mkdir(parents=True)
    (home / "dagster.yaml").write_text(instance_yaml())
    (home / "workspace.yaml").write_text(WORKSPACE_YAML)
    catalog_url = f"sqlite:///{derived / 'heimdex.db'}"
    # Prepared as run.sh prepares it before its services start: the catalog migrated, the instance's
    # storage made and its pools set by this one process. Left to the daemon and the test's own
    # reads, two processes made the SQLite schedule store at once, both stamped its alembic version,
    # and the daemon could not start on the two heads.
    migrate(catalog_url)
    with DagsterInstance.from_config(str(home)) as instance:
        prepare_pools(instance)
    env = {**os.environ, "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(derived),
           "HEIMDEX_DATABASE_URL": catalog_url, "HEIMDEX_SENSOR_INTERVAL_S": "1"}
    return DagsterSite(home=home, derived=derived, catalog_url=catalog_url, env=env)


@pytest.fixture
def start_daemon(dagster_site: DagsterSite) -> Iterator[Callable[[], subprocess.Popen]]:
    """Start `dagster-daemon run` on the site, each in a session of its own; at the end every process
    of those sessions (code servers, run workers, their children, orphans too) is stopped."""
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
    """PySceneDetect's test video twelve times over (4.8 min of 720p, stream-copied at once): scene
    detection takes several seconds on it, long enough to kill a run worker in the middle of it
    however slowly the test notices that it began."""
    folder = tmp_path_factory.mktemp("long_video")
    listing = folder / "parts.txt"
    listing.write_text("".join(f"file '{media_dir / 'testvideo.mp4'}'\n" for _ in range(12)))
    out = folder / "testvideo_x12.mp4"
    subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-c", "copy", str(out)], check=True, timeout=60)
    return out
