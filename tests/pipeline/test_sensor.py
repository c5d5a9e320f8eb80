"""The upload sensor: new, growing, duplicate, changed and deleted files, and a bucket of 10,000 files."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, RunsFilter, SensorResult, SkipReason, build_sensor_context, materialize
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from heimdex_pipeline.admin.delete import delete_video
from heimdex_pipeline.assets import probe_metadata
from heimdex_pipeline.catalog.claims import asset_claim
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Source, Upload, Video
from heimdex_pipeline.core.settings import PipelineSettings
from heimdex_pipeline.media.fingerprint import ContentHash, asset_id_for
from heimdex_pipeline.resources import UploadRules
from heimdex_pipeline.sensors import upload_sensor
from heimdex_pipeline.storage import LocalStore


def _rules(resources: dict, settings: PipelineSettings, **changes: float) -> dict:
    """`resources` with the sensor's rules (`UploadRules`) of `settings` changed by `changes` (settings' names)."""
    return {**resources, "uploads": UploadRules.from_settings(settings.model_copy(update=changes))}


@pytest.fixture
def resources(resources: dict, pipeline_settings: PipelineSettings) -> dict:
    """Files settle by the two-looks rule here, however slow the machine: no file is quiet enough."""
    return _rules(resources, pipeline_settings, sensor_settle_s=3600.0)


class Bucket:
    """Ticks of the sensor against one bucket, carrying the cursor from tick to tick like the daemon."""

    def __init__(self, derived_root: Path, instance: DagsterInstance, resources: dict) -> None:
        self.root = derived_root / "uploads"
        self.instance = instance
        self.resources = resources
        self.cursor: str | None = None

    def drop(self, source: Path, relative: str) -> Path:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target

    def tick(self) -> SensorResult | SkipReason:
        context = build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources)
        result = upload_sensor(context)
        if isinstance(result, SensorResult):
            self.cursor = result.cursor
            # Apply the partition requests as the daemon would, so later ticks see them.
            for request in result.dynamic_partitions_requests or []:
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return result

    def settle(self) -> list[str]:
        """Two ticks, one to see the files and one to take them: the partitions the second asks for."""
        self.tick()
        return _requested(self.tick())


def _requested(result: SensorResult | SkipReason) -> list[str]:
    return [r.partition_key for r in result.run_requests] if isinstance(result, SensorResult) else []


def test_new_file_is_taken_once_it_has_settled(clips, derived_root, instance, resources) -> None:
    bucket = Bucket(derived_root, instance, resources)
    assert isinstance(bucket.tick(), SkipReason)
    path, _ = clips((2.0, 2.0))
    bucket.drop(path, "org-demo/camera/a.mp4")
    assert _requested(bucket.tick()) == []  # seen once: maybe still being written
    second = bucket.tick()
    (asset_id,) = _requested(second)
    assert second.run_requests[0].run_key == asset_id
    assert second.dynamic_partitions_requests[0].partition_keys == [asset_id]
    assert instance.has_dynamic_partition("videos", asset_id)
    assert _requested(bucket.tick()) == []  # never twice


def test_a_file_quiet_for_the_settle_time_is_taken_at_first_look(clips, derived_root, instance, resources,
                                                                 pipeline_settings) -> None:
    bucket = Bucket(derived_root, instance, _rules(resources, pipeline_settings, sensor_settle_s=3.0))
    path, _ = clips((2.0, 2.0))
    quiet = bucket.drop(path, "org-demo/quiet.mp4")
    os.utime(quiet, (quiet.stat().st_atime, quiet.stat().st_mtime - 4))
    bucket.drop(path, "org-demo/copy/fresh.mp4")
    (asset_id,) = _requested(bucket.tick())
    assert json.loads(bucket.cursor)["unsettled"], "the file written a moment ago waits for the next look"


def test_growing_file_waits_until_it_stops_growing(clips, derived_root, instance, resources) -> None:
    bucket = Bucket(derived_root, instance, resources)
    path, _ = clips((2.0, 2.0))
    data = path.read_bytes()
    target = derived_root / "uploads" / "org-demo" / "growing.mp4"
    target.parent.mkdir(parents=True)
    for end in (len(data) // 3, 2 * len(data) // 3, len(data)):
        target.write_bytes(data[:end])
        assert _requested(bucket.tick()) == []
    assert len(_requested(bucket.tick())) == 1


def test_same_content_twice_runs_once(clips, derived_root, instance, resources, catalog_url) -> None:
    bucket = Bucket(derived_root, instance, resources)
    path, _ = clips((2.0, 2.0))
    bucket.drop(path, "org-demo/a.mp4")
    (asset_id,) = bucket.settle()
    bucket.drop(path, "org-demo/copy/b.mp4")
    assert bucket.settle() == []
    with session_scope(catalog_url) as session:
        assert {s.asset_id for s in session.query(Source)} == {asset_id}
        assert session.query(Source).count() == 2


def test_content_ingested_by_the_api_is_not_run_again(clips, derived_root, instance, resources, catalog_url) -> None:
    bucket = Bucket(derived_root, instance, resources)
    path, _ = clips((2.0, 2.0))
    # An upload reserved through the API and not committed yet belongs to the API.
    reserved = bucket.drop(path, "org-demo/up_123/movie.mp4")
    with session_scope(catalog_url) as session:
        session.add(Upload(upload_id="up_123", org_id="org-demo", source_name="movie.mp4",
                           content_length=reserved.stat().st_size, prefix="uploads/org-demo/up_123/"))
    assert bucket.settle() == []


def test_hashing_budget_spreads_files_over_ticks(clips, derived_root, instance, resources, pipeline_settings) -> None:
    bucket = Bucket(derived_root, instance, _rules(resources, pipeline_settings, sensor_settle_s=3600.0,
                                                   sensor_hash_budget_s=1e-9))
    bucket.drop(clips((2.0, 2.0))[0], "org-demo/a.mp4")
    bucket.drop(clips((1.0, 3.0))[0], "org-demo/b.mp4")
    first, second = bucket.settle(), _requested(bucket.tick())
    assert len(first) == len(second) == 1 and first != second
    assert _requested(bucket.tick()) == []


def test_identical_new_files_in_one_tick_make_one_run(clips, derived_root, instance, resources) -> None:
    bucket = Bucket(derived_root, instance, resources)
    path, _ = clips((2.0, 2.0))
    bucket.drop(path, "org-demo/a.mp4")
    bucket.drop(path, "org-demo/b.mp4")
    assert len(bucket.settle()) == 1


def test_a_lost_run_request_is_made_again(clips, derived_root, instance, resources, catalog_url) -> None:
    bucket = Bucket(derived_root, instance, resources)
    path, _ = clips((2.0, 2.0))
    bucket.drop(path, "org-demo/a.mp4")
    bucket.tick()
    context = build_sensor_context(instance=instance, cursor=bucket.cursor, resources=resources)
    (asset_id,) = _requested(upload_sensor(context))  # catalogued, but the result never reached Dagster
    assert not instance.has_dynamic_partition("videos", asset_id)
    again = bucket.tick()
    assert _requested(again) == [asset_id] and again.run_requests[0].run_key == asset_id
    assert _requested(bucket.tick()) == []


def test_a_partition_seen_once_is_not_looked_up_again(clips, derived_root, instance, resources, catalog_url,
                                                      monkeypatch) -> None:
    bucket = Bucket(derived_root, instance, resources)
    path, _ = clips((2.0, 2.0))
    bucket.drop(path, "org-demo/a.mp4")
    (asset_id,) = bucket.settle()
    with session_scope(catalog_url) as session:
        assert session.get(Video, asset_id).partition_seen_at is None  # requested; the daemon adds it after the tick
    assert _requested(bucket.tick()) == []
    with session_scope(catalog_url) as session:
        assert session.get(Video, asset_id).partition_seen_at is not None
    # Nothing left unseen: an idle tick reads none of the instance's partitions, however many there are.
    monkeypatch.setattr(instance, "get_dynamic_partitions", lambda name: pytest.fail("the partitions were read"))
    assert _requested(bucket.tick()) == []


def test_changed_content_runs_again(clips, derived_root, instance, resources) -> None:
    bucket = Bucket(derived_root, instance, resources)
    first, _ = clips((2.0, 2.0))
    second, _ = clips((1.0, 3.0))
    target = bucket.drop(first, "org-demo/movie.mp4")
    (first_id,) = bucket.settle()
    shutil.copyfile(second, target)
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 1_000_000))
    (second_id,) = bucket.settle()
    assert second_id != first_id


def test_a_same_size_rewrite_while_hashing_is_not_catalogued(derived_root, instance, resources, catalog_url,
                                                              monkeypatch) -> None:
    """A file rewritten in place with other bytes of the same size between two reads of its hash: the
    hash (the old first MiB, the new rest) names neither content. The sensor must not catalogue it, and
    takes the new content once it has settled. The rewrite happens at a fixed point of the hashing (after
    its first chunk), so the test is deterministic, not a race."""
    bucket = Bucket(derived_root, instance, resources)
    old, new = os.urandom(3 * 1024 * 1024), os.urandom(3 * 1024 * 1024)
    target = derived_root / "uploads" / "org-demo" / "movie.mp4"
    target.parent.mkdir(parents=True)
    target.write_bytes(old)
    read_bytes = LocalStore.iter_bytes
    rewrites = []

    def rewritten_after_the_first_chunk(store, key, *args, **kwargs):
        chunks = read_bytes(store, key, *args, **kwargs)
        yield next(chunks)
        if key.endswith("/movie.mp4") and not rewrites:
            before = target.stat()
            with target.open("r+b") as handle:  # in place: the open reader reads the new bytes from here on
                handle.write(new)
            after = target.stat()
            assert (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or pytest.fail(
                "the rewrite left the mtime as it was: nothing could tell it")
            rewrites.append(key)
        yield from chunks

    monkeypatch.setattr(LocalStore, "iter_bytes", rewritten_after_the_first_chunk)
    assert bucket.settle() == [], "the tick hashed a mix of two contents and asked for its run"
    assert rewrites
    with session_scope(catalog_url) as session:
        assert session.query(Video).count() == session.query(Source).count() == 0
    (asset_id,) = bucket.settle()  # the new content, once it has settled
    assert asset_id == asset_id_for("org-demo", ContentHash(f"sha256:{hashlib.sha256(new).hexdigest()}", "strong",
                                                            len(new)))
    with session_scope(catalog_url) as session:
        assert [video.asset_id for video in session.query(Video)] == [asset_id]


def test_orgs_are_kept_apart(clips, derived_root, instance, resources) -> None:
    bucket = Bucket(derived_root, instance, resources)
    path, _ = clips((2.0, 2.0))
    bucket.drop(path, "org-a/x.mp4")
    bucket.drop(path, "org-b/x.mp4")
    bucket.drop(path, "../outside.mp4")
    bucket.drop(path, "org-a/.hidden.mp4")
    bucket.drop(path, "org-a/partial.mp4.part")
    assert len(set(bucket.settle())) == 2


def test_ten_thousand_files_stay_cheap(clips, derived_root, instance, resources, catalog_url) -> None:
    bucket = Bucket(derived_root, instance, resources)
    org = derived_root / "uploads" / "org-big"
    rows = []
    for i in range(10_000):
        target = org / f"batch{i // 1000}" / f"clip{i:05d}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(i.to_bytes(4, "big"))
        stat = target.stat()
        rows.append(Source(key=target.relative_to(derived_root).as_posix(), org_id="org-big", size_bytes=stat.st_size,
                           version=str(stat.st_mtime_ns), asset_id="v_" + "0" * 32))
    # Ten thousand files the catalog already knows.
    with session_scope(catalog_url) as session:
        session.add(Video(asset_id="v_" + "0" * 32, org_id="org-big", source_key=rows[0].key, source_name="x",
                          size_bytes=4, hash="sha256:0", hash_quality="strong", origin="test"))
        session.flush()
        session.add_all(rows)
    path, _ = clips((2.0, 2.0))
    bucket.drop(path, "org-big/new/new.mp4")
    first = bucket.tick()
    assert len(json.loads(bucket.cursor)["unsettled"]) == 1 and _requested(first) == []
    assert len(_requested(bucket.tick())) == 1
    assert json.loads(bucket.cursor) == {"unsettled": []}


def test_sensor_runs_carry_their_org(clips, derived_root, instance, resources) -> None:
    bucket = Bucket(derived_root, instance, resources)
    bucket.drop(clips((2.0, 2.0))[0], "org-demo/a.mp4")
    bucket.tick()
    (request,) = bucket.tick().run_requests
    assert request.tags == {"heimdex/org_id": "org-demo", "heimdex/job_type": "ingest", "heimdex/origin": "sensor"}


# A commit that dies (os._exit, as a killed process would) after writing the catalog, before launching its run.
_CRASHING_COMMIT = """
import os, sys
from pathlib import Path
from dagster import DagsterInstance
from heimdex_api.core.config import ApiSettings
from heimdex_api.schemas import CommitRequest
from heimdex_api.services.uploads import commit_upload
from heimdex_pipeline.storage import LocalStore

