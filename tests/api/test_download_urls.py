"""The `url` fields of asset, sidecar and job answers fetch the stored bytes, on both backends.

Local storage: the API's own signed `GET /v1/files/...`, which takes no token and opens exactly
the one file it was signed for. S3: the bucket's presigned GET, fetched over real HTTP from
moto's S3 server.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.signing import url_signer
from heimdex_api.services.urls import DOWNLOAD
from heimdex_pipeline.storage import store_from_settings
from heimdex_pipeline.storage.layout import org_key
from tests.api.support import SECRET, bearer, commit, init_upload, make_token, place
from tests.s3_server import S3Endpoint

# URLs are signed and served the same whatever the catalog's database (the other API tests run both).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _asset(client: TestClient, auth: dict[str, str], asset_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/assets/{asset_id}", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


def _fetch(client: TestClient, url: str, **headers: str) -> httpx.Response:
    """GET an absolute URL of the API through the test client, without any token."""
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("http", "testserver"), url
    return client.get(f"{parts.path}?{parts.query}", headers=headers)


def _signed(settings: ApiSettings, org_id: str, storage_key: str, subject: str | None = None,
            expires: int | None = None) -> str:
    """A files URL signed with the API's own key, for any subject (as the API never would)."""
    subject = f"{org_id}/{storage_key}" if subject is None else subject
    query = url_signer(settings).sign(DOWNLOAD, org_id, subject, expires or int(time.time()) + 600)
    # Every `/` encoded: a client would remove `..` segments before sending; the server decodes them.
    return f"/v1/files/{quote(org_id, safe='')}/{quote(storage_key, safe='')}?{urlencode(query)}"


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


# ---------------------------------------------------------------------------------------------
# Local storage: the API serves the bytes
# ---------------------------------------------------------------------------------------------

def test_asset_urls_fetch_the_stored_bytes_without_a_token(
        client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path], settings: ApiSettings) -> None:
    store = store_from_settings(settings)
    answer = _asset(client, auth, asset[0])
    assert answer["status"] == "ready" and answer["thumbnails"]
    sidecar = _fetch(client, answer["sidecar"]["url"])
    assert sidecar.status_code == 200, sidecar.text
    assert sidecar.headers["content-type"] == "application/json"
    assert sidecar.content == store.read_bytes(org_key(org, answer["sidecar"]["storage_key"]))
    for entry in answer["thumbnails"]:
        image = _fetch(client, entry["url"])
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/jpeg" and image.headers["etag"]
        assert image.content == store.read_bytes(org_key(org, entry["storage_key"]))
        assert image.content[:3] == b"\xff\xd8\xff"
    # Range requests, as a browser or a resuming client makes them.
    part = _fetch(client, answer["thumbnails"][0]["url"], Range="bytes=2-9")
    assert part.status_code == 206
    assert part.content == store.read_bytes(org_key(org, answer["thumbnails"][0]["storage_key"]))[2:10]


def test_job_and_sidecar_answers_carry_urls_and_the_stored_sidecar_is_unchanged(
        client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path], settings: ApiSettings) -> None:
    asset_id, path = asset
    store = store_from_settings(settings)
    job = client.post(f"/v1/assets/{asset_id}/thumbnails", headers=auth,
                      json={"org_id": org, "source_uri": path.as_uri(), "policy": {"max_count": 3}})
    assert job.status_code == 202, job.text
    result = client.get(job.json()["location"], headers=auth).json()["result"]
    stored = store.read_bytes(org_key(org, f"sidecars/{asset_id}.vna.json"))
    assert _fetch(client, result["sidecar_url"]).content == stored
    assert result["thumbnails"] and all(_fetch(client, entry["url"]).status_code == 200
                                        for entry in result["thumbnails"])

    document = client.get(f"/v1/assets/{asset_id}/sidecar", headers=auth).json()
    assert [entry["storage_key"] for entry in document["thumbnails"]] == \
        [entry["storage_key"] for entry in result["thumbnails"]]
    for entry in document["thumbnails"]:
        assert _fetch(client, entry["url"]).content == store.read_bytes(org_key(org, entry["storage_key"]))
    # The `url`s are added to the answer, never written into the stored document.
    assert b'"url"' not in store.read_bytes(org_key(org, f"sidecars/{asset_id}.vna.json"))


