"""Bad input to init, commit and probe: a clear 4xx, and nothing written, nothing lost."""

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.support import bearer, commit, init_upload, make_token, place, uri_path

BAD_NAMES = ["a/b.mp4", "a\\b.mp4", "a\x00b.mp4", "-rf.mp4", ".hidden.mp4", "é" * 150 + ".mp4", " padded.mp4", ""]


NAME_IDS = ["slash", "backslash", "nul", "dash", "dot", "300-bytes", "space", "empty"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=NAME_IDS)
def test_init_refuses_unsafe_source_names(client: TestClient, auth: dict[str, str], org: str, snapshot,
                                          name: str) -> None:
    before = snapshot()
    response = client.post("/v1/ingest/init", headers=auth,
                           json={"org_id": org, "source_name": name, "content_length": 5})
    assert response.status_code == 422
    assert response.json()["error"] in {"invalid_source_name", "validation_error"}
    before.assert_unchanged()


@pytest.mark.parametrize(("length", "code"), [(-1, "validation_error"), (10**15, "upload_too_large"),
                                            (10**40, "upload_too_large"), ("12", "validation_error"),
                                            (1.5, "validation_error")])
def test_init_refuses_bad_content_lengths(client: TestClient, auth: dict[str, str], org: str, snapshot,
                                          length: object, code: str) -> None:
    """Above the document's maximum (HEIMDEX_MAX_UPLOAD_BYTES) is a 422 like any value the schema refuses."""
    before = snapshot()
    response = client.post("/v1/ingest/init", headers=auth,
                           json={"org_id": org, "source_name": "a.mp4", "content_length": length})
    assert (response.status_code, response.json()["error"]) == (422, code), response.text
    before.assert_unchanged()


@pytest.mark.parametrize("path", ["/v1/ingest/init", "/v1/ingest/commit", "/v1/ingest/probe",
                                  "/v1/assets/v_00000000000000000000000000000000/sidecar",
                                  "/v1/assets/v_00000000000000000000000000000000/thumbnails"])
def test_unknown_json_fields_answer_422(client: TestClient, auth: dict[str, str], org: str, snapshot,
                                        path: str) -> None:
    before = snapshot()
    body = {"org_id": org, "source_name": "a.mp4", "content_length": 1, "upload_id": "up_x", "source_uri": "file:///x",
            "surprise": True}
    response = client.post(path, headers=auth, json=body)
    assert response.status_code == 422 and response.json()["error"] == "validation_error"
    assert any(error["loc"][-1] == "surprise" for error in response.json()["detail"])
    before.assert_unchanged()


def test_unknown_policy_field_answers_422(client: TestClient, auth: dict[str, str], org: str) -> None:
    response = client.post("/v1/assets/v_00000000000000000000000000000000/thumbnails", headers=auth,
                           json={"org_id": org, "source_uri": "file:///x", "policy": {"max_count": 3, "fps": 2}})
    assert response.status_code == 422 and response.json()["error"] == "validation_error"


def _escapes(upload_dir: Path, outside: Path) -> dict[str, str]:
    return {
        "dot-dot": f"file://{upload_dir}/../../{outside.name}",
        "encoded-dot-dot": f"file://{upload_dir}/%2e%2e/%2E%2E/{outside.name}",
        "absolute-elsewhere": outside.as_uri(),
        "etc-passwd": "file:///etc/passwd",
        "symlink-out": (upload_dir / "clip.mp4").as_uri(),
        "other-host": f"file://otherhost{upload_dir}/clip.mp4",
        "relative": "file:clip.mp4",
        "http": "http://example.com/clip.mp4",
        "concat": f"concat:{outside}|{outside}",
        "subfile": f"subfile,,start,0,end,100,,:{outside}",
        "data": "data:video/mp4;base64,AAAA",
        "plain-path": str(upload_dir / "clip.mp4"),
        "nul": f"file://{upload_dir}/clip.mp4%00.txt",
    }


