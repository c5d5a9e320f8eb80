"""The pipeline on S3 end to end: moto's S3 server over HTTP holds the upload bucket and
everything the assets write, and the sensor watches the bucket's `uploads/`."""

import json
import tempfile
from pathlib import Path

import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context, materialize

from heimdex_pipeline.assets import probe_metadata, scene_sidecar, thumbnails
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Source
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.resources import MediaStorage
from heimdex_pipeline.sensors import upload_sensor
from heimdex_pipeline.storage.layout import SIDECAR_SCHEMA_KEY, probe_key, sidecar_key, thumbnails_prefix
from heimdex_pipeline.storage import s3 as s3_module
from heimdex_pipeline.storage.s3 import S3Store
from tests.catalogue import catalogue_upload
from tests.s3_server import S3Endpoint

ASSETS = [probe_metadata, scene_sidecar, thumbnails]
ORG = "org-demo"
# The catalog's backend does not matter here (the other tests run both); SQLite keeps it fast.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def s3_storage(s3: S3Endpoint) -> MediaStorage:
    """The definitions' storage resource on a fresh bucket of moto's server."""
    return MediaStorage(backend="s3", bucket=s3.new_bucket(), endpoint_url=s3.url)


@pytest.fixture
def s3_resources(s3_storage: MediaStorage, resources: dict) -> dict:
    return {**resources, "storage": s3_storage}


def _scratch_copies() -> set[str]:
    return {path.name for path in Path(tempfile.gettempdir()).glob("heimdex-s3-*")}


def test_ingest_job_reads_and_writes_the_bucket(clips, s3_storage: MediaStorage, s3_resources: dict,
                                                 catalog_url: str, instance: DagsterInstance) -> None:
    store = s3_storage.store
    assert isinstance(store, S3Store)
    path, cuts = clips((2.0, 2.0, 2.5))
    asset_id = catalogue_upload(store, catalog_url, instance, path, ORG)
    before = _scratch_copies()

    assert materialize(ASSETS, partition_key=asset_id, instance=instance, resources=s3_resources).success

    probe = store.read_json(probe_key(ORG, asset_id))
    assert probe["width"] == 320 and abs(probe["duration_s"] - 6.5) < 0.05
    sidecar = store.read_json(sidecar_key(ORG, asset_id))
    assert sidecar["asset_id"] == asset_id and len(sidecar["scenes"]) == len(cuts) + 1
    assert store.stat(SIDECAR_SCHEMA_KEY) is not None
    listed = [item.key for item in store.list(thumbnails_prefix(ORG, asset_id))]
    assert listed and len(listed) == len(sidecar["thumbnails"])
    assert all(store.read_bytes(k).startswith(b"\xff\xd8") for k in listed)  # JPEGs
    # Every scratch copy of the video and staging folder is gone.
    assert _scratch_copies() <= before

    # A second run with fewer thumbnails replaces the set: no stale object is left in the bucket.
    config = {"ops": {"thumbnails": {"config": {"interval_s": 1.0, "max_count": 2, "max_height": 64}}}}
    assert materialize([thumbnails], partition_key=asset_id, instance=instance, resources=s3_resources,
                       run_config=config).success
    sidecar = store.read_json(sidecar_key(ORG, asset_id))
    assert len(sidecar["thumbnails"]) == 2
    assert len(list(store.list(thumbnails_prefix(ORG, asset_id)))) == 2


def test_the_probe_asset_reads_the_object_by_url(clips, s3_storage: MediaStorage, s3_resources: dict,
                                                 catalog_url: str, instance: DagsterInstance,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`probe_metadata` reads the headers by a presigned URL: no scratch copy of the video is made."""
    store = s3_storage.store
    path, _ = clips((2.0, 2.0))
    asset_id = catalogue_upload(store, catalog_url, instance, path, ORG, "probed.mp4")

    def no_copy(kind: str) -> None:
        raise AssertionError(f"a scratch folder ({kind}) was made: the object was copied")
    monkeypatch.setattr(s3_module, "_temporary_dir", no_copy)
    assert materialize([probe_metadata], partition_key=asset_id, instance=instance, resources=s3_resources).success
    assert store.read_json(probe_key(ORG, asset_id)) == probe_video(path)


def _tick(instance: DagsterInstance, resources: dict, cursor: str | None) -> SensorResult | SkipReason:
    context = build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = upload_sensor(context)
    if isinstance(result, SensorResult):
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _requested(result: SensorResult | SkipReason) -> list[str]:
    return [r.partition_key for r in result.run_requests] if isinstance(result, SensorResult) else []


def test_sensor_takes_an_object_of_the_bucket_once(clips, s3: S3Endpoint, s3_storage: MediaStorage,
                                                    s3_resources: dict, catalog_url: str,
                                                    instance: DagsterInstance) -> None:
    store = s3_storage.store
    path, _ = clips((2.0, 2.0))
    assert isinstance(_tick(instance, s3_resources, None), SkipReason)
    # What another client may put in the bucket beside a good video: names no key may have,
    # and an empty object. The store's own client refuses such keys; moto's plain one does not.
    raw = s3.client()
    for odd in (f"uploads/{ORG}/../escape.mp4", f"uploads/{ORG}/a\x01b.mp4", f"uploads/{ORG}//double.mp4"):
        raw.put_object(Bucket=store.bucket, Key=odd, Body=path.read_bytes())
    store.write_bytes(f"uploads/{ORG}/empty.mp4", b"")
    store.write_file(f"uploads/{ORG}/x.mp4", path, "video/mp4")

    first = _tick(instance, s3_resources, None)
    (asset_id,) = _requested(first)  # whole once listed: taken at the first look
    assert first.run_requests[0].run_key == asset_id
    assert instance.has_dynamic_partition("videos", asset_id)
    assert len(first.cursor) < 200 and json.loads(first.cursor) == {"unsettled": []}
    with session_scope(catalog_url) as session:
        assert [source.key for source in session.query(Source).all()] == [f"uploads/{ORG}/x.mp4"]
    assert _requested(_tick(instance, s3_resources, first.cursor)) == []  # never twice
