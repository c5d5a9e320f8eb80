"""The video partitions' asset checks on a real Dagster instance: real clips pass them, and each
kind of damage to what the assets wrote fails the check that looks for it, with a clear description."""

import json
from pathlib import Path

from dagster import AssetCheckKey, AssetKey, AssetSelection, DagsterEventType, DagsterInstance, materialize
from dagster._core.event_api import PartitionKeyFilter

from heimdex_pipeline.assets import VIDEO_CHECKS, media_qc, probe_metadata, scene_sidecar, storyboard, thumbnails
from heimdex_pipeline.assets.checks import QC_CHECKS
from heimdex_pipeline.assets.video import READABLE_CHECK
from heimdex_pipeline.resources import QcRules
from heimdex_pipeline.runs.tags import PARTITION_TAG

ASSETS = [probe_metadata, scene_sidecar, thumbnails, storyboard, media_qc]
CHECKS = {
    AssetCheckKey(AssetKey("probe_metadata"), READABLE_CHECK),
    AssetCheckKey(AssetKey("scene_sidecar"), "sidecar_matches_schema"),
    AssetCheckKey(AssetKey("scene_sidecar"), "scenes_cover_the_video"),
    AssetCheckKey(AssetKey("thumbnails"), "thumbnails_are_stored"),
    AssetCheckKey(AssetKey("storyboard"), "storyboard_matches_sprite"),
    AssetCheckKey(AssetKey("media_qc"), "audio_is_heard"),
    AssetCheckKey(AssetKey("media_qc"), "loudness_on_target"),
    AssetCheckKey(AssetKey("media_qc"), "no_long_black_or_freeze"),
}


def _evaluations(instance: DagsterInstance, asset_id: str) -> dict[str, tuple[bool, str]]:
    """The newest evaluation of each check on the partition: check name to (passed, description)."""
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        list(CHECKS), partition_filter=PartitionKeyFilter(key=asset_id))
    found = {}
    for key, record in records.items():
        evaluation = record.event.asset_check_evaluation if record.event else None
        if evaluation is not None:
            assert record.partition == asset_id
            found[key.name] = (evaluation.passed, evaluation.description)
    return found


def _check_only(instance: DagsterInstance, resources: dict, asset_id: str) -> bool:
    """Run only the checks made apart from the assets on the partition, as the web UI's "Execute" of a check does.

    The run is tagged with its partition: Dagster infers a job's partitions from its assets only.
    """
    return materialize([*ASSETS, *VIDEO_CHECKS], selection=AssetSelection.checks(*VIDEO_CHECKS),
                       tags={PARTITION_TAG: asset_id}, instance=instance, resources=resources,
                       raise_on_error=False).success


def _sidecar_path(derived_root: Path, asset_id: str) -> Path:
    return derived_root / "org-demo" / "sidecars" / f"{asset_id}.vna.json"


def test_a_real_clip_passes_every_check_of_its_partition(clips, upload, resources, instance: DagsterInstance) -> None:
    first, second = upload(clips((2.0, 1.5, 3.0))[0]), upload(clips((1.0, 1.0), size="160x120")[0])
    for asset_id in (first, second):
        assert materialize([*ASSETS, *VIDEO_CHECKS], partition_key=asset_id, instance=instance,
                           resources=resources).success
    evaluations = _evaluations(instance, first)
    assert set(evaluations) == {key.name for key in CHECKS}
    # The clips have no audio: the QC says so, and every other check passes.
    assert evaluations.pop("audio_is_heard") == (False, "no audio stream")
    assert all(passed for passed, _ in evaluations.values()), evaluations
    assert evaluations["loudness_on_target"][1] == "no loudness, no target set"
    assert evaluations["scenes_cover_the_video"][1].startswith("3 scenes cover 6.5")
    assert evaluations["thumbnails_are_stored"][1] == "3 thumbnails stored as listed"
    assert evaluations["storyboard_matches_sprite"][1] == "50 cues point into the sprite"
    # Each partition has its own results.
    assert _evaluations(instance, second)["scenes_cover_the_video"][1].startswith("2 scenes cover 2.0")


