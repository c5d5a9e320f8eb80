"""On S3, a bucket that does not exist, wrong credentials and an object of the bucket: what the API answers."""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from moto.core.authorization import enable_iam_authentication

from heimdex_api.core.config import ApiSettings
from heimdex_pipeline.storage.s3 import S3Store
from tests.api.support import bearer, make_token
from tests.s3_server import S3Endpoint

# The catalog's backend plays no part here.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _on_s3(settings: ApiSettings, s3: S3Endpoint, bucket: str) -> ApiSettings:
    return settings.model_copy(update={"storage": "s3", "s3_bucket": bucket, "s3_endpoint_url": s3.url})


def _probe(client: TestClient, auth: dict[str, str], org: str, bucket: str) -> dict:
    response = client.post("/v1/ingest/probe", headers=auth,
                           json={"org_id": org, "source_uri": f"s3://{bucket}/uploads/{org}/clip.mp4"})
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] and "Traceback" not in response.text
    return response.json()


def test_missing_bucket_answers_503(make_client: Callable[..., TestClient], settings: ApiSettings, s3: S3Endpoint,
                                    auth: dict[str, str], org: str) -> None:
    client = make_client(_on_s3(settings, s3, "heimdex-no-such-bucket"))
    assert _probe(client, auth, org, "heimdex-no-such-bucket")["error"] == "storage_bucket_missing"
    checked = client.get("/v1/admin/env-check", headers=bearer(make_token(org, ["admin"]))).json()
    assert checked["storage"] is False


def test_wrong_credentials_answer_503(make_client: Callable[..., TestClient], settings: ApiSettings,
                                      s3: S3Endpoint, auth: dict[str, str], org: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3.new_bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all")
    client = make_client(_on_s3(settings, s3, bucket))
    # moto accepts any credentials unless told to check them (its process-wide setting).
    with enable_iam_authentication():
        body = _probe(client, auth, org, bucket)
    assert body["error"] == "storage_access_denied" and "not-the-secret-at-all" not in str(body)


def test_probe_reads_an_object_of_the_bucket(make_client: Callable[..., TestClient], settings: ApiSettings,
                                             s3: S3Endpoint, auth: dict[str, str], org: str, clip) -> None:
    bucket = s3.new_bucket()
    S3Store(bucket, endpoint_url=s3.url).write_file(f"uploads/{org}/clip.mp4", clip, "video/mp4")
    client = make_client(_on_s3(settings, s3, bucket))
    response = client.post("/v1/ingest/probe", headers=auth,
                           json={"org_id": org, "source_uri": f"s3://{bucket}/uploads/{org}/clip.mp4"})
    assert response.status_code == 200, response.text
    assert response.json()["width"] == 160 and response.json()["hash_quality"] == "strong"
    for uri in (f"s3://{bucket}/uploads/{org}/../other/clip.mp4", f"s3://other-bucket/uploads/{org}/clip.mp4",
                f"s3://{bucket}/uploads/{org}/a\x01.mp4", f"https://{bucket}.s3.amazonaws.com/uploads/{org}/clip.mp4"):
        refused = client.post("/v1/ingest/probe", headers=auth, json={"org_id": org, "source_uri": uri})
        assert (refused.status_code, refused.json()["error"]) == (422, "invalid_source_uri"), refused.text
