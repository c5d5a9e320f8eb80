"""Org names the storage layout uses at the top level (`uploads`, `schemas`) can never name an org.

The layout puts `<derived>/uploads/` and `<derived>/schemas/` beside the org folders: an org named
`uploads` would have every org's upload bucket as its own folder.
"""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from heimdex_pipeline.storage import RESERVED_ORG_ID_PATTERN, RESERVED_ORG_IDS, LocalStore, is_org_id
from heimdex_pipeline.storage.layout import (
    SIDECAR_SCHEMA_KEY,
    org_uploads_prefix,
    probe_key,
    sidecar_key,
    thumbnails_prefix,
)
from heimdex_pipeline.uploads.bucket import scan_bucket
from tests.api.support import bearer, make_token

RESERVED = ["uploads", "schemas", "Uploads", "SCHEMAS"]


def test_every_top_level_name_of_the_layout_is_reserved() -> None:
    top_level = {key.split("/")[0] for key in (org_uploads_prefix("org-a"), SIDECAR_SCHEMA_KEY)}
    assert top_level <= RESERVED_ORG_IDS
    org_keys = (probe_key("org-a", "v_1"), sidecar_key("org-a", "v_1"), thumbnails_prefix("org-a", "v_1"))
    assert {key.split("/")[0] for key in org_keys} == {"org-a"}


@pytest.mark.parametrize("name", RESERVED)
@pytest.mark.parametrize("key_of", [org_uploads_prefix, lambda org: probe_key(org, "v_1"),
                                    lambda org: sidecar_key(org, "v_1"), lambda org: thumbnails_prefix(org, "v_1")])
def test_the_layout_refuses_a_reserved_org_folder(name: str, key_of) -> None:
    assert not is_org_id(name)
    with pytest.raises(ValueError, match="reserved"):
        key_of(name)


@pytest.mark.parametrize("name", RESERVED)
def test_a_token_for_a_reserved_org_answers_401(client: TestClient, name: str) -> None:
    response = client.post("/v1/ingest/init", headers=bearer(make_token(name)),
                           json={"org_id": name, "source_name": "a.mp4", "content_length": 10})
    assert (response.status_code, response.json()["error"]) == (401, "invalid_token")
    assert client.get("/v1/assets/v_" + "0" * 32, headers=bearer(make_token(name))).status_code == 401


@pytest.mark.parametrize("name", RESERVED)
@pytest.mark.parametrize(("path", "extra"), [
    ("/v1/ingest/init", {"source_name": "a.mp4", "content_length": 10}),
    ("/v1/ingest/commit", {"upload_id": "up_" + "0" * 32, "source_uri": "file:///x.mp4"}),
    ("/v1/ingest/probe", {"source_uri": "file:///x.mp4"}),
    ("/v1/assets/v_" + "0" * 32 + "/sidecar", {"source_uri": "file:///x.mp4"}),
    ("/v1/assets/v_" + "0" * 32 + "/thumbnails", {"source_uri": "file:///x.mp4"}),
])
def test_a_body_naming_a_reserved_org_answers_422(client: TestClient, auth: dict[str, str], snapshot, name: str,
                                                  path: str, extra: dict) -> None:
    before = snapshot()
    response = client.post(path, headers=auth, json={"org_id": name, **extra})
    assert (response.status_code, response.json()["error"]) == (422, "validation_error"), response.text
    assert response.json()["detail"][0]["loc"] == ["body", "org_id"]
    before.assert_unchanged()


def test_the_sensor_takes_no_reserved_folder_for_an_org(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    for org in ("org-a", "uploads", "Schemas"):
        (uploads / org).mkdir(parents=True)
        (uploads / org / "clip.mp4").write_bytes(b"x")
    assert {source.org_id for source in scan_bucket(LocalStore(tmp_path))} == {"org-a"}


def test_the_reserved_names_rule_is_a_plain_regex_a_json_schema_can_carry() -> None:
    # No flag, no lookaround: ECMA-262 and pydantic's Rust engine read it as Python does.
    assert "(?" not in RESERVED_ORG_ID_PATTERN.pattern.replace("(?:", "")
    for name in RESERVED_ORG_IDS:
        for variant in (name, name.upper(), name.capitalize()):
            assert RESERVED_ORG_ID_PATTERN.match(variant) and not is_org_id(variant)
    assert not RESERVED_ORG_ID_PATTERN.match("uploads-archive")
