"""Hostile media through the API: playlists naming another org's file, enormous frames and long
videos are refused at commit and probe with their own 422 code, registering nothing."""

import tempfile
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from tests.api.support import bearer, commit, init_upload, make_token, place, uri_path
from tests.media.hostile import KINDS, NOT_A_FORMAT, add_neighbours, crafted, huge_mjpeg


@pytest.fixture
def other_org_file(client: TestClient, clip: Path) -> Path:
    """Org A's uploaded video, at its path on the server."""
    org_a = f"org-a-{uuid4().hex[:8]}"
    _, path = place(client, bearer(make_token(org_a, ["assets:read", "assets:write"])), org_a, clip)
    return path


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MJPEG AVI of one 8000x8000 frame: above the default frame limit."""
    return huge_mjpeg(tmp_path_factory.mktemp("huge") / "huge.avi", 8000)


def _upload(client: TestClient, auth: dict[str, str], org: str, name: str, content: bytes) -> tuple[str, Path]:
    answer = init_upload(client, auth, org, name, len(content))
    target = uri_path(answer["presigned"]["asset_uri"])
    target.write_bytes(content)
    return answer["upload_id"], target


def _assert_refused(response, code: str) -> None:
    assert (response.status_code, response.json()["error"]) == (422, code), response.text
    assert tempfile.gettempdir() not in response.text and "file:/" not in response.text, response.text


@pytest.mark.parametrize("kind", list(KINDS))
def test_playlists_naming_another_orgs_file_are_refused(client: TestClient, auth: dict[str, str], org: str,
                                                        other_org_file: Path, tmp_path: Path, snapshot,
                                                        kind: str) -> None:
    upload_id, target = _upload(client, auth, org, KINDS[kind], crafted(kind, other_org_file, tmp_path))
    add_neighbours(kind, other_org_file, target.parent)
    code = "unreadable_media" if kind in NOT_A_FORMAT else "unsupported_format"
    before = snapshot()
    _assert_refused(commit(client, auth, org, upload_id, target), code)
    _assert_refused(client.post("/v1/ingest/probe", headers=auth, json={"org_id": org, "source_uri": target.as_uri()}),
                    code)
    before.assert_unchanged()


def test_huge_frames_are_refused(client: TestClient, auth: dict[str, str], org: str, huge: Path, snapshot) -> None:
    upload_id, target = _upload(client, auth, org, "huge.avi", huge.read_bytes())
    before = snapshot()
    response = commit(client, auth, org, upload_id, target)
    _assert_refused(response, "media_limit_exceeded")
    assert "huge.avi has 8000x8000 frames" in response.json()["detail"]
    _assert_refused(client.post("/v1/ingest/probe", headers=auth, json={"org_id": org, "source_uri": target.as_uri()}),
                    "media_limit_exceeded")
    before.assert_unchanged()


def test_videos_longer_than_the_limit_are_refused(make_client: Callable[..., TestClient], settings: ApiSettings,
                                                  auth: dict[str, str], org: str,
                                                  clip: Path, snapshot) -> None:
    client = make_client(settings.model_copy(update={"max_duration_s": 1.0}))
    upload_id, target = place(client, auth, org, clip)
    before = snapshot()
    response = commit(client, auth, org, upload_id, target)
    _assert_refused(response, "media_limit_exceeded")
    assert "clip.mp4 lasts 2 s, more than the limit of 1 s" in response.json()["detail"]
    before.assert_unchanged()


def test_unreadable_files_are_named_without_their_path(client: TestClient, auth: dict[str, str], org: str) -> None:
    upload_id, target = _upload(client, auth, org, "notes.mp4", b"not a video\n" * 40)
    response = commit(client, auth, org, upload_id, target)
    _assert_refused(response, "unreadable_media")
    assert "notes.mp4" in response.json()["detail"]


@pytest.mark.parametrize("kind", ["hls-named-mp4", "dash-named-mp4"])
def test_the_legacy_probe_does_not_follow_a_playlist(make_client: Callable[..., TestClient], settings: ApiSettings,
                                                     auth: dict[str, str], other_org_file: Path, tmp_path: Path,
                                                     kind: str) -> None:
    # /metadata probes a temporary copy: a playlist there could name any file on the server.
    client = make_client(settings.model_copy(update={"enable_legacy": True}))
    content = crafted(kind, other_org_file, tmp_path)
    response = client.post("/metadata", headers=auth, files={"file": (KINDS[kind], content, "video/mp4")})
    assert response.status_code == 422 and "duration_s" not in response.text, response.text
    assert tempfile.gettempdir() not in response.text, response.text
