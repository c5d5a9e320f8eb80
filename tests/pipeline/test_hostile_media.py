"""Hostile media in the pipeline: each fails its step at once (no retry), says why without a
server path, and leaves no output; a thumbnail policy of a tiny interval costs nothing."""

import os
import stat
import tempfile
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, materialize

from heimdex_pipeline.assets import probe_metadata, scene_sidecar, thumbnails
from heimdex_pipeline.core.settings import PipelineSettings
from heimdex_pipeline.media import probe as probe_module
from heimdex_pipeline.resources import MediaWork
from tests.media.hostile import add_neighbours, crafted, huge_mjpeg

ASSETS = [probe_metadata, scene_sidecar, thumbnails]


@pytest.fixture
def other_org_video(clips, derived_root: Path) -> Path:
    """Another org's video in the bucket."""
    path = derived_root / "uploads" / "org-a" / "manual" / "secret.mp4"
    path.parent.mkdir(parents=True)
    path.write_bytes(clips((1.0, 1.0), size="160x120")[0].read_bytes())
    return path


def _media(resources: dict, settings: PipelineSettings, **changes: float) -> dict:
    """`resources` with the steps' media limits (`MediaWork`) of `settings` changed by `changes`."""
    return {**resources, "media": MediaWork.from_settings(settings.model_copy(update=changes))}


def _failure(instance: DagsterInstance, run_id: str) -> str:
    """The one step failure's description, after checking the step was not retried."""
    assert not list(instance.all_logs(run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY))
    (failure,) = instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
    description = failure.dagster_event.step_failure_data.user_failure_data.description
    assert tempfile.gettempdir() not in description and "file:/" not in description, description
    return description


def _outputs(derived_root: Path) -> list[Path]:
    """The files written for org-demo's videos (probes, sidecars, thumbnails)."""
    return [p for p in (derived_root / "org-demo").rglob("*") if p.is_file()]


@pytest.mark.parametrize("kind", ["hls-named-mp4", "ffconcat-neighbour", "dash"])
def test_a_playlist_naming_another_orgs_file_fails_at_once(upload, resources, instance: DagsterInstance,
                                                           derived_root: Path, other_org_video: Path,
                                                           tmp_path: Path, kind: str) -> None:
    source = tmp_path / "attack" / "clip.mp4"
    source.parent.mkdir()
    source.write_bytes(crafted(kind, other_org_video, tmp_path))
    bucket_folder = derived_root / "uploads" / "org-demo" / "manual"
    bucket_folder.mkdir(parents=True)
    add_neighbours(kind, other_org_video, bucket_folder)
    asset_id = upload(source)
    result = materialize(ASSETS, partition_key=asset_id, instance=instance, resources=resources, raise_on_error=False)
    assert not result.success
    assert "clip.mp4 is not a video container Heimdex reads" in _failure(instance, result.run_id)
    assert _outputs(derived_root) == []


def test_huge_frames_fail_at_once(upload, resources, instance: DagsterInstance, derived_root: Path,
                                  tmp_path: Path) -> None:
    asset_id = upload(huge_mjpeg(tmp_path / "huge.avi", 8000))
    result = materialize(ASSETS, partition_key=asset_id, instance=instance, resources=resources, raise_on_error=False)
    assert not result.success
    assert "huge.avi has 8000x8000 frames, more than the limit" in _failure(instance, result.run_id)
    assert _outputs(derived_root) == []


def test_a_video_longer_than_the_limit_fails_at_once(clips, upload, resources, instance: DagsterInstance,
                                                     derived_root: Path, pipeline_settings) -> None:
    asset_id = upload(clips((2.0,))[0])
    result = materialize(ASSETS, partition_key=asset_id, instance=instance,
                         resources=_media(resources, pipeline_settings, max_duration_s=1.0), raise_on_error=False)
    assert not result.success
    assert "lasts 2 s, more than the limit of 1 s" in _failure(instance, result.run_id)


def test_a_tool_past_its_deadline_is_stopped_and_not_retried(clips, upload, resources, instance: DagsterInstance,
                                                             tmp_path: Path, pipeline_settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    asset_id = upload(clips((2.0,))[0])
    hanging = tmp_path / "ffprobe"
    hanging.write_text("#!/bin/sh\nexec sleep 300\n")
    hanging.chmod(hanging.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(probe_module, "FFPROBE", os.fspath(hanging))
    started = time.monotonic()
    result = materialize([probe_metadata], partition_key=asset_id, instance=instance,
                         resources=_media(resources, pipeline_settings, media_timeout_s=1.0), raise_on_error=False)
    assert not result.success and time.monotonic() - started < 60
    assert "took longer than its limit of 1 s" in _failure(instance, result.run_id)


@pytest.mark.parametrize("interval_s", [1e-7, 5e-324])
def test_a_tiny_thumbnail_interval_costs_no_more_than_max_count(clips, upload, resources, instance: DagsterInstance,
                                                                derived_root: Path, interval_s: float) -> None:
    asset_id = upload(clips((2.0, 1.5, 3.0))[0])
    assert materialize([probe_metadata, scene_sidecar], partition_key=asset_id, instance=instance,
                       resources=resources).success
    config = {"ops": {"thumbnails": {"config": {"interval_s": interval_s, "max_count": 5}}}}
    result = materialize([thumbnails], partition_key=asset_id, instance=instance, resources=resources,
                         run_config=config)
    assert result.success
    assert not list(instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY))
    assert len(list((derived_root / "org-demo" / "thumbnails" / asset_id).iterdir())) == 5


def test_a_missing_upstream_is_named_without_its_path(clips, upload, resources, instance: DagsterInstance) -> None:
    asset_id = upload(clips((2.0,))[0])
    result = materialize([thumbnails], partition_key=asset_id, instance=instance, resources=resources,
                         raise_on_error=False)
    assert _failure(instance, result.run_id) == f"no scene sidecar ({asset_id}.vna.json): materialise it first"
