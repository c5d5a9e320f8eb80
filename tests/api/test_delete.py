"""`DELETE /v1/assets/{asset_id}`: the org's video goes whole and answers 404 afterwards, another org's
answers as an unknown one, a job in flight makes it 409, and the same content can come again."""

import uuid
from pathlib import Path

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Upload, Video
from heimdex_pipeline.catalog.repository import check_outcomes
from heimdex_pipeline.runs.tags import PARTITION_TAG, run_tags
from tests.api.support import bearer, commit, make_token, place


def _files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def test_a_deleted_asset_is_gone_from_every_answer(client: TestClient, auth: dict[str, str], org: str, clip: Path,
                                                   settings: ApiSettings, dagster_instance: DagsterInstance) -> None:
    upload_id, path = place(client, auth, org, clip)
    committed = commit(client, auth, org, upload_id, path).json()
    asset_id, ingest_id = committed["asset_id"], committed["job_id"]
    keyed = client.post(f"/v1/assets/{asset_id}/thumbnails", headers={**auth, "Idempotency-Key": "thumbs-del"},
                        json={"org_id": org, "source_uri": path.as_uri(), "policy": {"max_count": 2}})
    assert keyed.status_code == 202
    thumbs_id = keyed.json()["job_id"]
    assert client.get(f"/v1/jobs/{ingest_id}", headers=auth).json()["status"] == "succeeded"  # now kept in memory
    root = settings.derived_root.resolve()
    assert {p for p in _files(root) if asset_id in str(p) or upload_id in str(p)}

    deleted = client.delete(f"/v1/assets/{asset_id}", headers=auth)
    assert deleted.status_code == 204 and deleted.content == b""

    for url in (f"/v1/assets/{asset_id}", f"/v1/assets/{asset_id}/sidecar"):
        assert client.get(url, headers=auth).json() == {"error": "asset_not_found", "detail": "no such asset"}
    for job_id in (ingest_id, thumbs_id):
        assert client.get(f"/v1/jobs/{job_id}", headers=auth).status_code == 404
    assert not {p for p in _files(root) if asset_id in str(p) or upload_id in str(p)}
    assert not (root / "uploads" / org / upload_id).exists()
    assert not dagster_instance.has_dynamic_partition("videos", asset_id)
    with session_scope(settings.catalog_url) as session:
        assert session.get(Video, asset_id) is None and session.get(Upload, upload_id) is None
        assert check_outcomes(session, asset_id) == {}
    assert client.delete(f"/v1/assets/{asset_id}", headers=auth).status_code == 404
    # The key that started a deleted job starts a new one.
    again = client.post(f"/v1/assets/{asset_id}/thumbnails", headers={**auth, "Idempotency-Key": "thumbs-del"},
                        json={"org_id": org, "source_uri": path.as_uri(), "policy": {"max_count": 2}})
    assert again.status_code == 404 and again.json()["error"] == "asset_not_found"

    # The same content uploaded again is a new ingest of the same asset id.
    upload_id, path = place(client, auth, org, clip)
    recommitted = commit(client, auth, org, upload_id, path).json()
    assert recommitted["asset_id"] == asset_id and recommitted["status"] == "ready"
    assert recommitted["job_id"] not in (ingest_id, None)
    assert client.get(f"/v1/assets/{asset_id}", headers=auth).json()["checks"] == {"passed": 5, "failed": []}


def test_another_orgs_asset_answers_as_an_unknown_one(client: TestClient, auth: dict[str, str], org: str,
                                                      asset: tuple[str, Path]) -> None:
    asset_id, path = asset
    intruder = bearer(make_token("org-intruder", ["assets:read", "assets:write"]))
    unknown = client.delete(f"/v1/assets/v_{'0' * 32}", headers=intruder)
    theirs = client.delete(f"/v1/assets/{asset_id}", headers=intruder)
    assert theirs.status_code == unknown.status_code == 404 and theirs.json() == unknown.json()
    reader = bearer(make_token(org, ["assets:read"]))
    assert client.delete(f"/v1/assets/{asset_id}", headers=reader).json()["error"] == "missing_scope"
    assert path.is_file() and client.get(f"/v1/assets/{asset_id}", headers=auth).status_code == 200


def test_a_job_in_flight_makes_the_deletion_wait(client: TestClient, auth: dict[str, str], org: str,
                                                 asset: tuple[str, Path], dagster_instance: DagsterInstance) -> None:
    asset_id, path = asset
    # A run the daemon has started (a sensor's, a backfill's), as its record says.
    run = DagsterRun(job_name="ingest_video", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED,
                     tags={**run_tags(org, "ingest", origin="sensor"), PARTITION_TAG: asset_id})
    dagster_instance.add_run(run)
    busy = client.delete(f"/v1/assets/{asset_id}", headers=auth)
    assert busy.status_code == 409 and busy.json()["error"] == "asset_busy"
    assert busy.json()["detail"]["job_ids"] == [run.run_id]
    assert path.is_file() and client.get(f"/v1/assets/{asset_id}", headers=auth).json()["status"] == "ready"

    dagster_instance.report_run_failed(run)
    assert client.delete(f"/v1/assets/{asset_id}", headers=auth).status_code == 204
    assert client.get(f"/v1/jobs/{run.run_id}", headers=auth).status_code == 404
