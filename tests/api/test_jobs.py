"""Jobs: idempotency keys, concurrent requests, job reads, failures, and org isolation."""

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from heimdex_api.services.finished_jobs import FinishedJobs, KeptJob
from heimdex_api.services.job_state import JobState
from heimdex_api.services.launchers import JOB_NAMES, pipeline_definitions
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.repository import record_progress
from heimdex_pipeline.runs.tags import PARTITION_TAG, run_tags
from tests.api.support import bearer, commit, make_token, place


def _runs(instance: DagsterInstance, org_id: str, job_type: str) -> int:
    return len(instance.get_run_records(RunsFilter(tags={"heimdex/org_id": org_id, "heimdex/job_type": job_type})))


def test_sidecar_idempotency(client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path],
                             dagster_instance: DagsterInstance) -> None:
    asset_id, path = asset
    body = {"org_id": org, "source_uri": path.as_uri()}
    first = client.post(f"/v1/assets/{asset_id}/sidecar", headers={**auth, "Idempotency-Key": "k-1"}, json=body)
    again = client.post(f"/v1/assets/{asset_id}/sidecar", headers={**auth, "Idempotency-Key": "k-1"}, json=body)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert _runs(dagster_instance, org, "sidecar") == 1
    other = client.post(f"/v1/assets/{asset_id}/sidecar", headers={**auth, "Idempotency-Key": "k-2"}, json=body)
    assert other.json()["job_id"] != first.json()["job_id"]
    unkeyed = client.post(f"/v1/assets/{asset_id}/sidecar", headers=auth, json=body)
    assert unkeyed.status_code == 202 and _runs(dagster_instance, org, "sidecar") == 3


def test_thumbnails_idempotency_and_conflict(client: TestClient, auth: dict[str, str], org: str,
                                             asset: tuple[str, Path], dagster_instance: DagsterInstance) -> None:
    asset_id, path = asset
    headers = {**auth, "Idempotency-Key": "thumbs-1"}
    body = {"org_id": org, "source_uri": path.as_uri(), "policy": {"max_count": 2, "max_height": 64}}
    first = client.post(f"/v1/assets/{asset_id}/thumbnails", headers=headers, json=body)
    assert first.status_code == 202, first.text
    # The same request with its keys in another order is the same request.
    reordered = dict(reversed(list(body.items())))
    assert client.post(f"/v1/assets/{asset_id}/thumbnails", headers=headers, json=reordered).json() == first.json()
    changed = client.post(f"/v1/assets/{asset_id}/thumbnails", headers=headers,
                          json={**body, "policy": {"max_count": 3, "max_height": 64}})
    assert changed.status_code == 409 and changed.json()["error"] == "idempotency_conflict"
    other_endpoint = client.post(f"/v1/assets/{asset_id}/sidecar", headers=headers,
                                 json={"org_id": org, "source_uri": path.as_uri()})
    assert other_endpoint.status_code == 409 and other_endpoint.json()["error"] == "idempotency_conflict"
    assert _runs(dagster_instance, org, "thumbnails") == 1
    assert _runs(dagster_instance, org, "sidecar") == 0
    job = client.get(first.json()["location"], headers=auth).json()
    assert job["status"] == "succeeded" and len(job["result"]["thumbnails"]) <= 2
    assert all(thumb["height"] == 64 for thumb in job["result"]["thumbnails"])


def test_keys_are_scoped_to_the_org(client: TestClient, clip: Path, dagster_instance: DagsterInstance) -> None:
    answers = []
    for org_id in (f"org-a{uuid4().hex[:8]}", f"org-b{uuid4().hex[:8]}"):
        headers = bearer(make_token(org_id))
        upload_id, path = place(client, headers, org_id, clip)
        asset_id = commit(client, headers, org_id, upload_id, path).json()["asset_id"]
        answers.append(client.post(f"/v1/assets/{asset_id}/sidecar", headers={**headers, "Idempotency-Key": "shared"},
                                   json={"org_id": org_id, "source_uri": path.as_uri()}))
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json()["job_id"] != answers[1].json()["job_id"]


def test_concurrent_requests_with_one_key_make_one_job(client: TestClient, auth: dict[str, str], org: str,
                                                       asset: tuple[str, Path],
                                                       dagster_instance: DagsterInstance) -> None:
    asset_id, path = asset
    barrier, answers = threading.Barrier(4), []

    def send() -> None:
        barrier.wait()
        answers.append(client.post(f"/v1/assets/{asset_id}/sidecar", headers={**auth, "Idempotency-Key": "race"},
                                   json={"org_id": org, "source_uri": path.as_uri()}))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
    assert len({a.json()["job_id"] for a in answers}) == 1
    assert _runs(dagster_instance, org, "sidecar") == 1


