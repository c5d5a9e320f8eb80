"""The API flow through the running stack: an upload to the bucket's presigned URL, a commit, the run
in a container of its own started by the daemon's DockerRunLauncher, the objects it wrote, a
thumbnail downloaded by its presigned URL, and the webhook delivered to a receiver, signed."""

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from heimdex_pipeline.webhooks.signing import SIGNATURE_HEADER, verify
from tests.dagster_home import wait_for
from tests.stack.compose import RECEIVER, Stack, received
from tests.stack.flows import auth, upload_and_commit, wait_for_job

ORG = "org-e2e-flow"


def test_upload_commit_runs_in_its_own_container_and_delivers_the_webhook(stack: Stack, receiver,  # noqa: ANN001
                                                                         short_clip: Path) -> None:
    headers = auth(stack, ORG)
    with stack.api() as api:
        hook = api.post("/v1/webhooks", headers=headers,
                        json={"url": f"http://{RECEIVER}:8080/hooks/heimdex", "events": ["asset.ready"]})
        assert hook.status_code == 201, hook.text
        secret = hook.json()["secret"]

        since = datetime.now(timezone.utc)
        committed = upload_and_commit(stack, api, headers, ORG, short_clip)
        committed_at = time.monotonic()
        job_id, asset_id = committed["job_id"], committed["asset_id"]
        assert wait_for_job(api, headers, job_id) == "succeeded"
        print(f"stack: first ingest, commit to succeeded in {time.monotonic() - committed_at:.1f} s")

        # The daemon launched the run in a container of its own, labelled with the run's id, from
        # the stack's image, and the engine removed it once it exited.
        tags = stack.run_tags(job_id)
        container_id = tags["docker/container_id"]
        assert tags["dagster/image"] == f"heimdex:{stack.env['HEIMDEX_IMAGE_TAG']}"
        wait_for("the run's container is removed", lambda: not stack.run_containers(all=True), 30)
        # The engine reads `until` in whole seconds: 2 s ahead takes in the events of this second.
        until = datetime.now(timezone.utc) + timedelta(seconds=2)
        events = list(stack.engine.events(since=since, until=until, decode=True,
                                          filters={"label": f"dagster/run_id={job_id}", "type": "container"}))
        actions = [event["Action"] for event in events if event["id"] == container_id]
        assert actions[:2] == ["create", "start"] and {"die", "destroy"} <= set(actions), actions
        assert all(event["id"] == container_id for event in events)
        services = {c.id for c in stack.engine.containers.list(all=True, ignore_removed=True)}
        assert container_id not in services

        # Every asset of the partition is an object of the bucket.
        keys = {item["Key"] for item in stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix=f"{ORG}/")
                .get("Contents", [])}
        assert f"{ORG}/probes/{asset_id}.probe.json" in keys
        assert f"{ORG}/sidecars/{asset_id}.vna.json" in keys
        assert any(key.startswith(f"{ORG}/thumbnails/{asset_id}/") and key.endswith(".jpg") for key in keys)
        assert {f"{ORG}/storyboards/{asset_id}/storyboard.{ext}" for ext in ("jpg", "vtt", "json")} <= keys

        asset = api.get(f"/v1/assets/{asset_id}", headers=headers)
        assert asset.status_code == 200, asset.text
        assert asset.json()["status"] == "ready" and len(asset.json()["sidecar"]["etag"]) == 64
        thumbnail = asset.json()["thumbnails"][0]
        assert thumbnail["url"].startswith(stack.env["HEIMDEX_S3_PUBLIC_ENDPOINT_URL"] + "/")
        image = httpx.get(thumbnail["url"], timeout=30)
        assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"  # a JPEG

    # The webhook sensor (in the code server) delivered asset.ready, signed with the secret.
    [delivery] = wait_for("the asset.ready webhook arrives",
                          lambda: [r for r in received(receiver)
                                   if json.loads(r["body"]).get("asset_id") == asset_id], 60)
    assert delivery["path"] == "/hooks/heimdex"
    assert verify(secret, delivery["headers"][SIGNATURE_HEADER], delivery["body"], now=time.time())
    assert not verify(secret, delivery["headers"][SIGNATURE_HEADER], delivery["body"] + b" ")
    event = json.loads(delivery["body"])
    assert (event["type"], event["org_id"], event["job_id"]) == ("asset.ready", ORG, job_id)