def test_the_checks_of_an_asset_run_in_one_step_and_each_can_run_alone(clips, upload, resources,
                                                                       instance: DagsterInstance) -> None:
    asset_id = upload(clips((1.0, 1.0))[0])
    result = materialize([*ASSETS, *VIDEO_CHECKS], partition_key=asset_id, instance=instance, resources=resources)
    steps = {event.step_key for event in result.all_events if event.event_type == DagsterEventType.STEP_START}
    # A step per asset, and one per asset's checks: not one per check.
    assert steps == {"probe_metadata", "scene_sidecar", "thumbnails", "storyboard", "media_qc", "scene_sidecar_checks",
                     "thumbnails_checks", "storyboard_checks", "media_qc_checks"}
    first = _evaluations(instance, asset_id)
    # One check alone, as the web UI executes one: only it is evaluated again.
    alone = AssetCheckKey(AssetKey("scene_sidecar"), "scenes_cover_the_video")
    result = materialize([*ASSETS, *VIDEO_CHECKS], selection=AssetSelection.checks(alone),
                         tags={PARTITION_TAG: asset_id}, instance=instance, resources=resources)
    evaluated = [event.asset_check_evaluation_data.check_name for event in result.all_events
                 if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]
    assert evaluated == ["scenes_cover_the_video"]
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        list(CHECKS), partition_filter=PartitionKeyFilter(key=asset_id))
    assert {key.name for key, record in records.items() if record.run_id == result.run_id} == {alone.name}
    assert _evaluations(instance, asset_id) == first