def test_bad_idempotency_keys(client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path]) -> None:
    asset_id, path = asset
    for key in ("", "x" * 256, "has space"):
        response = client.post(f"/v1/assets/{asset_id}/sidecar", headers={**auth, "Idempotency-Key": key},
                               json={"org_id": org, "source_uri": path.as_uri()})
        assert (response.status_code, response.json()["error"]) == (422, "invalid_idempotency_key")


@pytest.mark.parametrize("job_id", ["0" * 8 + "-0000-0000-0000-" + "0" * 12, "nope", "a" * 10_000])
def test_unknown_jobs_are_not_found(client: TestClient, auth: dict[str, str], job_id: str) -> None:
    response = client.get(f"/v1/jobs/{job_id}", headers=auth)
    assert (response.status_code, response.json()["error"]) == (404, "job_not_found")


def test_runs_without_heimdex_tags_are_not_found(client: TestClient, auth: dict[str, str], settings: ApiSettings,
                                                 asset: tuple[str, Path], dagster_instance: DagsterInstance) -> None:
    # A run started outside the API (the sensor, the UI) belongs to no org the API can vouch for.
    result = pipeline_definitions(settings).resolve_job_def("sidecar_job").execute_in_process(
        instance=dagster_instance, partition_key=asset[0])
    assert result.success
    response = client.get(f"/v1/jobs/{result.run_id}", headers=auth)
    assert (response.status_code, response.json()["error"]) == (404, "job_not_found")


def test_a_failed_run_reports_its_error(client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path],
                                        settings: ApiSettings) -> None:
    asset_id, path = asset
    # The thumbnails step needs the probe document: without it the run fails, without retries.
    (settings.derived_root / org / "probes" / f"{asset_id}.probe.json").unlink()
    accepted = client.post(f"/v1/assets/{asset_id}/thumbnails", headers=auth,
                           json={"org_id": org, "source_uri": path.as_uri()})
    assert accepted.status_code == 202
    job = client.get(accepted.json()["location"], headers=auth).json()
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"]["code"] == "step_failure" and "probe metadata" in job["error"]["message"]


def test_org_isolation(client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path],
                       dagster_instance: DagsterInstance) -> None:
    asset_id, path = asset
    job_id = dagster_instance.get_run_records(RunsFilter(tags={"heimdex/org_id": org}), limit=1)[0].dagster_run.run_id
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).status_code == 200
    intruder = bearer(make_token("org-intruder", ["admin"]))
    for url in (f"/v1/assets/{asset_id}", f"/v1/assets/{asset_id}/sidecar", f"/v1/jobs/{job_id}"):
        response = client.get(url, headers=intruder)
        assert (response.status_code, response.json()["error"]) in {(404, "asset_not_found"), (404, "job_not_found")}
    for kind in ("sidecar", "thumbnails"):
        response = client.post(f"/v1/assets/{asset_id}/{kind}", headers=intruder,
                               json={"org_id": "org-intruder", "source_uri": path.as_uri()})
        assert (response.status_code, response.json()["error"]) == (404, "asset_not_found")
    # Naming the victim's org in the body does not help: the token speaks for another org.
    response = client.post(f"/v1/assets/{asset_id}/sidecar", headers=intruder,
                           json={"org_id": org, "source_uri": path.as_uri()})
    assert response.status_code == 403


def test_asset_reads(client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path]) -> None:
    asset_id, _ = asset
    assert client.get("/v1/assets/v_" + "0" * 32, headers=auth).status_code == 404
    assert client.get("/v1/assets/" + "x" * 5000, headers=auth).status_code == 404
    view = client.get(f"/v1/assets/{asset_id}", headers=auth).json()
    assert view["status"] == "ready" and view["hash_quality"] == "strong"


def test_job_on_a_file_not_matching_the_asset(client: TestClient, auth: dict[str, str], org: str,
                                              asset: tuple[str, Path], clips) -> None:
    asset_id, _ = asset
    other, _ = clips((1.0,), size="160x120")
    _, other_path = place(client, auth, org, other, name="other.mp4")
    response = client.post(f"/v1/assets/{asset_id}/sidecar", headers=auth,
                           json={"org_id": org, "source_uri": other_path.as_uri()})
    assert (response.status_code, response.json()["error"]) == (422, "source_mismatch")


def _without_urls(job: dict) -> dict:
    result = job["result"] and {**job["result"], "sidecar_url": None,
                                "thumbnails": [{**thumb, "url": None} for thumb in job["result"]["thumbnails"]]}
    return {**job, "result": result}


