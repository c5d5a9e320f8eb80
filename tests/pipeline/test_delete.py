"""Deleting a video (`heimdex_pipeline.admin.delete`): everything of it goes, a run in flight stops it, an
interrupted deletion is finished by the next, and the operators' command does the same."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRun, DagsterRunStatus, materialize
from sqlalchemy import select

from heimdex_pipeline.admin.delete import VideoBusyError, delete_video, leftovers
from heimdex_pipeline.assets import VIDEO_CHECKS, probe_metadata, scene_sidecar, thumbnails
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import RunProgress, Source, Video
from heimdex_pipeline.runs.tags import PARTITION_TAG
from heimdex_pipeline.storage import LocalStore
from tests.dagster_home import REPO_ROOT

ASSETS = [probe_metadata, scene_sidecar, thumbnails, *VIDEO_CHECKS]


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


@pytest.fixture
def ingested(clips, upload, resources, instance: DagsterInstance, derived_root: Path) -> str:
    """A video ingested whole, beside another org's, whose files must survive."""
    asset_id = upload(clips((1.0, 1.0))[0])
    other = upload(clips((1.5, 1.0))[0], org_id="org-other")
    for partition in (asset_id, other):
        assert materialize(ASSETS, partition_key=partition, instance=instance, resources=resources).success
    return asset_id


def test_a_deleted_video_leaves_nothing_behind(ingested: str, instance: DagsterInstance, derived_root: Path,
                                               catalog_url: str) -> None:
    before = _files(derived_root)
    mine = {name for name in before if ingested in name or name.startswith("uploads/org-demo/")}
    assert len(mine) >= 5  # the source, the probe, the sidecar, two thumbnails

    deletion = delete_video(instance, LocalStore(derived_root), catalog_url, ingested)

    assert deletion.org_id == "org-demo" and deletion.objects == len(mine) and deletion.partition
    assert _files(derived_root) == before - mine
    assert not (derived_root / "org-demo" / "thumbnails" / ingested).exists()
    with session_scope(catalog_url) as session:
        assert session.get(Video, ingested) is None
        assert not session.scalars(select(Source).where(Source.asset_id == ingested)).all()
        assert all(session.get(RunProgress, run_id) is None for run_id in deletion.run_ids)
    assert not instance.has_dynamic_partition("videos", ingested)
    assert deletion.run_ids and all(instance.get_run_by_id(run_id) is None for run_id in deletion.run_ids)
    # The other org's video is whole.
    other = next(partition for partition in instance.get_dynamic_partitions("videos"))
    assert other != ingested and other in " ".join(_files(derived_root))
    for key in ("probe_metadata", "scene_sidecar", "thumbnails"):
        assert instance.get_materialized_partitions(AssetKey(key)) == {other}


def test_a_run_in_flight_refuses_the_deletion(ingested: str, instance: DagsterInstance, derived_root: Path,
                                              catalog_url: str) -> None:
    run = DagsterRun(job_name="ingest_video", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED,
                     tags={PARTITION_TAG: ingested})
    instance.add_run(run)
    before = _files(derived_root)
    with pytest.raises(VideoBusyError) as refused:
        delete_video(instance, LocalStore(derived_root), catalog_url, ingested)
    assert refused.value.run_ids == [run.run_id]
    assert _files(derived_root) == before and instance.has_dynamic_partition("videos", ingested)

    instance.report_run_failed(run)
    assert delete_video(instance, LocalStore(derived_root), catalog_url, ingested).partition


def test_a_deletion_cut_short_after_the_catalog_is_finished_by_the_next(ingested: str, instance: DagsterInstance,
                                                                       derived_root: Path, catalog_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object) -> None:
        raise ConnectionError("the process died here")

    monkeypatch.setattr("heimdex_pipeline.admin.delete.leftovers", crash)
    with pytest.raises(ConnectionError):
        delete_video(instance, LocalStore(derived_root), catalog_url, ingested)
    assert instance.has_dynamic_partition("videos", ingested)
    monkeypatch.setattr("heimdex_pipeline.admin.delete.leftovers", leftovers)

    again = delete_video(instance, LocalStore(derived_root), catalog_url, ingested)
    assert again.org_id is None and again.objects == 0 and again.partition and again.run_ids
    assert not instance.has_dynamic_partition("videos", ingested)


def test_the_operators_command_deletes_a_video(ingested: str, instance: DagsterInstance, derived_root: Path,
                                               catalog_url: str) -> None:
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory, "HEIMDEX_DERIVED_ROOT": str(derived_root),
           "HEIMDEX_DATABASE_URL": catalog_url}

    def command(*asset_ids: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "heimdex_pipeline.admin.delete", *asset_ids], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=120)

    done = command(ingested)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{ingested}: deleted (org-demo): ") and "partition removed" in done.stdout
    assert not instance.has_dynamic_partition("videos", ingested)
    unset = subprocess.run([sys.executable, "-m", "heimdex_pipeline.admin.delete", ingested], cwd=REPO_ROOT,
                           env={**env, "DAGSTER_HOME": ""}, capture_output=True, text=True, timeout=120)
    assert unset.returncode == 2 and "DAGSTER_HOME is not set" in unset.stderr and "Traceback" not in unset.stderr
    again = command(ingested, "v_" + "0" * 32)
    assert again.returncode == 1
    said = [line for line in again.stderr.splitlines() if not line.startswith("{")]  # beside the JSON logs
    assert said == [f"{ingested}: no such video", f"v_{'0' * 32}: no such video"]