@pytest.mark.parametrize("case", list(_escapes(Path("/u"), Path("/o"))))
def test_commit_refuses_source_uris_outside_the_upload(client: TestClient, auth: dict[str, str], org: str, clip: Path,
                                                       tmp_path: Path, snapshot, case: str) -> None:
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(clip.read_bytes())
    answer = init_upload(client, auth, org, "clip.mp4", clip.stat().st_size)
    upload_dir = uri_path(answer["presigned"]["asset_uri"]).parent
    os.symlink(outside, upload_dir / "clip.mp4")  # a link pointing out of the bucket
    before = snapshot()
    response = client.post("/v1/ingest/commit", headers=auth, json={
        "org_id": org, "upload_id": answer["upload_id"], "source_uri": _escapes(upload_dir, outside)[case]})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_source_uri"
    before.assert_unchanged()


def test_commit_refuses_another_upload_folder(client: TestClient, auth: dict[str, str], org: str, clip: Path,
                                              snapshot) -> None:
    first = init_upload(client, auth, org, "clip.mp4", clip.stat().st_size)
    _, other_path = place(client, auth, org, clip)
    before = snapshot()
    response = commit(client, auth, org, first["upload_id"], other_path)
    assert response.status_code == 422 and response.json()["error"] == "invalid_source_uri"
    before.assert_unchanged()


def _truncated(clip: Path, target: Path) -> int:
    data = clip.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return len(data) // 2