def test_urls_start_with_the_public_url_when_it_is_set(
        make_client: Callable[..., TestClient], settings: ApiSettings, auth: dict[str, str], org: str,
        asset: tuple[str, Path]) -> None:
    behind_proxy = make_client(settings.model_copy(update={"public_url": "https://heimdex.example.com/api"}))
    answer = _asset(behind_proxy, auth, asset[0])
    url = urlsplit(answer["sidecar"]["url"])
    assert (url.scheme, url.netloc) == ("https", "heimdex.example.com")
    assert url.path == f"/api/v1/files/{org}/sidecars/{asset[0]}.vna.json"
    assert set(parse_qs(url.query)) == {"expires", "sig"}


def test_a_tampered_or_expired_url_answers_403(
        client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path], settings: ApiSettings) -> None:
    thumbnails = _asset(client, auth, asset[0])["thumbnails"]
    assert len(thumbnails) >= 2, "the clip has two scenes"
    url = urlsplit(thumbnails[0]["url"])
    query = {name: values[0] for name, values in parse_qs(url.query).items()}
    flipped = query["sig"][:-1] + ("0" if query["sig"][-1] != "0" else "1")
    for bad in ({**query, "sig": flipped}, {**query, "expires": str(int(query["expires"]) + 1)},
                {"expires": query["expires"]}, {}):
        response = client.get(f"{url.path}?{urlencode(bad)}")
        assert _error(response) == (403, "url_signature_invalid"), bad
    # Another file of the same org under the same signature.
    other = urlsplit(thumbnails[1]["url"]).path
    assert _error(client.get(f"{other}?{url.query}")) == (403, "url_signature_invalid")
    storage_key = url.path.split(f"/v1/files/{org}/", 1)[1]
    expired = _signed(settings, org, storage_key, expires=int(time.time()) - 1)
    assert _error(client.get(expired)) == (403, "url_expired")
    # A URL signed with another key (another deployment's, or a guess).
    forged = settings.model_copy(update={"url_signing_key": SecretStr(SECRET[::-1])})
    assert _error(client.get(_signed(forged, org, storage_key))) == (403, "url_signature_invalid")


def test_another_orgs_file_cannot_be_reached_with_a_signed_url(
        make_client: Callable[..., TestClient], client: TestClient, auth: dict[str, str], org: str,
        asset: tuple[str, Path], settings: ApiSettings) -> None:
    other_org = f"{org}-b"
    other_auth = bearer(make_token(other_org, ["assets:read", "assets:write"]))
    upload_id, path = place(client, other_auth, other_org, asset[1])
    other_asset = commit(client, other_auth, other_org, upload_id, path).json()["asset_id"]
    mine = urlsplit(_asset(client, auth, asset[0])["sidecar"]["url"])
    # The org's URL, pointed at the other org's folder, or at the other org's sidecar through `..`.
    theirs = f"/v1/files/{other_org}/sidecars/{other_asset}.vna.json"
    assert _error(client.get(f"{theirs}?{mine.query}")) == (403, "url_signature_invalid")
    climbing = f"/v1/files/{org}/..%2F{other_org}%2Fsidecars%2F{other_asset}.vna.json"
    assert _error(client.get(f"{climbing}?{mine.query}")) == (403, "url_signature_invalid")
    # Even a valid signature (the API's key) opens nothing outside the org's sidecars and thumbnails.
    outside = [(org, f"../{other_org}/sidecars/{other_asset}.vna.json"),
               (org, f"probes/{asset[0]}.probe.json"),
               ("uploads", f"{org}/{upload_id}/clip.mp4"),
               (org, f"../uploads/{other_org}/{upload_id}/clip.mp4")]
    for org_id, storage_key in outside:
        response = client.get(_signed(settings, org_id, storage_key))
        assert _error(response) == (404, "file_not_found"), (org_id, storage_key)


def test_path_traversal_is_refused(client: TestClient, org: str, settings: ApiSettings) -> None:
    database = settings.derived_root / "heimdex.db"
    settings.derived_root.mkdir(parents=True, exist_ok=True)
    database.touch(exist_ok=True)
    for raw in ("..%2Fheimdex.db", "sidecars/..%2F..%2Fheimdex.db", "%2E%2E/%2E%2E/etc/passwd",
                "sidecars%2F..%2F..%2F..%2Fetc%2Fpasswd"):
        unsigned = client.get(f"/v1/files/{org}/{raw}")
        assert _error(unsigned) == (403, "url_signature_invalid"), raw
        # Signed for the decoded path, as if the key had leaked: the key checks refuse it.
        decoded = raw.replace("%2F", "/").replace("%2E", ".")
        query = urlencode(url_signer(settings).sign(DOWNLOAD, org, f"{org}/{decoded}", int(time.time()) + 60))
        signed = client.get(f"/v1/files/{org}/{raw}?{query}")
        assert _error(signed) == (404, "file_not_found"), raw


