"""Oversized request bodies answer 413 `payload_too_large` over real HTTP, declared or chunked."""

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from dagster import DagsterInstance

from heimdex_api.core.config import ApiSettings
from heimdex_api.main import create_app
from tests.api.live import serve
from tests.api.support import bearer, make_token

MB = 1024 * 1024


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    # A generator has no length: httpx sends it with `Transfer-Encoding: chunked`, no Content-Length.
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _multipart(name: str, payload: bytes, boundary: str = "heimdex-test-boundary") -> tuple[bytes, str]:
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def base_url(settings: ApiSettings, dagster_instance: DagsterInstance) -> Iterator[str]:
    limited = settings.model_copy(update={"enable_legacy": True, "max_legacy_upload_bytes": 256 * 1024})
    with serve(create_app(limited, instance=dagster_instance)) as url:
        yield url


def _post(base_url: str, path: str, headers: dict[str, str], content: bytes | Iterator[bytes]) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=60) as http:
        request = http.build_request("POST", path, headers=headers, content=content)
        chunked = "content-length" not in request.headers
        response = http.send(request)
    assert chunked == (not isinstance(content, bytes)), "the request was not sent as intended"
    return response


def _init_body(org: str, padding: int) -> bytes:
    return json.dumps({"org_id": org, "source_name": "a.mp4", "content_length": 10,
                       "content_type": "x" * padding}).encode()


@pytest.mark.parametrize("send", [lambda body: body, _chunks], ids=["content-length", "chunked"])
def test_a_json_body_of_1_mb_answers_413(base_url: str, org: str, send: Callable) -> None:
    headers = {**bearer(make_token(org)), "Content-Type": "application/json"}
    response = _post(base_url, "/v1/ingest/init", headers, send(_init_body(org, MB)))
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"


@pytest.mark.parametrize("send", [lambda body: body, _chunks], ids=["content-length", "chunked"])
def test_a_legacy_upload_above_its_limit_answers_413(base_url: str, org: str, send: Callable) -> None:
    body, content_type = _multipart("big.mp4", b"\0" * MB)
    response = _post(base_url, "/metadata", {**bearer(make_token(org)), "Content-Type": content_type}, send(body))
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"


def test_a_chunked_body_within_the_limit_is_served(base_url: str, org: str) -> None:
    headers = {**bearer(make_token(org)), "Content-Type": "application/json"}
    response = _post(base_url, "/v1/ingest/init", headers, _chunks(_init_body(org, 100), size=16))
    assert response.status_code == 201, response.text
