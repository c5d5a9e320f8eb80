"""Fault 2: the daemon killed and restarted with runs queued and a file half-copied into the bucket.

Three videos dropped at once make three runs; two run at once at most (dagster.yaml), so the third
waits in the queue. The test holds every slot of the `ffmpeg` pool, so the two running runs wait
at their scene step (a run of these clips lasts seconds) until the daemon has been restarted.
Meanwhile a fourth file is copied slowly into the bucket. Once two runs are
running, one is queued and the sensor has seen the half-copied file, `dagster-daemon` is SIGKILLed:
its code server and the run workers it started live on, as they do when only the daemon dies. The
copy goes on while the daemon is down and after a new daemon has started.

Every run, the queued one included, runs exactly once; the copied file is never taken while it
grows, and is ingested once, whole.
"""

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

from dagster import DagsterEventType, DagsterRunStatus
from dagster._core.scheduler.instigation import TickStatus
from sqlalchemy import select

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Video
from heimdex_pipeline.media.fingerprint import asset_id_for
from tests.catalogue import hash_file
from tests.faults.dagster_site import DagsterSite, hold_pool, release_pool, sensor_state

CHUNK_BYTES = 1024  # 2.4 MB at this pace takes 10 min: the copy outlasts any wait below
CHUNK_EVERY_S = 0.25
DOWN_S = 3.0
FINISHED = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


class SlowCopy:
    """A copy of `source` to `target` written a few KB at a time, as a slow upload would, until `finish()`."""

    def __init__(self, source: Path, target: Path) -> None:
        self.data, self.target = source.read_bytes(), target
        self.written = 0
        self._finish = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _append(self, size: int) -> None:
        with self.target.open("ab") as out:
            out.write(self.data[self.written:self.written + size])
        self.written = min(len(self.data), self.written + size)

    def _run(self) -> None:
        while self.written < len(self.data) and not self._finish.wait(CHUNK_EVERY_S):
            self._append(CHUNK_BYTES)
        self._append(len(self.data))

    def start(self) -> None:
        self.target.touch()
        self._thread.start()

    def finish(self) -> None:
        """Write the rest at once and wait until the file is whole."""
        self._finish.set()
        self._thread.join(timeout=30)
        assert self.target.read_bytes() == self.data


def _org_videos(catalog_url: str, org_id: str) -> list[Video]:
    with session_scope(catalog_url) as session:
        return list(session.scalars(select(Video).where(Video.org_id == org_id)))


def test_daemon_killed_with_runs_queued_and_a_file_half_copied(dagster_site: DagsterSite, start_daemon, clips,
                                                               media_dir: Path) -> None:
    queued_org, copy_org = "org-queued", "org-copying"
    videos = [clips(durations, size="160x120")[0] for durations in ((1.0, 1.0), (1.0, 1.5), (1.5, 1.0))]
    expected = {asset_id_for(queued_org, hash_file(video, 1_000_000_000)) for video in videos}
    source = media_dir / "testvideo.mp4"
    whole_id = asset_id_for(copy_org, hash_file(source, 1_000_000_000))
    copy = SlowCopy(source, dagster_site.bucket_path(copy_org, "camera/slow.mp4"))

    daemon = start_daemon()
    with dagster_site.instance() as instance:
        hold_pool(instance)
        for i, video in enumerate(videos):
            dagster_site.drop(video, queued_org, f"clip-{i}.mp4")
        copy.start()

        def two_running_one_queued():
            statuses = Counter(run.status for run in instance.get_runs())
            state = sensor_state(instance)
            # The clips have their runs, so what the cursor still holds is the growing file.
            cursor = state and state.instigator_data.cursor
            seen_growing = bool(cursor and json.loads(cursor)["unsettled"])
            return statuses == {DagsterRunStatus.STARTED: 2, DagsterRunStatus.QUEUED: 1} and seen_growing

        dagster_site.wait_until(two_running_one_queued, 300, "moment with two runs running and one queued")
        (queued,) = [run.run_id for run in instance.get_runs() if run.status == DagsterRunStatus.QUEUED]
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=10)
        time.sleep(DOWN_S)
        restarted_at = time.time()
        start_daemon()

        def two_ticks_since_restart():
            state = sensor_state(instance)
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=restarted_at)
            return len([tick for tick in ticks if tick.status != TickStatus.STARTED]) >= 2

        dagster_site.wait_until(two_ticks_since_restart, 120, "two sensor ticks of the restarted daemon")
        assert copy.written < len(copy.data), "the copy ended before the restarted daemon looked at it"
        assert _org_videos(dagster_site.catalog_url, copy_org) == [], "a partial file was ingested"
        copy.finish()
        release_pool(instance)
        expected.add(whole_id)

        def all_ingested():
            runs = instance.get_runs()
            return {run.tags["dagster/partition"] for run in runs} == expected and all(
                run.status in FINISHED for run in runs) and runs

        runs = dagster_site.wait_until(all_ingested, 300, "run of each video, finished")
        assert sorted(run.tags["dagster/partition"] for run in runs) == sorted(expected)  # one run each
        assert {run.status for run in runs} == {DagsterRunStatus.SUCCESS}
        for run in runs:
            assert len(instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_START)) == 1, run.run_id
        assert instance.all_logs(queued, of_type=DagsterEventType.RUN_START)[0].timestamp > restarted_at
        assert set(instance.get_dynamic_partitions("videos")) == expected
    (video,) = _org_videos(dagster_site.catalog_url, copy_org)
    assert video.asset_id == whole_id and video.size_bytes == len(copy.data)
