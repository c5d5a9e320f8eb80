"""The seed guide's whole flow over HTTP, in immediate mode, with real media and a real Dagster instance."""

from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, SensorResult, build_sensor_context
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from heimdex_pipeline.resources import resources_from
from heimdex_pipeline.runs.tags import ORG_TAG
from heimdex_pipeline.sensors import upload_sensor
from tests.api.support import commit, place, uri_path


def test_seed_guide_flow(client: TestClient, auth: dict[str, str], org: str, testvideo: Path,
                         settings: ApiSettings, dagster_instance: DagsterInstance) -> None:
    upload_id, path = place(client, auth, org, testvideo, name="sample.mp4")
    assert path.parent == settings.derived_root.resolve() / "uploads" / org / upload_id

    committed = commit(client, auth, org, upload_id, path)
    assert committed.status_code == 200, committed.text
    asset_id = committed.json()["asset_id"]
    # immediate: the ingest ran inside the request
    assert committed.json() | {"job_id": None} == {"asset_id": asset_id, "source_uri": path.as_uri(),
                                                  "status": "ready", "job_id": None}
    ingest = dagster_instance.get_run_by_id(committed.json()["job_id"])
    assert ingest is not None and ingest.status == DagsterRunStatus.SUCCESS
    assert ingest.tags["dagster/partition"] == asset_id

    probe = client.post("/v1/ingest/probe", headers=auth, json={"org_id": org, "source_uri": path.as_uri()})
    assert probe.status_code == 200, probe.text
    assert probe.json()["asset_id"] == asset_id
    assert probe.json()["hash_quality"] == "strong" and probe.json()["size_bytes"] == testvideo.stat().st_size
    assert probe.json()["hash"].startswith("sha256:") and probe.json()["width"] == 1280

    accepted = client.post(f"/v1/assets/{asset_id}/sidecar", headers={**auth, "Idempotency-Key": "test-123"},
                           json={"org_id": org, "source_uri": path.as_uri()})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert accepted.json() == {"job_id": job_id, "location": f"/v1/jobs/{job_id}"}

    job = client.get(accepted.json()["location"], headers=auth)
    assert job.status_code == 200, job.text
    body = job.json()
    assert body["status"] == "succeeded" and body["type"] == "sidecar" and body["asset_id"] == asset_id
    assert body["error"] is None and body["started_at"] and body["finished_at"]
    sidecar_path = settings.derived_root.resolve() / org / "sidecars" / f"{asset_id}.vna.json"
    assert uri_path(body["result"]["sidecar_uri"]) == sidecar_path
    # A new sidecar lists no thumbnails until a thumbnails job extracts them for its scenes.
    assert isinstance(body["result"]["thumbnails"], list)

    thumbs = client.post(f"/v1/assets/{asset_id}/thumbnails", headers=auth,
                         json={"org_id": org, "source_uri": path.as_uri(),
                               "policy": {"max_count": 3, "max_height": 96}})
    assert thumbs.status_code == 202, thumbs.text
    thumbs_job = client.get(thumbs.json()["location"], headers=auth).json()
    assert thumbs_job["status"] == "succeeded" and thumbs_job["type"] == "thumbnails"
    assert 1 <= len(thumbs_job["result"]["thumbnails"]) <= 3

    asset = client.get(f"/v1/assets/{asset_id}", headers=auth)
    assert asset.status_code == 200, asset.text
    view = asset.json()
    assert view["status"] == "ready" and view["org_id"] == org and view["source_uri"] == path.as_uri()
    assert view["size_bytes"] == testvideo.stat().st_size and view["hash"] == probe.json()["hash"]
    assert view["sidecar"]["storage_key"] == f"sidecars/{asset_id}.vna.json"
    assert view["sidecar"]["schema_version"] == "1.1" and len(view["sidecar"]["etag"]) == 64
    # The same entries; each answer signs its own `url`s (tests/api/test_download_urls.py fetches them).
    stored = [{key: value for key, value in entry.items() if key != "url"} for entry in view["thumbnails"]]
    assert stored == [{key: value for key, value in entry.items() if key != "url"}
                      for entry in thumbs_job["result"]["thumbnails"]]
    assert set(view["thumbnails"][0]) == {"idx", "storage_key", "width", "height", "ts_ms", "url"}
    for thumb in view["thumbnails"]:
        assert thumb["height"] == 96 and (settings.derived_root / org / thumb["storage_key"]).is_file()
    # Every check ran on this partition, each once per job that selected it; all passed but the QC's audio
    # check (the clip has no audio stream), which says so without failing the ingest.
    assert view["checks"] == {"passed": 7, "failed": [{"asset": "media_qc", "check": "audio_is_heard",
                                                       "description": "no audio stream"}]}
    assert {key: value for key, value in view["qc"].items() if key != "url"} == {
        "storage_key": f"qc/{asset_id}.qc.json", "integrated_lufs": None, "loudness_range_lu": None,
        "true_peak_dbtp": None, "loudness_unavailable": "no audio stream", "scan": "progressive", "silences": 0,
        # The film's fades to black, and its still shots: none long enough, away from the ends, to fail the check.
        "black_stretches": 4, "frozen_stretches": 3}
    qc = client.get(f"/v1/assets/{asset_id}/qc", headers=auth)
    assert qc.status_code == 200, qc.text
    assert qc.json()["asset_id"] == asset_id and qc.json()["interlacing"]["measured_by"]["filter"] == "idet"
    assert qc.json()["storage_key"] == view["qc"]["storage_key"] and qc.json()["duration_s"] > 20

    sidecar = client.get(f"/v1/assets/{asset_id}/sidecar", headers=auth)
    assert sidecar.status_code == 200
    assert sidecar.json()["asset_id"] == asset_id and sidecar.json()["schema_version"] == "1.1"
    assert len(sidecar.json()["scenes"]) > 1