def test_a_removed_file_answers_404(
        client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path], settings: ApiSettings) -> None:
    entry = _asset(client, auth, asset[0])["thumbnails"][-1]
    store_from_settings(settings).delete(org_key(org, entry["storage_key"]))
    assert _error(_fetch(client, entry["url"])) == (404, "file_not_found")


def test_a_symlink_in_the_derived_folder_is_no_file(
        client: TestClient, auth: dict[str, str], org: str, asset: tuple[str, Path], settings: ApiSettings,
        tmp_path: Path) -> None:
    # Planted by someone with the server's disk: a link out of the root answered 500 (the store's
    # InvalidKeyError), and one to the upload served the video as `image/jpeg`. Both answer as a
    # missing file, and so does a thumbnail folder that is a link.
    first, second = _asset(client, auth, asset[0])["thumbnails"][:2]
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"\xff\xd8\xff not the store's")
    for entry, target in ((first, outside), (second, asset[1])):
        path = settings.derived_root.resolve() / org_key(org, entry["storage_key"])
        path.unlink()
        path.symlink_to(target)
        assert _error(_fetch(client, entry["url"])) == (404, "file_not_found"), target
    folder = (settings.derived_root.resolve() / org_key(org, first["storage_key"])).parent
    copy = tmp_path / "thumbnails-elsewhere"
    folder.rename(copy)
    (copy / Path(first["storage_key"]).name).unlink()
    (copy / Path(first["storage_key"]).name).write_bytes(b"\xff\xd8\xff")
    folder.symlink_to(copy, target_is_directory=True)
    assert _error(_fetch(client, first["url"])) == (404, "file_not_found")


# ---------------------------------------------------------------------------------------------
# S3 storage: the bucket's presigned GET
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def s3_settings(s3: S3Endpoint, settings: ApiSettings) -> ApiSettings:
    bucket = s3.new_bucket()
    return settings.model_copy(update={"storage": "s3", "s3_bucket": bucket, "s3_endpoint_url": s3.url})


def test_s3_urls_are_presigned_gets_of_the_bucket(
        make_client: Callable[..., TestClient], s3_settings: ApiSettings, s3: S3Endpoint, auth: dict[str, str],
        org: str, clip: Path) -> None:
    client = make_client(s3_settings)
    store = store_from_settings(s3_settings)
    init = init_upload(client, auth, org, "clip.mp4", clip.stat().st_size)
    asset_uri = init["presigned"]["asset_uri"]
    assert asset_uri.startswith(f"s3://{s3_settings.s3_bucket}/")
    store.write_file(store.key_of(asset_uri), clip, "video/mp4")
    committed = client.post("/v1/ingest/commit", headers=auth,
                            json={"org_id": org, "upload_id": init["upload_id"], "source_uri": asset_uri})
    assert committed.status_code == 200, committed.text
    asset_id = committed.json()["asset_id"]

    answer = _asset(client, auth, asset_id)
    assert answer["status"] == "ready" and answer["thumbnails"]
    urls = [(answer["sidecar"]["url"], answer["sidecar"]["storage_key"])]
    urls += [(entry["url"], entry["storage_key"]) for entry in answer["thumbnails"]]
    for url, storage_key in urls:
        assert url.startswith(s3.url) and "X-Amz-Signature=" in url, url
        fetched = httpx.get(url)  # real HTTP to the S3 endpoint, no credentials but the URL's
        assert fetched.status_code == 200, fetched.text
        assert fetched.content == store.read_bytes(org_key(org, storage_key))
    job = client.get(f"/v1/jobs/{committed.json()['job_id']}", headers=auth).json()
    assert httpx.get(job["result"]["sidecar_url"]).content == store.read_bytes(
        org_key(org, answer["sidecar"]["storage_key"]))
    # The API's own files route serves nothing of an S3 store, whatever the signature.
    assert _error(client.get(_signed(s3_settings, org, answer["sidecar"]["storage_key"]))) == \
        (404, "file_not_found")
