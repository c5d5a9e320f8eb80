"""No client-given URL is ever fetched: every source URI that is not a local file answers 422, with no connection."""

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from heimdex_pipeline.storage.s3 import S3Store
from tests.api.live import Listener
from tests.api.support import init_upload, uri_path
from tests.s3_server import S3Endpoint

# The declared length of the upload the URIs are committed against.
UPLOAD_LENGTH = 100


def _uris(port: int, folder: Path) -> dict[str, str]:
    target = f"127.0.0.1:{port}"
    return {
        "http": f"http://{target}/clip.mp4",
        "https": f"https://{target}/clip.mp4",
        "ftp": f"ftp://{target}/clip.mp4",
        "gopher": f"gopher://{target}/_GET%20/",
        "tcp": f"tcp://{target}",
        "rtmp": f"rtmp://{target}/live/clip",
        "hls+http": f"hls+http://{target}/index.m3u8",
        "concat": f"concat:http://{target}/a.mp4|http://{target}/b.mp4",
        "subfile": f"subfile,,start,0,end,0,,:http://{target}/clip.mp4",
        "async": f"async:http://{target}/clip.mp4",
        "data": "data:video/mp4;base64,AAAAIGZ0eXBpc29t",
        "scheme-relative": f"//{target}/clip.mp4",
        "file-with-host": f"file://{target}{folder}/clip.mp4",
        "file-metadata-host": "file://169.254.169.254/latest/meta-data/",
        "file-opaque-http": f"file:http://{target}/clip.mp4",
        "file-unc": f"file:////{target}/clip.mp4",
        "file-query": f"{(folder / 'clip.mp4').as_uri()}?url=http://{target}/",
    }


@pytest.fixture
def listener() -> Iterator[Listener]:
    """The listener the API is pointed at; it must see no connection but the test's own last one."""
    with Listener() as listening:
        yield listening
        # The listener does count: one connection of the test's own is seen.
        socket.create_connection(("127.0.0.1", listening.port), timeout=5).close()
        deadline = time.monotonic() + 5
        while listening.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listening.connections == 1


@pytest.fixture
def upload(client: TestClient, auth: dict[str, str], org: str) -> tuple[str, Path]:
    answer = init_upload(client, auth, org, "clip.mp4", UPLOAD_LENGTH)
    return answer["upload_id"], uri_path(answer["presigned"]["asset_uri"]).parent


def _post_everywhere(client: TestClient, auth: dict[str, str], org: str, upload_id: str, asset_id: str,
                     uri: str) -> list:
    """The URI given to every route that takes one; the job routes on an asset the org holds, so that
    the URI is what they judge (any other asset id is a 404 whatever the URI)."""
    body = {"org_id": org, "source_uri": uri}
    return [client.post("/v1/ingest/probe", headers=auth, json=body),
            client.post("/v1/ingest/commit", headers=auth, json={**body, "upload_id": upload_id}),
            client.post(f"/v1/assets/{asset_id}/sidecar", headers=auth, json=body),
            client.post(f"/v1/assets/{asset_id}/thumbnails", headers=auth, json=body)]


def test_no_url_a_client_gives_is_fetched(client: TestClient, auth: dict[str, str], org: str, snapshot,
                                          listener: Listener, upload: tuple[str, Path],
                                          asset: tuple[str, Path]) -> None:
    upload_id, folder = upload
    before = snapshot()
    for case, uri in _uris(listener.port, folder).items():
        for response in _post_everywhere(client, auth, org, upload_id, asset[0], uri):
            assert (response.status_code, response.json()["error"]) == (422, "invalid_source_uri"), (case, uri)
    time.sleep(0.5)  # a connection in flight would be accepted by now
    assert listener.connections == 0
    before.assert_unchanged()


@pytest.mark.parametrize("name", ["index.m3u8", "clip.mp4"])
def test_a_playlist_naming_a_url_is_not_followed(client: TestClient, auth: dict[str, str], org: str,
                                                 listener: Listener, upload: tuple[str, Path],
                                                 asset: tuple[str, Path], name: str) -> None:
    upload_id, folder = upload
    segment = f"http://127.0.0.1:{listener.port}/segment.ts"
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{segment}\n#EXT-X-ENDLIST\n"
    # As long as the upload declared (a comment fills it), so that the commit judges what the file is,
    # not that it is shorter than announced (409 upload_incomplete).
    (folder / name).write_text(playlist + "#" * (UPLOAD_LENGTH - len(playlist) - 1) + "\n")
    for response in _post_everywhere(client, auth, org, upload_id, asset[0], (folder / name).as_uri()):
        assert response.status_code == 422, response.text
    time.sleep(0.5)
    assert listener.connections == 0


def test_on_s3_no_url_a_client_gives_is_fetched(make_client: Callable[..., TestClient], settings: ApiSettings,
                                                s3: S3Endpoint, auth: dict[str, str], org: str,
                                                listener: Listener, tmp_path: Path) -> None:
    """On S3 the probe opens HTTP, but only the store's own presigned URLs: a client's http(s) URL is
    refused before anything is fetched, and a playlist in the bucket naming one is not followed."""
    bucket = s3.new_bucket()
    client = make_client(settings.model_copy(update={"storage": "s3", "s3_bucket": bucket, "s3_endpoint_url": s3.url}))
    upload_id = init_upload(client, auth, org, "clip.mp4", 100)["upload_id"]
    for case, uri in _uris(listener.port, tmp_path).items():
        body = {"org_id": org, "source_uri": uri}
        for response in (client.post("/v1/ingest/probe", headers=auth, json=body),
                         client.post("/v1/ingest/commit", headers=auth, json={**body, "upload_id": upload_id})):
            assert (response.status_code, response.json()["error"]) == (422, "invalid_source_uri"), (case, uri)
    segment = f"http://127.0.0.1:{listener.port}/segment.ts"
    store = S3Store(bucket, endpoint_url=s3.url)
    for name in ("index.m3u8", "clip.mp4"):
        store.write_bytes(f"uploads/{org}/{name}",
                          f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{segment}\n#EXT-X-ENDLIST\n".encode())
        response = client.post("/v1/ingest/probe", headers=auth,
                               json={"org_id": org, "source_uri": store.uri(f"uploads/{org}/{name}")})
        assert (response.status_code, response.json()["error"]) == (422, "unsupported_format"), response.text
    time.sleep(0.5)  # a connection in flight would be accepted by now
    assert listener.connections == 0
