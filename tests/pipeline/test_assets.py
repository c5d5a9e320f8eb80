"""The assets materialised for a partition on a real Dagster instance."""

import json
import os
import stat
import threading
from pathlib import Path

from dagster import AssetKey, DagsterEventType, DagsterInstance, materialize

from heimdex_pipeline.assets import media_qc, probe_metadata, scene_sidecar, storyboard, thumbnails
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.repository import run_progress
from heimdex_pipeline.media import probe as probe_module
from heimdex_pipeline.media.storyboard import parse_vtt

ASSETS = [probe_metadata, scene_sidecar, thumbnails]


def _metadata(instance: DagsterInstance, key: str, partition: str) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(key))
    assert event is not None and event.dagster_event.partition == partition
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_three_assets_for_a_partition(clips, upload, resources, instance: DagsterInstance, derived_root: Path) -> None:
    path, cuts = clips((2.0, 1.5, 3.0))
    asset_id = upload(path, name="holiday movie.mp4")
    result = materialize(ASSETS, partition_key=asset_id, instance=instance, resources=resources)
    assert result.success

    probe_meta = _metadata(instance, "probe_metadata", asset_id)
    assert probe_meta["resolution"] == "320x240" and abs(probe_meta["duration_s"] - 6.5) < 0.05

    sidecar_path = derived_root / "org-demo" / "sidecars" / f"{asset_id}.vna.json"
    sidecar = json.loads(sidecar_path.read_text())
    assert sidecar["schema_version"] == "1.1" and sidecar["asset_id"] == asset_id and sidecar["org_id"] == "org-demo"
    assert [s["start_s"] for s in sidecar["scenes"][1:]] == [round(c, 6) for c in cuts]
    assert sidecar["source"]["filename"] == "holiday movie.mp4" and sidecar["source"]["hash_quality"] == "strong"
    assert sidecar["detector"]["name"] == "HeimdexShotDetector"
    assert [s["transition"]["kind"] for s in sidecar["scenes"][1:]] == ["hard", "hard"]
    assert (derived_root / "schemas" / "sidecar.schema.json").is_file()
    assert _metadata(instance, "scene_sidecar", asset_id)["scene_count"] == 3

    assert len(sidecar["thumbnails"]) == 3
    for entry in sidecar["thumbnails"]:
        assert (derived_root / "org-demo" / entry["storage_key"]).is_file()
        assert entry["storage_key"].startswith(f"thumbnails/{asset_id}/")
    thumbs_meta = _metadata(instance, "thumbnails", asset_id)
    assert thumbs_meta["count"] == 3 and thumbs_meta["preview"].count("data:image/jpeg;base64,") == 3
    # Nothing half-written is left beside the outputs.
    assert not [p for p in derived_root.rglob(".*") if p.name != ".gitkeep"]


def test_storyboard_for_a_partition_and_a_failed_attempt_keeps_the_old_one(
        clips, upload, resources, instance: DagsterInstance, derived_root: Path, catalog_url: str) -> None:
    path, _ = clips((2.0, 1.5, 3.0))
    asset_id = upload(path)
    result = materialize([probe_metadata, storyboard], partition_key=asset_id, instance=instance, resources=resources)
    assert result.success
    folder = derived_root / "org-demo" / "storyboards" / asset_id
    assert sorted(p.name for p in folder.iterdir()) == ["storyboard.jpg", "storyboard.json", "storyboard.vtt"]
    document = json.loads((folder / "storyboard.json").read_text())
    assert (document["sprite_width"], document["sprite_height"], len(document["tiles"])) == (1600, 600, 50)
    assert len(parse_vtt((folder / "storyboard.vtt").read_text())) == 50
    meta = _metadata(instance, "storyboard", asset_id)
    assert meta["tiles"] == 50 and meta["sprite_size"] == "1600x600"
    assert meta["preview"].startswith("![storyboard.jpg](data:image/jpeg;base64,")
    with session_scope(catalog_url) as session:
        last = run_progress(session, result.run_id)
    assert (last.step, last.unit, last.done, last.total) == ("storyboard", "tiles", 50, 50)

    # The source turns unreadable: the step fails for good, the published storyboard is untouched.
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    source = next((derived_root / "uploads" / "org-demo").rglob("*.mp4"))
    source.write_bytes(b"not a video any more" * 100)
    failed = materialize([storyboard], partition_key=asset_id, instance=instance, resources=resources,
                         raise_on_error=False)
    assert not failed.success
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not [p for p in derived_root.rglob(".*") if p.name != ".gitkeep"]


def test_thumbnail_policy_from_run_config(clips, upload, resources, instance: DagsterInstance, derived_root: Path) -> None:
    path, _ = clips((2.0, 1.5, 3.0))
    asset_id = upload(path)
    assert materialize(ASSETS, partition_key=asset_id, instance=instance, resources=resources).success
    config = {"ops": {"thumbnails": {"config": {"interval_s": 1.0, "max_count": 4, "max_height": 64}}}}
    assert materialize([thumbnails], partition_key=asset_id, instance=instance, resources=resources, run_config=config).success
    sidecar = json.loads((derived_root / "org-demo" / "sidecars" / f"{asset_id}.vna.json").read_text())
    assert len(sidecar["thumbnails"]) == 4 and {t["height"] for t in sidecar["thumbnails"]} == {64}
    assert len(list((derived_root / "org-demo" / "thumbnails" / asset_id).iterdir())) == 4
    # Re-detecting the same cuts keeps the thumbnails listed in the sidecar.
    assert materialize([scene_sidecar], partition_key=asset_id, instance=instance, resources=resources).success
    sidecar = json.loads((derived_root / "org-demo" / "sidecars" / f"{asset_id}.vna.json").read_text())
    assert len(sidecar["thumbnails"]) == 4


