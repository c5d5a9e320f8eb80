"""A video's scene list for editors (`scenes.csv`, `.edl`, `.otio`), read back by the tools they are for, and
sidecar jobs with a chosen detector: org-scoped, validated, named in the sidecar and its versions."""

import csv
import io
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import opentimelineio as otio
import pycmx
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from tests.api.support import Snapshot, bearer, make_token
from tests.media.scenedetect_cli import list_scenes

FORMATS = ("csv", "edl", "otio")
RATE = 25  # the clip fixture's


def _sidecar_with(client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path],
                  detector: dict[str, Any]) -> dict[str, Any]:
    """Run a sidecar job with `detector` on the asset; the sidecar it wrote."""
    asset_id, source = asset
    accepted = client.post(f"/v1/assets/{asset_id}/sidecar", headers=auth,
                           json={"org_id": org, "source_uri": source.as_uri(), "detector": detector})
    assert accepted.status_code == 202, accepted.text
    job = client.get(accepted.json()["location"], headers=auth).json()
    assert job["status"] == "succeeded", job
    return client.get(f"/v1/assets/{asset_id}/sidecar", headers=auth).json()


def _fetch_without_token(client: TestClient, url: str) -> str:
    parts = urlsplit(url)
    answer = client.get(f"{parts.path}?{parts.query}")
    assert answer.status_code == 200, answer.text
    return answer.text


def test_the_scene_lists_read_back_in_the_tools_they_are_for(client: TestClient, auth: dict[str, str], org: str,
                                                             asset: tuple[str, Path]) -> None:
    asset_id, source = asset
    # The CSV is compared below with `scenedetect list-scenes detect-content`: the same detector.
    sidecar = _sidecar_with(client, auth, org, asset, {"kind": "content"})
    assert sidecar["detector"]["name"] == "ContentDetector"
    scenes = sidecar["scenes"]
    assert [scene["start_s"] for scene in scenes] == [0.0, 1.0]
    frames = [(round(scene["start_s"] * RATE), round(scene["end_s"] * RATE)) for scene in scenes]
    answers = {form: client.get(f"/v1/assets/{asset_id}/scenes.{form}", headers=auth) for form in FORMATS}
    for form, answer in answers.items():
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-disposition"] == f'attachment; filename="{asset_id}.scenes.{form}"'
    assert answers["csv"].headers["content-type"] == "text/csv; charset=utf-8"

    # The CSV is, cell for cell, what `scenedetect list-scenes` writes for the same file and detector.
    theirs = list_scenes(source, "detect-content")
    assert list(csv.reader(io.StringIO(answers["csv"].text))) == list(csv.reader(io.StringIO(theirs)))

    edl = pycmx.parse_cmx3600(io.StringIO(answers["edl"].text))
    edits = [edit for event in edl.events for edit in event.edits]
    assert [(edit.source_in, edit.source_out, edit.record_in, edit.record_out) for edit in edits] == [
        ("00:00:00:00", "00:00:01:00", "00:00:00:00", "00:00:01:00"),
        ("00:00:01:00", "00:00:02:00", "00:00:01:00", "00:00:02:00")]
    assert {edit.source for edit in edits} == {"AX"} and {edit.transition.kind for edit in edits} == {"C"}

    timeline = otio.adapters.read_from_string(answers["otio"].text, "otio_json")
    (track,) = timeline.video_tracks()
    assert [(clip.name, clip.source_range.start_time.to_frames(), clip.source_range.duration.to_frames())
            for clip in track] == [(f"Scene {index + 1}", first, stop - first)
                                   for index, (first, stop) in enumerate(frames)]
    assert track[0].media_reference.target_url == source.as_uri()
    assert timeline.duration().to_seconds() == scenes[-1]["end_s"]

    # The asset answer links each: a signed URL a plain GET fetches without the token, and the route.
    lists = client.get(f"/v1/assets/{asset_id}", headers=auth).json()["scene_lists"]
    for form in FORMATS:
        assert lists[form]["location"] == f"/v1/assets/{asset_id}/scenes.{form}"
        assert _fetch_without_token(client, lists[form]["url"]) == answers[form].text


