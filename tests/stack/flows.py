"""The client's side of the stack's API: a token, an upload through the bucket's presigned URL, a commit."""

import time
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.dagster_home import wait_for
from tests.stack.compose import Stack


def auth(stack: Stack, org_id: str, scopes: tuple[str, ...] = ("assets:read", "assets:write", "webhooks:write")
         ) -> dict[str, str]:
    """A bearer token the stack's API accepts: signed with the generated HEIMDEX_JWT_SECRET."""
    token = jwt.encode({"org_id": org_id, "scopes": list(scopes), "exp": int(time.time()) + 3600},
                       stack.env["HEIMDEX_JWT_SECRET"], algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def upload_and_commit(stack: Stack, api: httpx.Client, headers: dict[str, str], org_id: str, video: Path
                      ) -> dict[str, Any]:
    """init, a PUT of the bytes to the presigned URL of the stack's S3 service, then commit."""
    init = api.post("/v1/ingest/init", headers=headers, json={
        "org_id": org_id, "source_name": video.name, "content_length": video.stat().st_size,
        "content_type": "video/mp4"})
    assert init.status_code == 201, init.text
    presigned = init.json()["presigned"]
    assert presigned["upload_url"].startswith(stack.env["HEIMDEX_S3_PUBLIC_ENDPOINT_URL"] + "/")
    put = httpx.put(presigned["upload_url"], content=video.read_bytes(), headers=presigned["upload_headers"],
                    timeout=30)
    assert put.status_code == 200, put.text
    committed = api.post("/v1/ingest/commit", headers=headers, json={
        "org_id": org_id, "upload_id": init.json()["upload_id"], "source_uri": presigned["asset_uri"]})
    assert committed.status_code == 200, committed.text
    assert committed.json()["status"] == "queued" and committed.json()["job_id"]
    return committed.json()


def job_status(api: httpx.Client, headers: dict[str, str], job_id: str) -> str:
    answer = api.get(f"/v1/jobs/{job_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["status"]


def wait_for_job(api: httpx.Client, headers: dict[str, str], job_id: str, timeout_s: float = 240) -> str:
    """The job's final status."""
    return wait_for(f"job {job_id} ends",
                    lambda: (status := job_status(api, headers, job_id)) in ("succeeded", "failed", "canceled")
                    and status, timeout_s)
