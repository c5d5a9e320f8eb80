"""Health, the admin's env-check, OpenAPI, error shape, body limits and the legacy endpoint's flag."""

from datetime import datetime

from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from tests.api.support import bearer, make_token


def test_health_needs_no_token(client: TestClient) -> None:
    response = client.get("/v1/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert datetime.fromisoformat(response.json()["time"]).tzinfo is not None


def test_env_check_for_admins(client: TestClient, org: str) -> None:
    response = client.get("/v1/admin/env-check", headers=bearer(make_token(org, ["admin"])))
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in ("ffmpeg", "ffprobe", "pyscenedetect")} == \
        {"ffmpeg": True, "ffprobe": True, "pyscenedetect": True}
    forbidden = client.get("/v1/admin/env-check", headers=bearer(make_token(org)))
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "missing_scope"


def test_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/ingest/init", "/v1/ingest/commit", "/v1/ingest/probe", "/v1/jobs/{job_id}",
            "/v1/assets/{asset_id}", "/v1/assets/{asset_id}/sidecar", "/v1/assets/{asset_id}/thumbnails"} <= set(paths)
    assert "/metadata" not in paths


def test_unknown_route_and_method_answer_in_the_error_shape(client: TestClient) -> None:
    assert client.get("/v1/nothing").json() == {"error": "not_found", "detail": "Not Found"}
    response = client.delete("/v1/health")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


def test_oversized_body_answers_413(client: TestClient, org: str, auth: dict[str, str]) -> None:
    response = client.post("/v1/ingest/init", headers={**auth, "Content-Type": "application/json"},
                           content=b'{"org_id": "' + b"x" * 100_000 + b'"}')
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


def test_malformed_json_answers_422(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/ingest/init", headers={**auth, "Content-Type": "application/json"}, content=b"{")
    assert response.status_code == 422 and response.json()["error"] == "validation_error"


def test_legacy_metadata_is_absent_by_default(client: TestClient, auth: dict[str, str], clip) -> None:
    response = client.post("/metadata", headers=auth, files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")})
    assert response.status_code in (404, 405)


def test_legacy_metadata_behind_its_flag(make_client, settings: ApiSettings, auth: dict[str, str], clip) -> None:
    client = make_client(settings.model_copy(update={"enable_legacy": True}))
    assert "/metadata" in client.get("/openapi.json").json()["paths"]
    response = client.post("/metadata", headers=auth, files={"file": ("clip.mp4", clip.read_bytes(), "video/mp4")})
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "clip.mp4" and response.json()["width"] == 160
    text = client.post("/metadata", headers=auth, files={"file": ("notes.mp4", b"just text", "video/mp4")})
    assert text.status_code == 422 and text.json()["error"] == "unreadable_media"
    assert client.post("/metadata", files={"file": ("clip.mp4", b"x", "video/mp4")}).status_code == 401
