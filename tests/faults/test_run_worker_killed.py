"""Fault 1: the run worker SIGKILLed in the middle of the scene step.

A real `dagster-daemon run` on the repository's dagster.yaml ingests a dropped video; while
`scene_sidecar` runs, the run worker (which runs the steps itself) and its children are
SIGKILLed at once (what a lost container or an OOM kill of the whole worker does). The crash must be noticed within run
monitoring's poll interval, the retry run must start at most 60 s later (it needs the `ffmpeg`
pool slot the dead run never released), and it must succeed.
"""

import contextlib
import os
import signal
import time

from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

from heimdex_pipeline.media.fingerprint import asset_id_for
from tests.catalogue import hash_file
from tests.faults.dagster_site import DagsterSite, first_event
from tests.faults.process_tree import descendants, session

# The target: the retry starts at most this long after the crash is noticed.
RETRY_START_BUDGET_S = 60
# A loaded machine may be late by this much on top of the configured intervals.
MARGIN_S = 10
FINISHED = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


def test_killed_run_worker_is_noticed_and_its_retry_starts_within_a_minute(
        dagster_site: DagsterSite, start_daemon, long_video) -> None:
    daemon = start_daemon()
    org_id = "org-faults"
    asset_id = asset_id_for(org_id, hash_file(long_video, 1_000_000_000))
    dagster_site.drop(long_video, org_id, "long.mp4")
    with dagster_site.instance() as instance:
        poll_interval_s = instance.run_monitoring_poll_interval_seconds

        def scene_step_running():
            runs = instance.get_runs(RunsFilter(tags={"dagster/partition": asset_id}))
            started = runs and first_event(instance, runs[0].run_id, DagsterEventType.STEP_START, "scene_sidecar")
            return started and runs[0]

        first = dagster_site.wait_until(scene_step_running, 300, "scene step of the sensor's run")
        worker_pid = first_event(instance, first.run_id, DagsterEventType.RUN_START).dagster_event.pid
        assert worker_pid in {proc.pid for proc in session(daemon.pid)}, "the run worker is not the daemon's"
        children = [proc.pid for proc in descendants(worker_pid)]
        os.kill(worker_pid, signal.SIGKILL)
        for pid in children:
            # A child (an ffprobe, a decoder thread's helper) may have ended on its own since it was listed.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed_at = time.time()

        dagster_site.wait_until(lambda: instance.get_run_by_id(first.run_id).status in FINISHED, poll_interval_s + 60,
                                "end of the killed run")
        assert instance.get_run_by_id(first.run_id).status == DagsterRunStatus.FAILURE
        assert first_event(instance, first.run_id, DagsterEventType.STEP_SUCCESS, "scene_sidecar") is None, \
            "the worker was killed after the scene step, not during it"
        noticed_at = first_event(instance, first.run_id, DagsterEventType.RUN_FAILURE).timestamp

        def retry_started():
            retries = instance.get_runs(RunsFilter(tags={"dagster/parent_run_id": first.run_id}))
            return retries and first_event(instance, retries[0].run_id, DagsterEventType.RUN_START) and retries[0]

        retry = dagster_site.wait_until(retry_started, RETRY_START_BUDGET_S + 60, "start of the retry run")
        retry_started_at = first_event(instance, retry.run_id, DagsterEventType.RUN_START).timestamp
        dagster_site.wait_until(lambda: instance.get_run_by_id(retry.run_id).status in FINISHED, 240,
                                "end of the retry run")
        retry = instance.get_run_by_id(retry.run_id)
        scene_started_at = first_event(instance, retry.run_id, DagsterEventType.STEP_START, "scene_sidecar").timestamp
        succeeded_at = first_event(instance, retry.run_id, DagsterEventType.RUN_SUCCESS).timestamp

        print(f"\nfault 1 figures (s): noticed {noticed_at - killed_at:.1f} after the kill; retry started "
              f"{retry_started_at - noticed_at:.1f} after that, its scene step {scene_started_at - noticed_at:.1f}; "
              f"retry succeeded {succeeded_at - killed_at:.1f} after the kill")
        assert noticed_at - killed_at <= poll_interval_s + MARGIN_S
        assert retry_started_at - noticed_at <= RETRY_START_BUDGET_S
        assert retry.status == DagsterRunStatus.SUCCESS
        # One retry, which redid the scene step and the thumbnails from the failure on.
        assert len(instance.get_runs(RunsFilter(tags={"dagster/partition": asset_id}))) == 2
        assert first_event(instance, retry.run_id, DagsterEventType.STEP_SUCCESS, "thumbnails") is not None
    assert (dagster_site.derived / org_id / "sidecars" / f"{asset_id}.vna.json").is_file()
    assert list((dagster_site.derived / org_id / "thumbnails" / asset_id).glob("*.jpg"))
