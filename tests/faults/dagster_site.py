"""A Dagster site for the fault tests: a DAGSTER_HOME with the repository's dagster.yaml, a derived
root with its upload bucket, a SQLite catalog, and what the tests read back from the instance."""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from dagster import DagsterEventType, DagsterInstance
from dagster._core.events.log import EventLogEntry
from dagster._core.scheduler.instigation import InstigatorState, InstigatorType

from heimdex_pipeline.runs.pools import FFMPEG_POOL
from tests.dagster_home import wait_for

T = TypeVar("T")


@dataclass
class DagsterSite:
    """Where the Dagster processes of one fault test work, and the environment they run with."""

    home: Path
    derived: Path
    catalog_url: str
    env: dict[str, str]

    @property
    def workspace(self) -> Path:
        return self.home / "workspace.yaml"

    def instance(self) -> DagsterInstance:
        """The site's instance, as the test's own process opens it (use it in a `with`)."""
        return DagsterInstance.from_config(str(self.home))

    def bucket_path(self, org_id: str, name: str) -> Path:
        """`<uploads>/<org_id>/<name>`, its folders made."""
        target = self.derived / "uploads" / org_id / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def drop(self, source: Path, org_id: str, name: str) -> Path:
        """Copy `source` whole into the bucket, as `<uploads>/<org_id>/<name>`."""
        target = self.bucket_path(org_id, name)
        shutil.copyfile(source, target)
        return target

    def logs(self) -> str:
        """The end of each process log of the site, for a failure's message."""
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
                         for log in sorted(self.home.glob("*.log")))

    def wait_until(self, condition: Callable[[], T], timeout_s: float, what: str) -> T:
        """Poll `condition` until it answers something true; fail with the logs after `timeout_s`."""
        return wait_for(what, condition, timeout_s, every_s=0.1, details=self.logs)


def first_event(instance: DagsterInstance, run_id: str, event_type: DagsterEventType,
                step_key: str | None = None) -> EventLogEntry | None:
    """The first event of `event_type` (of `step_key`, if given) in the run's log."""
    return next((entry for entry in instance.all_logs(run_id, of_type=event_type)
                 if step_key is None or entry.step_key == step_key), None)


def sensor_state(instance: DagsterInstance, name: str = "upload_sensor") -> InstigatorState | None:
    """A sensor's stored state (its cursor and last ticks), once the daemon has seen it."""
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    return next((state for state in states if state.name == name), None)


# What runs wait on while a test holds the pool: a run of the test videos lasts seconds, and a
# fault must hit it while it is in flight.
HOLDER = "test-holding-the-ffmpeg-pool"


def hold_pool(instance: DagsterInstance) -> None:
    """Claim every slot of the `ffmpeg` pool, as steps of another run would; `release_pool` frees them."""
    for slot in range(instance.get_concurrency_config().pool_config.default_pool_limit):
        assert instance.event_log_storage.claim_concurrency_slot(FFMPEG_POOL, HOLDER, f"step-{slot}").is_claimed


def release_pool(instance: DagsterInstance) -> None:
    instance.event_log_storage.free_concurrency_slots_for_run(HOLDER)