def test_another_orgs_or_a_missing_scene_list_answers_404(client: TestClient, auth: dict[str, str], org: str,
                                                          asset: tuple[str, Path], settings: ApiSettings) -> None:
    asset_id = asset[0]
    stranger = bearer(make_token("org-stranger", ["assets:read"]))
    signed = client.get(f"/v1/assets/{asset_id}", headers=auth).json()["scene_lists"]
    for form in FORMATS:
        for path, headers in ((f"/v1/assets/{asset_id}/scenes.{form}", stranger),
                              (f"/v1/assets/v_{'0' * 32}/scenes.{form}", auth)):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 404 and answer.json()["error"] == "asset_not_found", path
        no_scope = client.get(f"/v1/assets/{asset_id}/scenes.{form}", headers=bearer(make_token(org, ["assets:write"])))
        assert no_scope.status_code == 403 and no_scope.json()["error"] == "missing_scope"
        # The signed URL opens this org's list only: another org in its path breaks the signature.
        parts = urlsplit(signed[form]["url"])
        moved = client.get(f"{parts.path.replace(f'/{org}/', '/org-stranger/')}?{parts.query}")
        assert moved.status_code == 403 and moved.json()["error"] == "url_signature_invalid"

    (settings.derived_root / org / "sidecars" / f"{asset_id}.vna.json").unlink()
    for form in FORMATS:
        answer = client.get(f"/v1/assets/{asset_id}/scenes.{form}", headers=auth)
        assert answer.status_code == 404 and answer.json() == {"error": "sidecar_not_found",
                                                               "detail": "the sidecar does not exist yet"}
        parts = urlsplit(signed[form]["url"])
        assert client.get(f"{parts.path}?{parts.query}").json()["error"] == "sidecar_not_found"
    assert client.get(f"/v1/assets/{asset_id}", headers=auth).json()["scene_lists"] is None


def test_a_sidecar_job_with_a_chosen_detector(client: TestClient, auth: dict[str, str], org: str,
                                              asset: tuple[str, Path], dagster_instance: DagsterInstance) -> None:
    asset_id = asset[0]
    detector = {"kind": "histogram", "threshold": 0.3, "bins": 64}
    sidecar = _sidecar_with(client, auth, org, asset, detector)
    assert sidecar["detector"]["name"] == "HistogramDetector"
    assert sidecar["detector"]["parameters"] == {**detector, "min_scene_len_frames": 15, "detection_width": 256}
    assert [scene["start_s"] for scene in sidecar["scenes"]] == [0.0, 1.0]
    # The code version is the deployment's detector; the data version names the one this job ran.
    (record,) = dagster_instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("scene_sidecar"), asset_partitions=[asset_id]), limit=1).records
    tags = record.asset_materialization.tags
    assert "HeimdexShotDetector" in tags["dagster/code_version"]
    assert tags["dagster/data_version"].startswith("scenes-3;HistogramDetector-")
    assert "bins=64" in tags["dagster/data_version"] and "threshold=0.3" in tags["dagster/data_version"]


def test_a_sidecar_job_with_heimdex_detector(client: TestClient, auth: dict[str, str], org: str,
                                            asset: tuple[str, Path], dagster_instance: DagsterInstance) -> None:
    asset_id, source = asset
    sidecar = _sidecar_with(client, auth, org, asset, {"kind": "heimdex", "cut_ratio": 4.0, "min_scene_len_frames": 5})
    assert sidecar["schema_version"] == "1.1"
    assert sidecar["detector"]["name"] == "HeimdexShotDetector" and sidecar["detector"]["library"] == "Heimdex"
    assert sidecar["detector"]["parameters"]["cut_ratio"] == 4.0
    assert sidecar["detector"]["parameters"]["min_scene_len_frames"] == 5
    first, second = sidecar["scenes"]
    # The clip's two patterns meet in a hard cut at 1 s (frame 25): the second scene begins with it.
    assert "transition" not in first
    assert second["transition"] == {"kind": "hard", "start_frame": 25, "end_frame": 25, "start_s": 1.0,
                                    "end_s": 1.04}
    (record,) = dagster_instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("scene_sidecar"), asset_partitions=[asset_id]), limit=1).records
    assert "cut_ratio=4.0" in record.asset_materialization.tags["dagster/data_version"]
    for hostile in ({"kind": "heimdex", "cut_ratio": 1}, {"kind": "heimdex", "flash_frames": 10**6},
                    {"kind": "heimdex", "min_change": "6"}):
        answer = client.post(f"/v1/assets/{asset_id}/sidecar", headers=auth,
                             json={"org_id": org, "source_uri": source.as_uri(), "detector": hostile})
        assert answer.status_code == 422 and answer.json()["error"] == "validation_error", (hostile, answer.text)


def test_a_hostile_detector_is_refused_and_starts_nothing(client: TestClient, auth: dict[str, str], org: str,
                                                          asset: tuple[str, Path], settings: ApiSettings,
                                                          dagster_instance: DagsterInstance) -> None:
    asset_id, source = asset
    snapshot = Snapshot(settings, dagster_instance, org)
    for detector in ({"kind": "content", "threshold": 1e308}, {"kind": "adaptive", "window_width": 10**9},
                     {"kind": "hash", "size": 100_000, "lowpass": 100_000}, {"kind": "histogram", "bins": "all"},
                     {"kind": "threshold", "min_scene_len_frames": -1}, {"kind": "content", "kernel_size": 2},
                     {"kind": "content", "__class__": "os.system"}, {"kind": "transnet"}, {"threshold": 27}, [1],
                     "content"):
        answer = client.post(f"/v1/assets/{asset_id}/sidecar", headers=auth,
                             json={"org_id": org, "source_uri": source.as_uri(), "detector": detector})
        assert answer.status_code == 422 and answer.json()["error"] == "validation_error", (detector, answer.text)
    snapshot.assert_unchanged()
