"""The sweep of abandoned uploads, on disk and in moto's S3: partial state past its age goes (multipart
uploads, `.tus/` objects, partial files), younger state and whole files stay, terminations left
undone are finished, and a second sweep removes nothing."""

import os
import time
from pathlib import Path
from uuid import uuid4

import pytest
from dagster import SkipReason, build_sensor_context

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.catalog.models import Upload
from heimdex_pipeline.core.settings import PipelineSettings
from heimdex_pipeline.resources import CatalogResource, MediaStorage, UploadRules
from heimdex_pipeline.sensors import upload_sweep_sensor
from heimdex_pipeline.storage import ObjectStore, open_store
from heimdex_pipeline.storage.local import LocalStore
from heimdex_pipeline.storage.s3 import S3Store
from heimdex_pipeline.uploads.lock import take_lock
from heimdex_pipeline.uploads.sweep import sweep_uploads
from tests.s3_server import S3Endpoint

MIB = 1024 * 1024
LEASE_S = 30.0


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "derived")
    s3: S3Endpoint = request.getfixturevalue("s3")
    return S3Store(s3.new_bucket(), endpoint_url=s3.url)


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'heimdex.db'}"
    migrate(url)
    return url


def _partial(store: ObjectStore, key: str, size: int) -> None:
    """`size` bytes received for `key` (of a longer upload) and kept, as a PATCH leaves them."""
    append = store.receiver(key, size + 1).append(0)
    append.write(os.urandom(size))
    append.save()


def _everything(store: ObjectStore) -> list[str]:
    """Every name the store holds under uploads/, hidden ones included, and its open multipart uploads."""
    if isinstance(store, LocalStore):
        root = store.root / "uploads"
        return sorted(str(p.relative_to(store.root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
    objects = store.client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
    multiparts = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return sorted([o["Key"] for o in objects] + [f"multipart:{u['Key']}" for u in multiparts])


def _age(store: ObjectStore, keys: list[str], seconds: float) -> None:
    """Make the partial files of `keys` `seconds` old (on disk; S3's times are the server's: the test waits)."""
    for key in keys:
        path = store.path(key)
        partial = path.with_name(f".{path.name}.part")
        then = time.time() - seconds
        os.utime(partial, (then, then))


def test_partial_state_past_its_age_is_swept_and_nothing_else(store: ObjectStore, catalog_url: str) -> None:
    org = f"org-{uuid4().hex[:8]}"
    old, orphan, young, whole = (f"uploads/{org}/up_{name}/clip.mp4" for name in ("old", "orphan", "young", "whole"))
    _partial(store, old, 9 * MIB)  # past a part on S3: a multipart upload, a tail and a state
    store.write_bytes(whole, b"a whole file, never swept")
    if isinstance(store, S3Store):
        # A multipart upload no state names: its append's request died before saving.
        store.client.create_multipart_upload(Bucket=store.bucket, Key=store.full_key(orphan))
        # S3 keeps times to the second: the cutoff falls between the old and the young, a second from each.
        time.sleep(1.5)
        cutoff = time.time()
        time.sleep(1.5)
    else:
        _partial(store, orphan, 1000)
        _age(store, [old, orphan], 3600)
        cutoff = time.time() - 1800
    _partial(store, young, 1 * MIB)
    before = _everything(store)

    report = sweep_uploads(catalog_url, store, cutoff, LEASE_S)

    left = _everything(store)
    assert not [name for name in left if "up_old" in name or "up_orphan" in name], left
    assert [name for name in left if "up_young" in name] == [name for name in before if "up_young" in name] != []
    assert store.read_bytes(whole) == b"a whole file, never swept"
    expected = 4 if isinstance(store, S3Store) else 2  # S3: the old one's multipart, tail, state; the orphan
    assert (report.ended, report.removed) == (0, expected)
    # The young upload goes on where it was, and completes.
    assert store.receiver(young, MIB + 1).offset() == MIB
    append = store.receiver(young, MIB + 1).append(MIB)
    append.write(b"!")
    assert append.save() == MIB + 1
    assert store.stat(young).size_bytes == MIB + 1

    completed = _everything(store)
    again = sweep_uploads(catalog_url, store, cutoff, LEASE_S)
    assert (again.ended, again.removed) == (0, 0)
    assert _everything(store) == completed


def test_a_termination_left_undone_is_finished(store: ObjectStore, catalog_url: str) -> None:
    """A DELETE that died after marking its upload `terminating` (or answered busy): the sweep ends it
    at once, whatever the age of its files, unless a termination holds its lock."""
    org = f"org-{uuid4().hex[:8]}"
    rows = {name: Upload(upload_id=f"up_{name}_{uuid4().hex[:8]}", org_id=org, source_name="clip.mp4",
                         content_length=2 * MIB, prefix="", status="terminating") for name in ("dead", "held")}
    for row in rows.values():
        row.prefix = f"uploads/{org}/{row.upload_id}/"
        _partial(store, f"{row.prefix}clip.mp4", MIB)
    with session_scope(catalog_url) as session:
        session.add_all(rows.values())
    assert take_lock(catalog_url, rows["held"].upload_id, "someone", LEASE_S, status="terminating")

    report = sweep_uploads(catalog_url, store, time.time() - 3600, LEASE_S)

    assert report.ended == 1
    left = _everything(store)
    assert not [name for name in left if rows["dead"].upload_id in name], left
    assert [name for name in left if rows["held"].upload_id in name], "a termination at work is left to it"
    with session_scope(catalog_url) as session:
        assert session.get(Upload, rows["dead"].upload_id) is None
        assert session.get(Upload, rows["held"].upload_id).status == "terminating"


def test_the_sensor_sweeps_with_the_configured_age(tmp_path: Path, catalog_url: str) -> None:
    store = open_store("local", root=str(tmp_path / "derived"))
    stale, fresh = "uploads/org-a/up_stale/clip.mp4", "uploads/org-a/up_fresh/clip.mp4"
    _partial(store, stale, 1000)
    _partial(store, fresh, 1000)
    # An age unlike the default's, so that the sensor is seen to take the one it is configured with.
    rules = UploadRules.from_settings(PipelineSettings(upload_url_ttl_s=3600, upload_sweep_age_s=2 * 3600))
    _age(store, [stale], rules.sweep_age_s + 60)
    _age(store, [fresh], rules.sweep_age_s - 60)
    context = build_sensor_context(resources={"catalog": CatalogResource(database_url=catalog_url),
                                              "storage": MediaStorage(backend="local", root=str(store.root)),
                                              "uploads": rules})
    result = upload_sweep_sensor(context)
    assert isinstance(result, SkipReason) and "partial state removed: 1" in result.skip_message
    assert _everything(store) == ["uploads/org-a/up_fresh/.clip.mp4.part"]