def test_an_unreadable_video_fails_its_readability_check_with_the_reason(upload, resources, instance: DagsterInstance,
                                                                          tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_bytes(b"these are notes, not a video\n" * 200)
    asset_id = upload(fake)
    result = materialize([*ASSETS, *VIDEO_CHECKS], partition_key=asset_id, instance=instance, resources=resources,
                         raise_on_error=False)
    assert not result.success
    passed, description = _evaluations(instance, asset_id)[READABLE_CHECK]
    assert not passed and description and "Traceback" not in description and str(tmp_path) not in description
    # Nothing downstream ran, so no other check has a result.
    assert set(_evaluations(instance, asset_id)) == {READABLE_CHECK}


def test_a_sidecar_that_breaks_its_schema_fails_the_schema_check(clips, upload, resources, instance: DagsterInstance,
                                                                 derived_root: Path) -> None:
    asset_id = upload(clips((1.0, 1.0))[0])
    assert materialize(ASSETS, partition_key=asset_id, instance=instance, resources=resources).success
    path = _sidecar_path(derived_root, asset_id)
    sidecar = json.loads(path.read_text())
    sidecar["scenes"][1]["start_s"] = "late"
    del sidecar["detector"]
    path.write_text(json.dumps(sidecar))
    assert not _check_only(instance, resources, asset_id)
    evaluations = _evaluations(instance, asset_id)
    passed, description = evaluations["sidecar_matches_schema"]
    assert not passed
    assert "$: 'detector' is a required property" in description
    assert "$.scenes[1].start_s: 'late' is not of type 'number'" in description
    assert evaluations["scenes_cover_the_video"] == (False, "the sidecar breaks its schema (2 errors)")


def test_scenes_that_miss_part_of_the_video_block_the_thumbnails(clips, upload, resources, instance: DagsterInstance,
                                                                 derived_root: Path) -> None:
    asset_id = upload(clips((1.0, 1.0))[0])
    assert materialize([probe_metadata], partition_key=asset_id, instance=instance, resources=resources).success
    # The probe now claims twice the length the frames have: the scenes cannot cover it.
    probe_path = derived_root / "org-demo" / "probes" / f"{asset_id}.probe.json"
    probe = json.loads(probe_path.read_text())
    probe["duration_s"] *= 2
    probe_path.write_text(json.dumps(probe))
    result = materialize([*ASSETS, *VIDEO_CHECKS], selection=[scene_sidecar, thumbnails], partition_key=asset_id,
                         instance=instance, resources=resources, raise_on_error=False)
    assert not result.success
    passed, description = _evaluations(instance, asset_id)["scenes_cover_the_video"]
    assert not passed and description == "the last scene ends at 2.0 s; the video lasts 4.0 s"
    # The check blocks: the thumbnails step never ran.
    assert "thumbnails" not in {event.step_key for event in result.all_events
                                if event.event_type == DagsterEventType.STEP_START}
    assert not (derived_root / "org-demo" / "thumbnails" / asset_id).exists()


def test_missing_or_resized_thumbnails_fail_the_thumbnail_check(clips, upload, resources, instance: DagsterInstance,
                                                                derived_root: Path) -> None:
    asset_id = upload(clips((2.0, 1.5, 3.0))[0])
    assert materialize(ASSETS, partition_key=asset_id, instance=instance, resources=resources).success
    entries = json.loads(_sidecar_path(derived_root, asset_id).read_text())["thumbnails"]
    folder = derived_root / "org-demo"
    (folder / entries[0]["storage_key"]).unlink()
    (folder / entries[1]["storage_key"]).write_bytes((folder / entries[2]["storage_key"]).read_bytes()[:100])
    assert _check_only(instance, resources, asset_id)  # not blocking: a failed result, not a failed run
    passed, description = _evaluations(instance, asset_id)["thumbnails_are_stored"]
    assert not passed
    assert description == f"{entries[0]['storage_key']} is missing; {entries[1]['storage_key']} is not an image"


def test_a_tampered_storyboard_fails_its_check(clips, upload, resources, instance: DagsterInstance,
                                              derived_root: Path) -> None:
    asset_id = upload(clips((1.0, 1.0))[0])
    assert materialize(ASSETS, partition_key=asset_id, instance=instance, resources=resources).success
    folder = derived_root / "org-demo" / "storyboards" / asset_id
    track = (folder / "storyboard.vtt").read_text()
    # A cue moved out of the sprite and one cut short; a sprite of another size.
    track = track.replace("#xywh=1440,480,160,120", "#xywh=1500,480,160,120", 1)
    track = track.replace("00:00:00.040 --> 00:00:00.080", "00:00:00.040 --> 00:00:00.070", 1)
    (folder / "storyboard.vtt").write_text(track)
    (folder / "storyboard.jpg").write_bytes((folder / "storyboard.jpg").read_bytes()[:200])
    assert _check_only(instance, resources, asset_id)  # not blocking
    passed, description = _evaluations(instance, asset_id)["storyboard_matches_sprite"]
    assert not passed
    assert description.split("; ") == [
        "the sprite is not an image",
        "cues 1 and 2 leave a gap or overlap: 0.07 to 0.08 s",
        "cue 1 is 0.04 to 0.07 s, its tile 0.04 to 0.08 s",
        "cue 49 points at 'storyboard.jpg#xywh=1500,480,160,120', its tile at 'storyboard.jpg#xywh=1440,480,160,120'"]
    (folder / "storyboard.vtt").write_text("not a track")
    _check_only(instance, resources, asset_id)
    assert "the track is not WebVTT" in _evaluations(instance, asset_id)["storyboard_matches_sprite"][1]


def test_a_partition_never_materialised_fails_its_checks_with_what_is_missing(clips, upload, resources,
                                                                            instance: DagsterInstance) -> None:
    asset_id = upload(clips((1.0, 1.0))[0])
    _check_only(instance, resources, asset_id)
    evaluations = _evaluations(instance, asset_id)
    assert evaluations["sidecar_matches_schema"] == (False, "no sidecar schema (sidecar.schema.json)")
    assert evaluations["scenes_cover_the_video"] == (False, f"no probe metadata ({asset_id}.probe.json)")
    assert evaluations["thumbnails_are_stored"] == (False, f"no sidecar ({asset_id}.vna.json)")
    assert evaluations["storyboard_matches_sprite"] == (False, f"no probe metadata ({asset_id}.probe.json)")
    assert evaluations["no_long_black_or_freeze"] == (False, f"no QC document ({asset_id}.qc.json)")


def test_qc_findings_fail_the_qc_checks_with_what_was_found(clips, upload, resources, instance: DagsterInstance,
                                                            derived_root: Path) -> None:
    asset_id = upload(clips((3.0, 3.0))[0])
    assert materialize([probe_metadata, media_qc], partition_key=asset_id, instance=instance,
                       resources=resources).success
    path = derived_root / "org-demo" / "qc" / f"{asset_id}.qc.json"
    document = json.loads(path.read_text())
    # What a loud video with a dead feed in its middle and an end card would measure.
    document["audio"] = {"index": 1, "codec": "aac", "channels": 2, "sample_rate": 48000.0, "duration_s": 6.0}
    document["loudness"] = {"integrated_lufs": -16.2, "range_lu": 3.0, "true_peak_dbtp": -0.5,
                            "measured_by": document["interlacing"]["measured_by"] | {"filter": "ebur128"}}
    document["black"] = [{"start_s": 1.5, "end_s": 4.0, "duration_s": 2.5, "start_frame": 37, "end_frame": 100}]
    document["freeze"] = [{"start_s": 3.0, "end_s": 6.0, "duration_s": 3.0, "start_frame": 75, "end_frame": 150}]
    path.write_text(json.dumps(document))
    strict = {**resources, "qc": QcRules(**{**resources["qc"].model_dump(), "loudness_target_lufs": -23.0,
                                            "loudness_tolerance_lu": 1.0, "max_stretch_s": 2.0})}
    assert materialize([*ASSETS, *VIDEO_CHECKS], selection=AssetSelection.checks(*QC_CHECKS),
                       tags={PARTITION_TAG: asset_id}, instance=instance, resources=strict).success  # not blocking
    evaluations = _evaluations(instance, asset_id)
    assert evaluations["audio_is_heard"] == (True, "2 channel(s) heard")
    assert evaluations["loudness_on_target"] == (
        False, "integrated loudness -16.2 LUFS is 6.8 LU above the target of -23 ± 1 LUFS")
    # The frozen end card reaches the end: it is not held against the video.
    assert evaluations["no_long_black_or_freeze"] == (
        False, "black for 2.50 s from 1.500 s (frames 37–100), longer than 2 s")