def test_same_content_twice_is_one_asset_and_one_run(client: TestClient, auth: dict[str, str], org: str,
                                                     clip: Path, dagster_instance: DagsterInstance) -> None:
    first_id, first_path = place(client, auth, org, clip)
    first = commit(client, auth, org, first_id, first_path).json()
    runs = len(dagster_instance.get_run_records())
    second_id, second_path = place(client, auth, org, clip, name="copy.mp4")
    second = commit(client, auth, org, second_id, second_path)
    assert second.status_code == 200, second.text
    assert second.json()["asset_id"] == first["asset_id"]
    assert second.json()["status"] == "ready" and second.json()["job_id"] is None
    assert len(dagster_instance.get_run_records()) == runs


def test_the_sensor_does_not_ingest_committed_or_pending_uploads(client: TestClient, auth: dict[str, str], org: str,
                                                                 clip: Path, settings: ApiSettings,
                                                                 dagster_instance: DagsterInstance,
                                                                 tmp_path: Path) -> None:
    committed_id, committed_path = place(client, auth, org, clip)
    committed = commit(client, auth, org, committed_id, committed_path)
    assert committed.status_code == 200, committed.text
    # Placed, not committed yet: the API owns it. Other bytes than the committed file's, which the
    # sensor would take for a new video.
    pending = tmp_path / "pending.mp4"
    pending.write_bytes(clip.read_bytes() + bytes(16))
    place(client, auth, org, pending, name="pending.mp4")
    resources = resources_from(settings)
    cursor = None
    for _ in range(2):  # two looks: a file is taken once it is settled
        result = upload_sensor(build_sensor_context(instance=dagster_instance, cursor=cursor, resources=resources))
        if isinstance(result, SensorResult):
            # The session's catalog and instance are shared, and the sensor looks at all of them: late in a
            # session it may rightly request again another test's video whose run it finds lost.
            ours = [r for r in result.run_requests if r.tags.get(ORG_TAG) == org]
            assert not ours, ours
            cursor = result.cursor
