"""A storage that cannot be used answers 503 with the storage's code and `Retry-After`, never a traceback."""

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from heimdex_api.core.config import ApiSettings
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Upload
from tests.api.support import bearer, make_token


def test_an_unusable_storage_root_answers_503(make_client: Callable[..., TestClient], settings: ApiSettings,
                                              auth: dict[str, str], org: str, tmp_path: Path) -> None:
    root = tmp_path / "not-a-folder"
    root.write_bytes(b"")  # the derived root is a file: nothing can be stored under it
    client = make_client(settings.model_copy(update={"derived_root": root}))
    response = client.post("/v1/ingest/init", headers=auth,
                           json={"org_id": org, "source_name": "clip.mp4", "content_length": 10})
    assert (response.status_code, response.json()["error"]) == (503, "storage_unavailable"), response.text
    assert response.headers["Retry-After"] == "5" and str(tmp_path) not in response.text
    with session_scope(settings.catalog_url) as session:
        assert session.scalar(select(func.count()).select_from(Upload).where(Upload.org_id == org)) == 0
    admin = bearer(make_token(org, ["admin"]))
    checked = client.get("/v1/admin/env-check", headers=admin).json()
    assert checked["storage"] is False and checked["derived_writable"] is False