def test_a_finished_job_is_answered_from_memory_to_its_org_only(
        client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path],
        dagster_instance: DagsterInstance) -> None:
    asset_id, path = asset
    location = client.post(f"/v1/assets/{asset_id}/sidecar", headers=auth,
                           json={"org_id": org, "source_uri": path.as_uri()}).json()["location"]
    first = client.get(location, headers=auth).json()
    assert first["status"] == "succeeded"
    # Gone from Dagster's storage, the finished job is still answered from memory ...
    dagster_instance.delete_run(first["job_id"])
    again = client.get(location, headers=auth)
    assert again.status_code == 200 and _without_urls(again.json()) == _without_urls(first)
    # ... to its org only: another org meets the same 404 as for an id that never existed.
    other = bearer(make_token(f"org-x{uuid4().hex[:8]}"))
    unknown = client.get(f"/v1/jobs/{uuid4()}", headers=other)
    answer = client.get(location, headers=other)
    assert (answer.status_code, answer.json()) == (unknown.status_code, unknown.json()) == \
        (404, {**unknown.json(), "error": "job_not_found"})


def test_an_unfinished_job_is_read_afresh(client: TestClient, auth: dict[str, str], org: str,
                                          asset: tuple[str, Path], dagster_instance: DagsterInstance) -> None:
    run = dagster_instance.add_run(DagsterRun(
        job_name=JOB_NAMES["sidecar"], run_id=str(uuid4()), status=DagsterRunStatus.NOT_STARTED,
        tags={PARTITION_TAG: asset[0], **run_tags(org, "sidecar", origin="api")}))
    assert client.get(f"/v1/jobs/{run.run_id}", headers=auth).json()["status"] == "queued"
    dagster_instance.report_run_canceled(run)
    assert client.get(f"/v1/jobs/{run.run_id}", headers=auth).json()["status"] == "canceled"


def test_a_running_job_answers_its_progress(client: TestClient, auth: dict[str, str], org: str,
                                            asset: tuple[str, Path], settings: ApiSettings,
                                            dagster_instance: DagsterInstance) -> None:
    run = dagster_instance.add_run(DagsterRun(
        job_name=JOB_NAMES["sidecar"], run_id=str(uuid4()), status=DagsterRunStatus.STARTED,
        tags={PARTITION_TAG: asset[0], **run_tags(org, "sidecar", origin="api")}))
    # Started, nothing said yet; then the scene step's word, as `step_progress` records it.
    assert client.get(f"/v1/jobs/{run.run_id}", headers=auth).json()["progress"] is None
    for done in (0, 1260):
        with session_scope(settings.catalog_url) as session:
            record_progress(session, run.run_id, "scene_sidecar", "frames", done, 3000 if done else 0)
        progress = client.get(f"/v1/jobs/{run.run_id}", headers=auth).json()["progress"]
        assert datetime.fromisoformat(progress["updated_at"]).utcoffset() == timedelta(0)
        assert {key: progress[key] for key in ("step", "unit", "done", "total", "fraction")} == (
            {"step": "scene_sidecar", "unit": "frames", "done": 1260, "total": 3000, "fraction": 0.42} if done else
            {"step": "scene_sidecar", "unit": "frames", "done": 0, "total": None, "fraction": 0.0})
    dagster_instance.report_run_failed(run)
    assert client.get(f"/v1/jobs/{run.run_id}", headers=auth).json()["progress"] is None


def test_finished_jobs_are_forgotten_after_their_time_and_beyond_their_bytes() -> None:
    def job(job_id: str, finished: bool = True) -> JobState:
        return JobState(org_id="org-a", job_id=job_id, type="sidecar", asset_id="v_1", status="succeeded",
                        started_at=None, finished_at=None, finished=finished)

    def given(kept: KeptJob | None) -> tuple[JobState, bytes | None, datetime] | None:
        return None if kept is None else (kept.job, kept.answer, kept.video)

    video = datetime(2026, 1, 1, tzinfo=UTC)
    kept = FinishedJobs(answer_max_age_s=0.1, ttl_s=0.6)
    kept.keep(job("running", finished=False), b"{}", video)
    kept.keep(job("gone"), b"{}", None)  # its video is no longer catalogued
    kept.keep(job("done"), b"{}", video)
    assert kept.get("org-a", "running") is None and kept.get("org-a", "gone") is None
    assert given(kept.get("org-a", "done")) == (job("done"), b"{}", video) and kept.get("org-b", "done") is None
    time.sleep(0.15)  # the answer is too old to give again, the job is still kept
    assert given(kept.get("org-a", "done")) == (job("done"), None, video)
    kept.keep(job("done"), b"{ }", video)  # answered again: a new answer, not a new lease of the job
    assert given(kept.get("org-a", "done")) == (job("done"), b"{ }", video)
    time.sleep(0.5)
    assert kept.get("org-a", "done") is None

    small = FinishedJobs(answer_max_age_s=60, max_bytes=3 * (len(repr(job("j-0"))) + 2))
    for index in range(10):
        small.keep(job(f"j-{index}"), b"{}", video)
    assert [index for index in range(10) if small.get("org-a", f"j-{index}")] == [7, 8, 9]
