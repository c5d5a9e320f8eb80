"""Fault 6: the S3 endpoint goes away under an API and a pipeline on S3 storage, then comes back.

While it is down, every request that needs the bucket answers 503 `storage_unavailable` with
`Retry-After`, in seconds and without a traceback; the rest of the API (health, init) keeps
answering; a run retries its step under the retry policy. Once it is back, the same
requests succeed with nothing lost. moto keeps its buckets in the test process, so a server
restarted on the same port serves them again, as a restarted MinIO serves its disk.
"""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from dagster import (
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    ExecuteInProcessResult,
    instance_for_test,
    materialize,
)
from moto.server import ThreadedMotoServer

from heimdex_api.core.config import ApiSettings
from heimdex_api.main import create_app
from heimdex_pipeline.assets import VIDEO_CHECKS, media_qc, probe_metadata, scene_sidecar, storyboard, thumbnails
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.core.settings import PipelineSettings
from heimdex_pipeline.resources import MediaStorage, resources_from
from heimdex_pipeline.runs.tags import PARTITION_TAG
from tests.api.live import serve
from tests.api.support import SECRET, bearer, make_token
from tests.catalogue import catalogue_upload
from tests.dagster_home import free_port
from tests.s3_server import S3Endpoint

ORG = "org-fault"
# Connection refused is seen at once; botocore's three attempts with backoff stay well inside this.
ANSWER_WITHIN_S = 10


