"""Idempotency keys are looked at first, and claims left by a crashed request expire; so do commit claims."""

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, RunsFilter
from fastapi.testclient import TestClient
from sqlalchemy import update

from heimdex_api.core.config import ApiSettings
from heimdex_api.models import IdempotencyKey
from heimdex_api.schemas import SidecarRequest
from heimdex_api.services import idempotency
from heimdex_api.services.idempotency import request_fingerprint
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Upload
from tests.api.support import commit, place


def _sidecar_runs(instance: DagsterInstance, org_id: str) -> int:
    return len(instance.get_run_records(RunsFilter(tags={"heimdex/org_id": org_id, "heimdex/job_type": "sidecar"})))


def test_a_replay_answers_without_reading_the_media(client: TestClient, auth: dict[str, str], org: str,
                                                    asset: tuple[str, Path], dagster_instance: DagsterInstance) -> None:
    asset_id, path = asset
    headers, body = {**auth, "Idempotency-Key": "replay-1"}, {"org_id": org, "source_uri": path.as_uri()}
    first = client.post(f"/v1/assets/{asset_id}/sidecar", headers=headers, json=body)
    assert first.status_code == 202, first.text
    # The file is gone: a replay that probed or hashed it again would answer 404.
    moved = path.with_name("moved.mp4")
    shutil.move(path, moved)
    again = client.post(f"/v1/assets/{asset_id}/sidecar", headers=headers, json=body)
    assert (again.status_code, again.json()) == (202, first.json())
    assert _sidecar_runs(dagster_instance, org) == 1


@pytest.mark.parametrize("change", ["missing_file", "other_asset", "other_endpoint"])
def test_the_key_with_another_request_is_a_conflict_whatever_the_body(client: TestClient, auth: dict[str, str],
                                                                      org: str, asset: tuple[str, Path],
                                                                      change: str) -> None:
    asset_id, path = asset
    headers, body = {**auth, "Idempotency-Key": "conflict-1"}, {"org_id": org, "source_uri": path.as_uri()}
    assert client.post(f"/v1/assets/{asset_id}/sidecar", headers=headers, json=body).status_code == 202
    url, changed = f"/v1/assets/{asset_id}/sidecar", dict(body)
    if change == "missing_file":  # would be 404 source_not_found if the media were read first
        changed["source_uri"] = path.with_name("nothing-here.mp4").as_uri()
    elif change == "other_asset":  # would be 404 asset_not_found
        url = "/v1/assets/v_" + "0" * 32 + "/sidecar"
    else:
        url = f"/v1/assets/{asset_id}/thumbnails"
    response = client.post(url, headers=headers, json=changed)
    assert (response.status_code, response.json()["error"]) == (409, "idempotency_conflict")


def _leave_claim(settings: ApiSettings, org: str, key: str, endpoint: str, body: dict, age_s: float) -> None:
    """The row a sidecar request leaves when it dies after claiming its key and before answering."""
    with session_scope(settings.catalog_url) as session:
        fingerprint = request_fingerprint(endpoint, SidecarRequest(**body).model_dump(mode="json"))
        session.add(IdempotencyKey(org_id=org, key=key, endpoint=endpoint, fingerprint=fingerprint,
                                   claim_token="0" * 32, created_at=datetime.now(UTC) - timedelta(seconds=age_s)))


