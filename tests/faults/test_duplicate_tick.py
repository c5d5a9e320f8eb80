"""Fault 7: two sensor evaluations over the same bucket state (a duplicated tick): no duplicate run.

The daemon's own sensor iteration (`execute_sensor_iteration`, the loop of `dagster-daemon`'s
SensorDaemon) runs against the site's instance, the upload sensor evaluated by a real code server.
A tick evaluates the sensor, then submits its result; two ticks are made to see the same state
(cursor, bucket and instance) as two daemons, or a daemon and its restarted self, would:

- both evaluated before either submits: the first asks for the new file's run; the second sees it
  catalogued without a partition (its "lost run" recovery) and asks for the same run key;
- then once more from the same cursor after both were submitted (a cursor write that was lost).
"""

import logging
import time
from collections.abc import Iterator

import pytest
from dagster import RunsFilter
from dagster._core.scheduler.instigation import InstigatorState
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.sensor import execute_sensor_iteration

from heimdex_pipeline.media.fingerprint import asset_id_for
from tests.catalogue import hash_file
from tests.faults.dagster_site import DagsterSite, sensor_state

LOGGER = logging.getLogger("tests.faults.sensor_daemon")


def _tick(context: WorkspaceProcessContext) -> Iterator[object]:
    """One iteration of the sensor daemon, to be advanced step by step: the first `next()` returns
    once the sensor is evaluated, before anything it asked for is submitted."""
    return execute_sensor_iteration(context, LOGGER, threadpool_executor=None, submit_threadpool_executor=None)


def _next_tick_due(state: InstigatorState) -> None:
    """Wait out the sensor's minimum interval (1 s here) counted from the ticks of `state`."""
    time.sleep(state.instigator_data.min_interval + 0.2)


def test_duplicated_tick_starts_no_second_run(dagster_site: DagsterSite, clips,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The code server that evaluates the sensor reads Heimdex's settings from its environment.
    for name in ("HEIMDEX_DERIVED_ROOT", "HEIMDEX_DATABASE_URL", "HEIMDEX_SENSOR_INTERVAL_S", "DAGSTER_HOME"):
        monkeypatch.setenv(name, dagster_site.env[name])
    clip, _ = clips((1.0, 1.0), size="160x120")
    org_id = "org-ticks"
    asset_id = asset_id_for(org_id, hash_file(clip, 1_000_000_000))
    with dagster_site.instance() as instance, WorkspaceProcessContext(
            instance, WorkspaceFileTarget(paths=[str(dagster_site.workspace)])) as context:
        dagster_site.drop(clip, org_id, "camera/clip.mp4")
        list(_tick(context))  # sees the file once: it may still be growing
        seen = sensor_state(instance)
        assert seen.instigator_data.cursor and not instance.get_runs()

        _next_tick_due(seen)
        first = _tick(context)
        next(first)  # evaluated: the file is settled, catalogued, its run asked for; nothing submitted yet
        instance.update_instigator_state(seen)  # a second tick reads the state the first one started from
        second = _tick(context)
        next(second)
        for tick in (first, second):
            list(tick)  # submit each result, as each daemon would

        ticks = instance.get_ticks(seen.instigator_origin_id, seen.selector_id)
        both = [tick for tick in ticks if asset_id in tick.run_keys]
        assert len(both) == 2, [(t.status, t.run_keys, t.error) for t in ticks]  # both asked for the run
        runs = instance.get_runs(RunsFilter(tags={"dagster/partition": asset_id}))
        assert len(runs) == 1 and runs[0].tags["dagster/run_key"] == asset_id
        assert [tick.run_ids for tick in both if tick.run_ids] == [[runs[0].run_id]]

        # The same cursor once more, after both were submitted: nothing new is asked for.
        instance.update_instigator_state(seen)
        _next_tick_due(seen)
        list(_tick(context))
        assert len(instance.get_runs()) == 1
        assert all(tick.error is None for tick in instance.get_ticks(seen.instigator_origin_id, seen.selector_id))
        assert instance.get_dynamic_partitions("videos") == [asset_id]
