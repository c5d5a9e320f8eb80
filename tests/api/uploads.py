"""Helpers of the upload-over-HTTP tests: a live API, init, commit and a snapshot over plain HTTP."""

import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from dagster import DagsterInstance

from heimdex_api.core.config import ApiSettings
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Upload
from heimdex_pipeline.storage import ObjectStore, store_from_settings
from heimdex_pipeline.storage.local import LocalStore
from tests.api.support import Snapshot, bearer, make_token
from tests.dagster_home import wait_for


@dataclass
class LiveApi:
    """An API served by uvicorn on 127.0.0.1, its settings, and an HTTP client with the org's token."""

    url: str
    settings: ApiSettings
    instance: DagsterInstance
    org: str
    http: httpx.Client

    @property
    def auth(self) -> dict[str, str]:
        return bearer(make_token(self.org, ["assets:read", "assets:write"]))

    def init(self, size: int, name: str = "clip.mp4", content_type: str | None = "video/mp4") -> dict[str, Any]:
        body = {"org_id": self.org, "source_name": name, "content_length": size}
        if content_type:
            body["content_type"] = content_type
        response = self.http.post(f"{self.url}/v1/ingest/init", headers=self.auth, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def commit(self, answer: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"{self.url}/v1/ingest/commit", headers=self.auth, timeout=120, json={
            "org_id": self.org, "upload_id": answer["upload_id"], "source_uri": answer["presigned"]["asset_uri"]})

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/v1/jobs/{job_id}", headers=self.auth)
        assert response.status_code == 200, response.text
        return response.json()

    def snapshot(self) -> Snapshot:
        return Snapshot(self.settings, self.instance, self.org)

    @property
    def store(self) -> ObjectStore:
        return store_from_settings(self.settings)

    def key(self, answer: dict[str, Any]) -> str:
        """The key of the upload's file (its name is the end of asset_uri)."""
        return f"uploads/{self.org}/{answer['upload_id']}/{unquote(answer['presigned']['asset_uri'].rsplit('/', 1)[1])}"

    def names(self, answer: dict[str, Any]) -> list[str]:
        """Every name under the upload's prefix, hidden ones included."""
        prefix = f"uploads/{self.org}/{answer['upload_id']}/"
        store = self.store
        if isinstance(store, LocalStore):
            folder = store.path(prefix.rstrip("/"))
            return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []
        full = store.full_key(f"{prefix}x")[:-1]  # full_key takes keys, not prefixes
        listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=full)
        return sorted(o["Key"].removeprefix(full) for o in listed.get("Contents", []))

    def writing(self, upload_id: str) -> bool:
        """Whether a request holds the upload's write lock."""
        with session_scope(self.settings.catalog_url) as session:
            return session.get(Upload, upload_id).lock_token is not None

    def read(self, answer: dict[str, Any]) -> bytes | None:
        """The upload's file, or None when there is none."""
        key = self.key(answer)
        return self.store.read_bytes(key) if self.store.stat(key) else None


def cut_short_put(live: LiveApi, answer: dict[str, Any], data: bytes, sent: int) -> None:
    """PUT `data` to the upload's URL declaring its whole length, send `sent` bytes of it, and hang up.

    The bytes go out once the API holds the upload's write lock, so that they reach a request that is
    reading its body: uvicorn drops body bytes still unread when the connection closes (as a real
    connection cut mid-file would), and a busy machine can take longer than any fixed pause to get
    the request that far.
    """
    parts = urlsplit(answer["presigned"]["upload_url"])
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode())
        wait_for("the API writes the upload", lambda: live.writing(answer["upload_id"]), 30, every_s=0.02)
        sock.sendall(data[:sent])
        time.sleep(0.5)  # the reading request wakes for them before it hears of the hang-up
        sock.shutdown(socket.SHUT_WR)
        sock.recv(65536)  # the server notices the end and answers, or closes
