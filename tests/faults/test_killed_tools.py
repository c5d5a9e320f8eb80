"""Fault 4: ffmpeg killed inside a step; the asset's retry policy retries it.

A watcher thread finds the real ffmpeg by what it runs (this test's own source file, so no other
test's process is ever hit) and sends it SIGKILL, as the OOM killer would. The decoder runs in
the run worker itself (the in-process executor): its death is fault 1, a killed run worker.
"""

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, materialize

from heimdex_pipeline.assets import probe_metadata, scene_sidecar, thumbnails
from tests.faults.support_io import error_text

ASSETS = [probe_metadata, scene_sidecar, thumbnails]


@pytest.fixture
def backend() -> str:
    """The faults do not depend on the database: SQLite only, to stay within the time budget."""
    return "sqlite"


def _comm(pid: str) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _running(pid: str) -> bool:
    # The state follows the command name, which may hold spaces: read after the last ')'.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def runs_with_argument(name: str, argument: Path) -> Callable[[str], bool]:
    """A process called `name` given `argument` as a path or a `file:` URL (ffmpeg given our source)."""
    wanted = os.fsencode(argument)
    return lambda pid: (_comm(pid) == name
                        and any(arg.endswith(wanted) for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")))


class Killer:
    """Kills, with SIGKILL, the first live process that `match` accepts; once."""

    def __init__(self, match: Callable[[str], bool]) -> None:
        self.match, self.killed, self.done = match, [], threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self.done.is_set():
            for pid in (entry.name for entry in Path("/proc").iterdir() if entry.name.isdigit()):
                try:
                    if int(pid) != os.getpid() and self.match(pid) and _running(pid):
                        os.kill(int(pid), signal.SIGKILL)
                        self.killed.append(int(pid))
                        self.done.set()
                        return
                except OSError:
                    continue  # the process ended while we looked
            time.sleep(0.005)

    def stop(self) -> None:
        self.done.set()
        self._thread.join(5)


def _events(instance: DagsterInstance, run_id: str, kind: DagsterEventType, step: str) -> list:
    return [e for e in instance.all_logs(run_id, of_type=kind) if e.dagster_event.step_key == step]


def test_killed_ffmpeg_in_thumbnails_is_retried(clips, upload, resources, instance: DagsterInstance,
                                                derived_root: Path) -> None:
    # One keyframe for the whole clip: every thumbnail is an exact seek, so each ffmpeg decodes a while.
    path, _ = clips((2.0, 2.0, 2.0), size="640x480", extra_args=("-g", "1000", "-sc_threshold", "0"))
    asset_id = upload(path)
    assert materialize(ASSETS[:2], partition_key=asset_id, instance=instance, resources=resources).success
    source = next((derived_root / "uploads").rglob(path.name))
    killer = Killer(runs_with_argument("ffmpeg", source))
    try:
        result = materialize([thumbnails], partition_key=asset_id, instance=instance, resources=resources)
    finally:
        killer.stop()
    assert killer.killed, "no ffmpeg was killed"
    assert result.success
    (retry,) = _events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY, "thumbnails")
    assert "ffmpeg was killed by signal 9" in error_text(retry.dagster_event.event_specific_data.error)
    # The retry wrote the whole set, and nothing half-written is left beside it.
    assert sorted(p.name for p in (derived_root / "org-demo" / "thumbnails" / asset_id).iterdir()) == [
        "0000.jpg", "0001.jpg", "0002.jpg"]
    assert not [p for p in derived_root.rglob(".*")]