def test_a_claim_left_by_a_crash_is_taken_over_after_its_lease(make_client, settings: ApiSettings,
                                                               auth: dict[str, str], org: str,
                                                               asset: tuple[str, Path],
                                                               dagster_instance: DagsterInstance) -> None:
    asset_id, path = asset
    client = make_client(settings.model_copy(update={"claim_lease_s": 30, "idempotency_wait_s": 1}))
    url, body = f"/v1/assets/{asset_id}/sidecar", {"org_id": org, "source_uri": path.as_uri()}
    _leave_claim(settings, org, "fresh", f"POST {url}", body, age_s=0)
    _leave_claim(settings, org, "stale", f"POST {url}", body, age_s=31)
    # Within its lease a claim may belong to a request still running: wait, then 409.
    fresh = client.post(url, headers={**auth, "Idempotency-Key": "fresh"}, json=body)
    assert (fresh.status_code, fresh.json()["error"]) == (409, "idempotency_in_progress")
    stale = client.post(url, headers={**auth, "Idempotency-Key": "stale"}, json=body)
    assert stale.status_code == 202, stale.text
    assert client.post(url, headers={**auth, "Idempotency-Key": "stale"}, json=body).json() == stale.json()
    assert _sidecar_runs(dagster_instance, org) == 1


def test_requests_waiting_for_a_key_look_seldom_and_answer_when_it_is_answered(
        settings: ApiSettings, org: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Waiters sit in the process that runs what they wait for: polling the catalog every 0.1 s, 47 of them
    # made that run 6.6 times slower. Here 20 wait 3 s for a first request: each looked 25 times at 0.1 s;
    # with pauses doubling to 1 s and a wake-up as the first one answers, 8 (12 leaves a late timer room).
    looks = []
    real_claim = idempotency._claim

    def counted_claim(*args, **kwargs):  # type: ignore[no-untyped-def]
        looks.append(threading.get_ident())
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(idempotency, "_claim", counted_claim)
    first_started, release = threading.Event(), threading.Event()

    def first() -> dict:
        first_started.set()
        release.wait(30)
        return {"job_id": "job-1"}

    def again() -> dict:
        raise AssertionError("a request waiting for the key started the job again")

    body = {"source_uri": "file:///v.mp4"}
    with ThreadPoolExecutor(21) as pool:
        holder = pool.submit(idempotency.once, settings, org, "k", "POST /x", body, first)
        assert first_started.wait(30)
        waiters = [pool.submit(idempotency.once, settings, org, "k", "POST /x", body, again) for _ in range(20)]
        threading.Timer(3.0, release.set).start()
        assert holder.result(60) == {"job_id": "job-1"}
        assert [waiter.result(60) for waiter in waiters] == [{"job_id": "job-1"}] * 20
    per_waiter = [looks.count(waiter) for waiter in set(looks)]
    assert max(per_waiter) <= 12, sorted(per_waiter)


def test_an_upload_left_committing_by_a_crash_can_be_committed_after_the_lease(
        make_client, settings: ApiSettings, auth: dict[str, str], org: str, clip: Path) -> None:
    client = make_client(settings.model_copy(update={"claim_lease_s": 30}))
    upload_id, path = place(client, auth, org, clip)

    def claimed(age_s: float) -> None:
        with session_scope(settings.catalog_url) as session:
            session.execute(update(Upload).where(Upload.upload_id == upload_id).values(
                status="committing", committed_at=datetime.now(UTC) - timedelta(seconds=age_s)))

    claimed(0)
    held = commit(client, auth, org, upload_id, path)
    assert (held.status_code, held.json()["error"]) == (409, "upload_already_committed")
    claimed(31)
    taken = commit(client, auth, org, upload_id, path)
    assert taken.status_code == 200 and taken.json()["job_id"], taken.text


def test_a_failed_commit_gives_the_upload_back(client: TestClient, auth: dict[str, str], org: str, clip: Path,
                                               settings: ApiSettings) -> None:
    upload_id, path = place(client, auth, org, clip)
    data = path.read_bytes()
    path.write_bytes(data + b"x")  # (a shorter one is an incomplete upload: 409 upload_incomplete)
    failed = commit(client, auth, org, upload_id, path)
    assert (failed.status_code, failed.json()["error"]) == (422, "content_length_mismatch")
    with session_scope(settings.catalog_url) as session:
        assert session.get(Upload, upload_id).status == "pending"
    path.write_bytes(data)
    assert commit(client, auth, org, upload_id, path).status_code == 200
