"""Restarts lose nothing: the daemon and the API restarted with runs queued run each run once, and
`down` then `up` (volumes kept) keeps the catalog, the runs, the objects of the bucket and the
webhook endpoints. That `down -v` removes all of it is the stack fixture's last check."""

import httpx

from tests.dagster_home import wait_for
from tests.stack.compose import RECEIVER, Stack
from tests.stack.flows import auth, upload_and_commit, wait_for_job

ORG = "org-e2e-restarts"


def healthy(stack: Stack) -> bool:
    with stack.api() as api:
        try:
            return api.get("/v1/health").status_code == 200
        except httpx.TransportError:  # the published port answers, the container behind it not yet
            return False


def bucket_objects(stack: Stack) -> dict[str, str]:
    """Every object of the bucket: key and ETag (the MD5 of its bytes)."""
    pages = stack.s3().get_paginator("list_objects_v2").paginate(Bucket=stack.bucket)
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}


def test_restarting_the_daemon_and_the_api_with_runs_queued_runs_each_once(stack: Stack, clip_maker  # noqa: ANN001
                                                                          ) -> None:
    headers = auth(stack, ORG)
    with stack.api() as api:
        committed = [upload_and_commit(stack, api, headers, ORG, clip_maker((1.0, 1.0))) for _ in range(3)]
    stack.compose("restart", "dagster_daemon", "api")
    wait_for("the API answers again", lambda: healthy(stack), 120, every_s=1)
    with stack.api() as api:
        assert [wait_for_job(api, headers, job["job_id"]) for job in committed] == ["succeeded"] * 3
    for job in committed:
        assert stack.runs_of(job["asset_id"]) == [{"runId": job["job_id"], "status": "SUCCESS"}]
    wait_for("no run container is left", lambda: not stack.run_containers(all=True), 60)


def test_down_and_up_keep_the_catalog_runs_objects_and_webhooks(stack: Stack, clip_maker) -> None:  # noqa: ANN001
    headers = auth(stack, ORG)
    with stack.api() as api:
        hook = api.post("/v1/webhooks", headers=headers,
                        json={"url": f"http://{RECEIVER}:8080/hooks", "events": ["job.failed"]})
        assert hook.status_code == 201, hook.text
        job = upload_and_commit(stack, api, headers, ORG, clip_maker((1.0, 1.0)))
        assert wait_for_job(api, headers, job["job_id"]) == "succeeded"
        before = api.get(f"/v1/assets/{job['asset_id']}", headers=headers).json()
    wait_for("no run container is left", lambda: not stack.run_containers(all=True), 60)
    objects = bucket_objects(stack)
    assert f"{ORG}/sidecars/{job['asset_id']}.vna.json" in objects

    stack.compose("down")
    stack.compose("up", "--detach", "--wait", "--wait-timeout", "600")

    with stack.api() as api:
        hooks = api.get("/v1/webhooks", headers=headers)
        assert hooks.status_code == 200, hooks.text
        assert [h["webhook_id"] for h in hooks.json()["webhooks"]] == [hook.json()["webhook_id"]]
        assert wait_for_job(api, headers, job["job_id"], timeout_s=10) == "succeeded"
        # Every object, byte for byte, and the catalog's entry, ready (its status reads the sidecar).
        assert bucket_objects(stack) == objects
        asset = api.get(f"/v1/assets/{job['asset_id']}", headers=headers)
        assert asset.status_code == 200, asset.text
        assert asset.json()["status"] == "ready"
        assert asset.json()["sidecar"]["etag"] == before["sidecar"]["etag"]
        assert (asset.json()["hash"], asset.json()["size_bytes"]) == (before["hash"], before["size_bytes"])
        thumbnail = httpx.get(asset.json()["thumbnails"][0]["url"], timeout=30)
        assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"  # a JPEG
        again = upload_and_commit(stack, api, headers, ORG, clip_maker((1.0, 1.0)))
        assert wait_for_job(api, headers, again["job_id"]) == "succeeded"
    assert stack.runs_of(job["asset_id"]) == [{"runId": job["job_id"], "status": "SUCCESS"}]