class Endpoint:
    """A moto S3 server on a fixed port of 127.0.0.1 that can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def endpoint(s3: S3Endpoint) -> Iterator[Endpoint]:
    """A private endpoint (the session's `s3` fixture sets the AWS credentials it is reached with)."""
    private = Endpoint()
    private.start()
    yield private
    private.stop()


@pytest.fixture
def dagster(tmp_path: Path) -> Iterator[DagsterInstance]:
    """A real Dagster instance of the test's own (SQLite storage)."""
    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance


@pytest.fixture(scope="module")
def clip(clips: Callable[..., tuple[Path, list[float]]]) -> Path:
    """A 2 s clip with one cut."""
    return clips((1.0, 1.0), size="160x120")[0]


def _timed(send) -> tuple[httpx.Response, float]:  # noqa: ANN001 (a request thunk)
    started = time.monotonic()
    response = send()
    return response, time.monotonic() - started


@pytest.mark.slow
def test_the_api_answers_503_while_s3_is_down_and_recovers(endpoint: Endpoint, dagster: DagsterInstance,
                                                           tmp_path: Path, clip: Path) -> None:
    bucket = S3Endpoint(endpoint.url).new_bucket()
    database_url = f"sqlite:///{tmp_path / 'heimdex.db'}"
    migrate(database_url)
    settings = ApiSettings(derived_root=tmp_path / "derived", database_url=database_url, jwt_secret=SECRET,
                           env="development", job_queue_backend="immediate", migrate_on_start=False,
                           url_signing_key="u" * 32, storage="s3", s3_bucket=bucket, s3_endpoint_url=endpoint.url)
    auth = bearer(make_token(ORG, ["assets:read", "assets:write"]))
    data = clip.read_bytes()
    with serve(create_app(settings, instance=dagster)) as api, httpx.Client(base_url=api, timeout=60) as http:
        def init() -> dict:
            answer = http.post("/v1/ingest/init", headers=auth, json={
                "org_id": ORG, "source_name": "clip.mp4", "content_length": len(data), "content_type": "video/mp4"})
            assert answer.status_code == 201, answer.text
            return answer.json()

        def commit(answer: dict) -> httpx.Response:
            return http.post("/v1/ingest/commit", headers=auth, json={
                "org_id": ORG, "upload_id": answer["upload_id"], "source_uri": answer["presigned"]["asset_uri"]})

        first = init()
        assert httpx.put(first["presigned"]["upload_url"], content=data,
                         headers=first["presigned"]["upload_headers"]).status_code == 200
        committed = commit(first)
        assert committed.status_code == 200, committed.text
        asset_id = committed.json()["asset_id"]
        assert http.get(f"/v1/jobs/{committed.json()['job_id']}", headers=auth).json()["status"] == "succeeded"
        # Uploaded before the outage, committed during it.
        second = init()
        assert httpx.put(second["presigned"]["upload_url"], content=data[:-1] + b"\x00",
                         headers=second["presigned"]["upload_headers"]).status_code == 200

        endpoint.stop()
        down = {
            "asset": lambda: http.get(f"/v1/assets/{asset_id}", headers=auth),
            "sidecar": lambda: http.get(f"/v1/assets/{asset_id}/sidecar", headers=auth),
            "commit": lambda: commit(second),
            "probe": lambda: http.post("/v1/ingest/probe", headers=auth, json={
                "org_id": ORG, "source_uri": second["presigned"]["asset_uri"]}),
        }
        took_s = {}
        for name, send in down.items():
            response, took_s[name] = _timed(send)
            took = took_s[name]
            assert response.status_code == 503, (name, response.text)
            assert response.json()["error"] == "storage_unavailable", (name, response.text)
            assert response.headers["Retry-After"] and "Traceback" not in response.text
            assert "127.0.0.1" not in response.text and bucket not in response.text, "internal names leak"
            assert took < ANSWER_WITHIN_S, (name, took)
        # What does not need the bucket keeps answering (a succeeded job's result is read from it).
        assert http.get("/v1/health").status_code == 200
        assert init()["presigned"]["upload_url"], "a presigned URL is signed without the endpoint"

        endpoint.start()
        restarted_at = time.monotonic()
        assert http.get(f"/v1/assets/{asset_id}", headers=auth).json()["status"] == "ready"
        print("\nfault 6 figures (s): 503 answered in " + ", ".join(f"{k} {v:.2f}" for k, v in took_s.items())
              + f"; first read after the restart {time.monotonic() - restarted_at:.2f}")
        recommitted = commit(second)
        assert recommitted.status_code == 200, recommitted.text
        assert http.get(f"/v1/jobs/{recommitted.json()['job_id']}", headers=auth).json()["status"] == "succeeded"


def _uploaded_on_s3(endpoint: Endpoint, dagster: DagsterInstance, tmp_path: Path, clip: Path) -> tuple[str, dict]:
    """The clip catalogued in a new bucket of the endpoint, and the definitions' resources on it: its asset id and them."""
    storage = MediaStorage(backend="s3", bucket=S3Endpoint(endpoint.url).new_bucket(), endpoint_url=endpoint.url)
    catalog_url = f"sqlite:///{tmp_path / 'heimdex.db'}"
    migrate(catalog_url)
    asset_id = catalogue_upload(storage.store, catalog_url, dagster, clip, ORG)
    return asset_id, {**resources_from(PipelineSettings(_env_file=None, database_url=catalog_url)), "storage": storage}


@pytest.mark.slow
def test_a_step_retries_while_s3_is_down(endpoint: Endpoint, dagster: DagsterInstance, tmp_path: Path,
                                         clip: Path) -> None:
    """A step that cannot reach the bucket is retried under the retry policy, not failed at once."""
    asset_id, resources = _uploaded_on_s3(endpoint, dagster, tmp_path, clip)

    endpoint.stop()
    failed = materialize([probe_metadata], partition_key=asset_id, resources=resources, instance=dagster,
                         raise_on_error=False)
    assert not failed.success
    retried = [event for event in failed.all_events if event.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert retried, "the outage must be retried, not failed outright"
    print(f"\nfault 6 figures: {len(retried)} retries of probe_metadata while the endpoint was down")
    # The step's error says the store failed, without its address or a signed URL.
    error = str(failed.get_step_failure_events()[0].event_specific_data.error)
    assert "127.0.0.1" not in error and "X-Amz-" not in error

    endpoint.start()
    assert materialize([probe_metadata, scene_sidecar, thumbnails], partition_key=asset_id, resources=resources,
                       instance=dagster).success


@pytest.mark.slow
def test_checks_retry_while_s3_is_down(endpoint: Endpoint, dagster: DagsterInstance, tmp_path: Path,
                                       clip: Path) -> None:
    """A check step that cannot reach the bucket is retried as the assets' steps are, then passes once it is back."""
    asset_id, resources = _uploaded_on_s3(endpoint, dagster, tmp_path, clip)
    definitions = [probe_metadata, scene_sidecar, thumbnails, storyboard, media_qc, *VIDEO_CHECKS]
    assert materialize(definitions, selection=[probe_metadata, scene_sidecar, thumbnails, storyboard, media_qc],
                       partition_key=asset_id, resources=resources, instance=dagster).success

    def checks() -> ExecuteInProcessResult:
        return materialize(definitions, selection=AssetSelection.checks(*VIDEO_CHECKS), tags={PARTITION_TAG: asset_id},
                           resources=resources, instance=dagster, raise_on_error=False)

    endpoint.stop()
    failed = checks()
    assert not failed.success
    retried = {event.step_key for event in failed.all_events if event.event_type == DagsterEventType.STEP_UP_FOR_RETRY}
    assert retried == {"scene_sidecar_checks", "thumbnails_checks", "storyboard_checks", "media_qc_checks"}
    # Nothing was judged from a store it could not read.
    assert not [event for event in failed.all_events if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION]

    endpoint.start()
    passed = checks()
    assert passed.success
    evaluations = {event.asset_check_evaluation_data.check_name: event.asset_check_evaluation_data.passed
                   for event in passed.all_events if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION}
    assert evaluations == {"sidecar_matches_schema": True, "scenes_cover_the_video": True,
                           "thumbnails_are_stored": True, "storyboard_matches_sprite": True,
                           "audio_is_heard": False, "loudness_on_target": True, "no_long_black_or_freeze": True}