@pytest.mark.parametrize(("case", "status", "code"), [
    ("missing", 404, "source_not_found"),
    ("longer-than-declared", 422, "content_length_mismatch"),
    ("shorter-than-declared", 409, "upload_incomplete"),  # a copy not finished: an incomplete upload
    ("zero-bytes", 422, "empty_source"),
    ("text-named-mp4", 422, "unreadable_media"),
    ("truncated-mp4", 422, "unreadable_media"),
])
def test_commit_refuses_bad_files_and_keeps_the_upload(client: TestClient, auth: dict[str, str], org: str, clip: Path,
                                                       snapshot, case: str, status: int, code: str) -> None:
    text = b"this is not a video\n" * 20
    sizes = {"missing": 10, "longer-than-declared": clip.stat().st_size - 1,
             "shorter-than-declared": clip.stat().st_size + 1, "zero-bytes": 0, "text-named-mp4": len(text),
             "truncated-mp4": clip.stat().st_size // 2}
    answer = init_upload(client, auth, org, "clip.mp4", sizes[case])
    target = uri_path(answer["presigned"]["asset_uri"])
    if case in ("longer-than-declared", "shorter-than-declared"):
        target.write_bytes(clip.read_bytes())
    elif case == "zero-bytes":
        target.touch()
    elif case == "text-named-mp4":
        target.write_bytes(text)
    elif case == "truncated-mp4":
        _truncated(clip, target)
    before = snapshot()
    response = commit(client, auth, org, answer["upload_id"], target)
    assert (response.status_code, response.json()["error"]) == (status, code), response.text
    before.assert_unchanged()


def test_a_failed_commit_loses_nothing(client: TestClient, auth: dict[str, str], org: str, clip: Path) -> None:
    answer = init_upload(client, auth, org, "clip.mp4", clip.stat().st_size)
    target = uri_path(answer["presigned"]["asset_uri"])
    target.write_bytes(clip.read_bytes()[:100])
    assert commit(client, auth, org, answer["upload_id"], target).json()["error"] == "upload_incomplete"
    target.write_bytes(clip.read_bytes())  # the client finishes its upload and retries
    retried = commit(client, auth, org, answer["upload_id"], target)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "ready"


def test_commit_before_init(client: TestClient, auth: dict[str, str], org: str, tmp_path: Path, snapshot) -> None:
    before = snapshot()
    for upload_id in ("up_" + "0" * 32, "nonsense", "x" * 64):
        response = client.post("/v1/ingest/commit", headers=auth, json={
            "org_id": org, "upload_id": upload_id, "source_uri": (tmp_path / "a.mp4").as_uri()})
        assert (response.status_code, response.json()["error"]) == (404, "upload_not_found")
    before.assert_unchanged()


def test_commit_twice(client: TestClient, auth: dict[str, str], org: str, clip: Path, snapshot) -> None:
    upload_id, path = place(client, auth, org, clip)
    first = commit(client, auth, org, upload_id, path)
    assert first.status_code == 200
    before = snapshot()
    again = commit(client, auth, org, upload_id, path)
    assert again.status_code == 409 and again.json()["error"] == "upload_already_committed"
    assert again.json()["detail"]["asset_id"] == first.json()["asset_id"]
    before.assert_unchanged()


def test_another_orgs_upload_is_not_found(client: TestClient, auth: dict[str, str], org: str, clip: Path,
                                          snapshot) -> None:
    upload_id, path = place(client, auth, org, clip)
    before = snapshot()
    other = bearer(make_token("org-intruder"))
    response = commit(client, other, "org-intruder", upload_id, path)
    assert (response.status_code, response.json()["error"]) == (404, "upload_not_found")
    before.assert_unchanged()


def test_probe_is_a_dry_run_with_the_commit_asset_id(client: TestClient, auth: dict[str, str], org: str, clip: Path,
                                                     snapshot) -> None:
    upload_id, path = place(client, auth, org, clip)
    before = snapshot()
    probe = client.post("/v1/ingest/probe", headers=auth, json={"org_id": org, "source_uri": path.as_uri()})
    assert probe.status_code == 200, probe.text
    assert probe.json()["duration_s"] == pytest.approx(2.0, abs=0.05) and probe.json()["streams"]
    before.assert_unchanged()
    weak = client.post("/v1/ingest/probe", headers=auth,
                       json={"org_id": org, "source_uri": path.as_uri(), "weak_threshold_bytes": 1000})
    assert weak.json()["hash_quality"] == "weak" and weak.json()["hash"].startswith("weak-sha256:")
    assert weak.json()["asset_id"] != probe.json()["asset_id"]
    assert commit(client, auth, org, upload_id, path).json()["asset_id"] == probe.json()["asset_id"]


@pytest.mark.parametrize(("uri", "status", "code"), [
    ("file:///etc/hostname", 422, "invalid_source_uri"),
    ("http://example.com/a.mp4", 422, "invalid_source_uri"),
    ("file://{uploads}/missing.mp4", 404, "source_not_found"),
])
def test_probe_refuses_bad_sources(client: TestClient, auth: dict[str, str], org: str, settings, uri: str,
                                   status: int, code: str) -> None:
    uri = uri.format(uploads=settings.derived_root.resolve() / "uploads" / org)
    response = client.post("/v1/ingest/probe", headers=auth, json={"org_id": org, "source_uri": uri})
    assert (response.status_code, response.json()["error"]) == (status, code)


def test_a_file_in_another_orgs_uploads_is_not_found(client: TestClient, auth: dict[str, str], org: str,
                                                     clip: Path, snapshot) -> None:
    """Inside the upload area (where the OpenAPI's `source_uri` pattern points), another org's file answers as a
    missing one does: 404, never saying it is there, nor 422 for a URI the document calls valid."""
    other = f"{org}-other"
    _, theirs = place(client, bearer(make_token(other, ["admin"])), other, clip)
    upload_id = init_upload(client, auth, org, "clip.mp4", clip.stat().st_size)["upload_id"]
    before = snapshot()
    missing = client.post("/v1/ingest/probe", headers=auth,
                          json={"org_id": org, "source_uri": theirs.with_name("missing.mp4").as_uri()})
    for response in (client.post("/v1/ingest/probe", headers=auth, json={"org_id": org, "source_uri": theirs.as_uri()}),
                     commit(client, auth, org, upload_id, theirs)):
        assert (response.status_code, response.json()) == (404, missing.json()), response.text
    assert missing.json()["error"] == "source_not_found"
    before.assert_unchanged()