class DiesBeforeLaunching:
    def launch(self, request):
        os._exit(17)

derived, url, upload_id, path = sys.argv[1:]
# The video's claim, which the dead commit never gives back, lasts 1 s past it.
settings = ApiSettings(derived_root=Path(derived), database_url=url, migrate_on_start=False, env="development",
                       asset_claim_lease_s=1)
commit_upload(settings, LocalStore(Path(derived)), DagsterInstance.ephemeral(), DiesBeforeLaunching(),
              CommitRequest(org_id="org-demo", upload_id=upload_id, source_uri=Path(path).as_uri()))
"""


def _crashed_commit(derived_root: Path, catalog_url: str, clip: Path) -> str:
    """An API upload committed by a process that died before launching the run; answer the upload id."""
    upload_id = "up_" + "1" * 32
    target = derived_root / "uploads" / "org-demo" / upload_id / "movie.mp4"
    target.parent.mkdir(parents=True)
    shutil.copyfile(clip, target)
    with session_scope(catalog_url) as session:
        session.add(Upload(upload_id=upload_id, org_id="org-demo", source_name="movie.mp4",
                           content_length=target.stat().st_size, prefix=f"uploads/org-demo/{upload_id}/"))
    died = subprocess.run([sys.executable, "-c", _CRASHING_COMMIT, str(derived_root), catalog_url, upload_id,
                           str(target)], cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True)
    assert died.returncode == 17, died.stderr
    return upload_id


def test_an_api_commit_that_died_before_its_run_is_run_by_the_sensor(clips, derived_root, instance, resources,
                                                                     catalog_url, pipeline_settings) -> None:
    bucket = Bucket(derived_root, instance, resources)
    upload_id = _crashed_commit(derived_root, catalog_url, clips((2.0, 2.0))[0])
    with session_scope(catalog_url) as session:
        upload = session.get(Upload, upload_id)
        assert upload.status == "committed" and session.get(Video, upload.asset_id).run_launched_at is None
    # Within the grace period the commit may still be launching its run: the sensor leaves it alone.
    assert bucket.settle() == []
    bucket.resources = _rules(resources, pipeline_settings, sensor_settle_s=3600.0, sensor_lost_run_grace_s=0)
    time.sleep(1)  # the dead commit's claim on the video ends with its lease
    result = bucket.tick()
    (request,) = result.run_requests
    assert (request.partition_key, request.run_key) == (upload.asset_id, upload.asset_id)
    assert request.tags["heimdex/org_id"] == "org-demo" and request.tags["heimdex/job_type"] == "ingest"
    assert instance.has_dynamic_partition("videos", upload.asset_id)


def test_a_launched_api_run_is_not_requested_again(clips, derived_root, instance, resources, catalog_url,
                                                   pipeline_settings) -> None:
    bucket = Bucket(derived_root, instance, _rules(resources, pipeline_settings, sensor_settle_s=3600.0,
                                                   sensor_lost_run_grace_s=0))
    upload_id = _crashed_commit(derived_root, catalog_url, clips((2.0, 2.0))[0])
    with session_scope(catalog_url) as session:
        asset_id = session.get(Upload, upload_id).asset_id
    # The run exists (its launch was recorded too late): the sensor only records it.
    instance.add_dynamic_partitions("videos", [asset_id])
    assert materialize([probe_metadata], partition_key=asset_id, instance=instance, resources=resources).success
    assert _requested(bucket.tick()) == []
    with session_scope(catalog_url) as session:
        assert session.get(Video, asset_id).run_launched_at is not None


def test_a_video_whose_first_copy_is_gone_moves_to_the_new_one(clips, derived_root, instance, resources,
                                                               catalog_url) -> None:
    bucket = Bucket(derived_root, instance, resources)
    path, _ = clips((2.0, 2.0))
    first = bucket.drop(path, "org-demo/a.mp4")
    (asset_id,) = bucket.settle()
    bucket.drop(path, "org-demo/copy/b.mp4")
    assert bucket.settle() == []
    with session_scope(catalog_url) as session:
        assert session.get(Video, asset_id).source_key == "uploads/org-demo/a.mp4"  # still there: kept
    first.unlink()
    bucket.drop(path, "org-demo/later/c.mp4")
    assert bucket.settle() == []  # the same content: no second run
    with session_scope(catalog_url) as session:
        video = session.get(Video, asset_id)
        assert (video.source_key, video.source_name) == ("uploads/org-demo/later/c.mp4", "c.mp4")


def test_a_deleted_video_dropped_again_is_ingested_again(clips, derived_root, instance, resources,
                                                         catalog_url) -> None:
    bucket = Bucket(derived_root, instance, resources)
    path, _ = clips((2.0, 2.0))
    bucket.drop(path, "org-demo/a.mp4")
    (asset_id,) = bucket.settle()
    # The daemon's run of that request, with its run key, as the sensor daemon tags it.
    assert materialize([probe_metadata], partition_key=asset_id, instance=instance, resources=resources,
                       tags={RUN_KEY_TAG: asset_id, SENSOR_NAME_TAG: upload_sensor.name}).success
    assert _requested(bucket.tick()) == []  # the daemon's next tick, which gives back the video's claim
    delete_video(instance, resources["storage"].store, catalog_url, asset_id)
    assert _requested(bucket.tick()) == []  # the file went with the video: nothing to take
    # The daemon drops a request whose run key one of the sensor's runs already has: none is left.
    assert not instance.get_runs(RunsFilter(tags={RUN_KEY_TAG: asset_id}))

    bucket.drop(path, "org-demo/a.mp4")
    assert bucket.settle() == [asset_id]
    assert instance.has_dynamic_partition("videos", asset_id)


def test_a_deletion_and_the_sensor_take_turns_on_a_video(clips, derived_root, instance, resources,
                                                         catalog_url) -> None:
    # The daemon adds the partition and the run a tick asks for after the tick returns: a deletion
    # in between removed the partition, and the run then failed on a deleted video. The tick keeps
    # the video's claim until the next tick, so the deletion waits for it; and a tick leaves alone a
    # video whose claim a deletion holds.
    bucket = Bucket(derived_root, instance, resources)
    path, _ = clips((2.0, 2.0))
    bucket.drop(path, "org-demo/a.mp4")
    (asset_id,) = bucket.settle()
    store = resources["storage"].store
    deletion = threading.Thread(target=delete_video, args=(instance, store, catalog_url, asset_id, 60))
    deletion.start()
    deletion.join(timeout=1.5)
    assert deletion.is_alive()  # waiting for the daemon to have applied the tick
    assert _requested(bucket.tick()) == []
    deletion.join(timeout=60)
    assert not deletion.is_alive() and not instance.has_dynamic_partition("videos", asset_id)

    with asset_claim(catalog_url, asset_id, "delete", wait_s=0, lease_s=60):
        bucket.drop(path, "org-demo/b.mp4")
        assert bucket.settle() == []  # left for a tick after the deletion
        with session_scope(catalog_url) as session:
            assert session.get(Video, asset_id) is None
    assert _requested(bucket.tick()) == [asset_id]