def _step_events(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> list:
    return list(instance.all_logs(run_id, of_type=kind))


def test_killed_ffprobe_is_retried_then_succeeds(clips, upload, resources, instance: DagsterInstance,
                                                 tmp_path: Path, monkeypatch) -> None:
    path, _ = clips((2.0,))
    asset_id = upload(path)
    # The real ffprobe, but the first call is killed by SIGKILL, as an OOM killer would.
    marker = tmp_path / "killed-once"
    wrapper = tmp_path / "ffprobe"
    wrapper.write_text(f'#!/bin/sh\nif [ ! -e "{marker}" ]; then touch "{marker}"; kill -9 $$; fi\nexec ffprobe "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(probe_module, "FFPROBE", os.fspath(wrapper))
    result = materialize([probe_metadata], partition_key=asset_id, instance=instance, resources=resources)
    assert result.success and marker.exists()
    assert len(_step_events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY)) == 1


def test_briefly_missing_file_is_retried_then_succeeds(clips, upload, resources, instance: DagsterInstance,
                                                       derived_root: Path) -> None:
    path, _ = clips((2.0,))
    asset_id = upload(path)
    source = next((derived_root / "uploads").rglob("*.mp4"))
    hidden = source.with_name(".moving")
    source.rename(hidden)

    def put_back_after_first_failure() -> None:
        for _ in range(400):
            if _retried(instance):
                break
            threading.Event().wait(0.05)
        hidden.rename(source)

    helper = threading.Thread(target=put_back_after_first_failure)
    helper.start()
    result = materialize([probe_metadata], partition_key=asset_id, instance=instance, resources=resources)
    helper.join()
    assert result.success
    assert len(_step_events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY)) >= 1


def _retried(instance: DagsterInstance) -> bool:
    runs = instance.get_runs(limit=1)
    return bool(runs) and bool(_step_events(instance, runs[0].run_id, DagsterEventType.STEP_UP_FOR_RETRY))


def test_corrupt_file_fails_fast_with_its_message(upload, resources, instance: DagsterInstance, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(20_000))
    asset_id = upload(corrupt)
    result = materialize(ASSETS, partition_key=asset_id, instance=instance, resources=resources, raise_on_error=False)
    assert not result.success
    assert not _step_events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    (failure,) = _step_events(instance, result.run_id, DagsterEventType.STEP_FAILURE)
    message = failure.dagster_event.step_failure_data.user_failure_data.description
    assert "ffprobe cannot read corrupt.mp4" in message
    assert "Invalid data found" in message or "moov atom not found" in message


def test_the_steps_say_how_far_they_are_in_the_catalog_and_the_run_logs(clips, upload, resources, catalog_url: str,
                                                                     instance: DagsterInstance) -> None:
    asset_id = upload(clips((2.0, 1.5, 3.0))[0])
    result = materialize(ASSETS, partition_key=asset_id, instance=instance, resources=resources)
    with session_scope(catalog_url) as session:
        last = run_progress(session, result.run_id)
    assert (last.step, last.unit, last.done, last.total) == ("thumbnails", "thumbnails", 3, 3)
    said = [entry.user_message for entry in instance.all_logs(result.run_id) if not entry.is_dagster_event]
    assert "scene_sidecar: 163 of 163 frames (100%)" in said and "thumbnails: 3 of 3 thumbnails (100%)" in said


def test_the_scene_pass_shares_its_frames_and_each_step_stands_without_them(
        clips, upload, resources, instance: DagsterInstance, derived_root: Path) -> None:
    """In an ingest the storyboard and QC steps take the frames the scene pass kept; without them (gone, or a
    step materialised alone) each decodes for itself, to the same document."""
    path, _ = clips((2.0, 1.5, 3.0))
    asset_id = upload(path)
    result = materialize([*ASSETS, storyboard, media_qc], partition_key=asset_id, instance=instance,
                         resources=resources)
    assert result.success
    frames = derived_root / "org-demo" / "sidecars" / f"{asset_id}.frames.npz"
    assert frames.is_file()
    assert _metadata(instance, "scene_sidecar", asset_id)["shared_frames"]["storyboard_tiles"] is True
    assert _metadata(instance, "storyboard", asset_id)["frames_from"] == "scene pass"
    assert _metadata(instance, "media_qc", asset_id)["pictures_from"] == "scene_pass"
    folder = derived_root / "org-demo" / "storyboards" / asset_id
    qc_path = derived_root / "org-demo" / "qc" / f"{asset_id}.qc.json"
    shared_board, shared_qc = json.loads((folder / "storyboard.json").read_text()), json.loads(qc_path.read_text())
    assert shared_qc["schema_version"] == "1.1" and shared_qc["pictures"]["source"] == "scene_pass"

    frames.unlink()
    alone = materialize([storyboard, media_qc], partition_key=asset_id, instance=instance, resources=resources)
    assert alone.success
    assert _metadata(instance, "storyboard", asset_id)["frames_from"] == "own decode"
    assert _metadata(instance, "media_qc", asset_id)["pictures_from"] == "ffmpeg"
    own_qc = json.loads(qc_path.read_text())
    assert json.loads((folder / "storyboard.json").read_text()) == shared_board
    assert own_qc["pictures"]["source"] == "ffmpeg"
    for figure in ("black", "freeze", "silence", "loudness"):
        assert own_qc[figure] == shared_qc[figure], figure
    # The scan is measured on every frame alone, on a sample beside the scene pass (test_qc has its truths).
    assert own_qc["interlacing"]["sampled_windows"] is None and shared_qc["interlacing"]["sampled_windows"] == 1
