"""No error answer holds the derived root or any other absolute server path, whatever the bad source."""

import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from tests.api.support import bearer, init_upload, make_token, place, uri_path

ASSET = "v_" + "0" * 32
CASES = ["outside", "dot-dot", "encoded-dot-dot", "symlink-out", "other-org", "other-upload", "missing", "directory",
         "not-a-video", "empty", "symlink-loop", "long-segment", "other-host", "size-mismatch"]


@pytest.fixture
def sources(client: TestClient, auth: dict[str, str], org: str, settings: ApiSettings, clip: Path,
            tmp_path: Path) -> tuple[str, dict[str, str]]:
    """An upload of the org, and a source URI for each case, every file made for real."""
    answer = init_upload(client, auth, org, "clip.mp4", clip.stat().st_size)
    folder = uri_path(answer["presigned"]["asset_uri"]).parent
    outside = tmp_path / "outside.mp4"
    shutil.copyfile(clip, outside)
    (folder / "link.mp4").symlink_to(outside)
    (folder / "loop-a.mp4").symlink_to(folder / "loop-b.mp4")
    (folder / "loop-b.mp4").symlink_to(folder / "loop-a.mp4")
    (folder / "notes.mp4").write_text("this is not a video\n")
    (folder / "empty.mp4").touch()
    (folder / "sub").mkdir()
    (folder / "bigger.mp4").write_bytes(clip.read_bytes() + b"\0")
    _, other_org_file = place(client, bearer(make_token("org-other")), "org-other", clip)
    _, other_upload_file = place(client, auth, org, clip)
    return answer["upload_id"], {
        "outside": outside.as_uri(),
        "dot-dot": f"file://{folder}/../../../{outside.name}",
        "encoded-dot-dot": f"file://{folder}/%2e%2e/%2e%2e/%2e%2e/{outside.name}",
        "symlink-out": (folder / "link.mp4").as_uri(),
        "other-org": other_org_file.as_uri(),
        "other-upload": other_upload_file.as_uri(),
        "missing": (folder / "missing.mp4").as_uri(),
        "directory": (folder / "sub").as_uri(),
        "not-a-video": (folder / "notes.mp4").as_uri(),
        "empty": (folder / "empty.mp4").as_uri(),
        "symlink-loop": (folder / "loop-a.mp4").as_uri(),
        "long-segment": (folder / ("x" * 300 + ".mp4")).as_uri(),
        "other-host": f"file://fileserver{folder}/clip.mp4",
        "size-mismatch": (folder / "bigger.mp4").as_uri(),
    }


def _server_paths(settings: ApiSettings, tmp_path: Path) -> set[str]:
    root = settings.derived_root
    forms = {str(root), str(root.resolve()), os.path.realpath(root), str(tmp_path), os.path.realpath(tmp_path)}
    return forms | {quote(form) for form in forms} | {Path(form).as_uri() for form in forms}


@pytest.mark.parametrize("case", CASES)
def test_no_error_names_a_server_path(client: TestClient, auth: dict[str, str], org: str, settings: ApiSettings,
                                      tmp_path: Path, sources: tuple[str, dict[str, str]], case: str) -> None:
    upload_id, uris = sources
    body = {"org_id": org, "source_uri": uris[case]}
    answers = [client.post("/v1/ingest/probe", headers=auth, json=body),
               client.post("/v1/ingest/commit", headers=auth, json={**body, "upload_id": upload_id}),
               client.post(f"/v1/assets/{ASSET}/sidecar", headers=auth, json=body),
               client.post(f"/v1/assets/{ASSET}/thumbnails", headers=auth, json=body)]
    errors = [response for response in answers if response.status_code >= 400]
    # Probe may read a file that a commit refuses (another upload's, one of another size).
    assert len(errors) >= 3, case
    for response in errors:
        assert response.status_code < 500, (case, response.request.url.path, response.text)
        assert set(response.json()) == {"error", "detail"}
        leaked = [path for path in _server_paths(settings, tmp_path) if path in response.text]
        assert not leaked, (case, response.request.url.path, response.text)
