"""Helpers of the API tests: tokens, uploads, and a check that a bad request wrote nothing."""

import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import jwt
from dagster import DagsterInstance
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from heimdex_api.core.config import ApiSettings
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Source, Upload, Video
from heimdex_pipeline.storage import store_from_settings

SECRET = "test-secret-of-32-bytes-or-more-0123456789"


def make_token(org_id: str | None, scopes: list[str] | None = None, secret: str = SECRET, ttl_s: int | None = 600,
               **claims: Any) -> str:
    """A signed token; `scopes=None` leaves the claim out, `ttl_s=None` leaves `exp` out."""
    payload: dict[str, Any] = dict(claims)
    if org_id is not None:
        payload["org_id"] = org_id
    if scopes is not None:
        payload["scopes"] = scopes
    if ttl_s is not None:
        payload["exp"] = int(time.time()) + ttl_s
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def uri_path(uri: str) -> Path:
    return Path(url2pathname(urlsplit(uri).path))


def init_upload(client: TestClient, headers: dict[str, str], org_id: str, name: str, size: int) -> dict[str, Any]:
    response = client.post("/v1/ingest/init", headers=headers,
                           json={"org_id": org_id, "source_name": name, "content_length": size,
                                 "content_type": "video/mp4"})
    assert response.status_code == 201, response.text
    return response.json()


def place(client: TestClient, headers: dict[str, str], org_id: str, source: Path,
          name: str = "clip.mp4") -> tuple[str, Path]:
    """Init an upload for `source` and copy it to the returned asset_uri; answer the upload id and path."""
    answer = init_upload(client, headers, org_id, name, source.stat().st_size)
    target = uri_path(answer["presigned"]["asset_uri"])
    shutil.copyfile(source, target)
    return answer["upload_id"], target


def commit(client: TestClient, headers: dict[str, str], org_id: str, upload_id: str, path: Path) -> Any:
    return client.post("/v1/ingest/commit", headers=headers,
                       json={"org_id": org_id, "upload_id": upload_id, "source_uri": path.as_uri()})


class Snapshot:
    """What an org has in the catalog, the instance and the derived tree, to show a bad request wrote nothing."""

    def __init__(self, settings: ApiSettings, instance: DagsterInstance, org_id: str) -> None:
        self.settings, self.instance, self.org_id = settings, instance, org_id
        self.before = self._take()

    def _take(self) -> dict[str, Any]:
        with session_scope(self.settings.catalog_url) as session:
            rows = {
                "videos": session.scalar(select(func.count()).select_from(Video).where(Video.org_id == self.org_id)),
                "sources": session.scalar(select(func.count()).select_from(Source).where(Source.org_id == self.org_id)),
                "uploads": sorted(session.execute(select(Upload.upload_id, Upload.status)
                                                  .where(Upload.org_id == self.org_id)).all()),
            }
        root = self.settings.derived_root
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
        if self.settings.storage == "s3":  # every object of the bucket, hidden ones and their prefix included
            store = store_from_settings(self.settings)
            files += sorted(o["Key"] for page in store.client.get_paginator("list_objects_v2").paginate(
                Bucket=store.bucket) for o in page.get("Contents", []))
        return {**rows, "files": files, "partitions": sorted(self.instance.get_dynamic_partitions("videos")),
                "runs": len(self.instance.get_run_records())}

    def assert_unchanged(self) -> None:
        assert self._take() == self.before
