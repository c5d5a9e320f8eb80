"""An object put straight into `uploads/<org>/` of the stack's bucket is ingested with no API call:
the daemon's upload sensor lists the bucket, and the run it asks for makes the asset ready."""

import hashlib
from pathlib import Path

from heimdex_pipeline.media.fingerprint import ContentHash, asset_id_for
from tests.dagster_home import wait_for
from tests.stack.compose import Stack
from tests.stack.flows import auth

ORG = "org-e2e-sensor"


def test_an_object_put_in_uploads_is_ingested(stack: Stack, clip_maker) -> None:  # noqa: ANN001
    video: Path = clip_maker((1.0, 1.5))
    data = video.read_bytes()
    stack.s3().put_object(Bucket=stack.bucket, Key=f"uploads/{ORG}/dropped/{video.name}", Body=data,
                          ContentType="video/mp4")
    asset_id = asset_id_for(ORG, ContentHash(f"sha256:{hashlib.sha256(data).hexdigest()}", "strong", len(data)))
    headers = auth(stack, ORG)
    with stack.api() as api:
        def ready() -> dict | None:
            answer = api.get(f"/v1/assets/{asset_id}", headers=headers)
            return answer.json() if answer.status_code == 200 and answer.json()["status"] == "ready" else None

        asset = wait_for(f"the dropped upload becomes asset {asset_id}, ready", ready, 240)
    # Ready once the sidecar is there; the run goes on to the thumbnails and the storyboard.
    wait_for("the sensor's run succeeds", lambda: [run["status"] for run in stack.runs_of(asset_id)] == ["SUCCESS"],
             120)
    assert asset["org_id"] == ORG and asset["size_bytes"] == len(data)
    keys = {item["Key"] for item in stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix=f"{ORG}/")
            .get("Contents", [])}
    assert {f"{ORG}/probes/{asset_id}.probe.json", f"{ORG}/sidecars/{asset_id}.vna.json"} <= keys
    assert any(key.startswith(f"{ORG}/thumbnails/{asset_id}/") for key in keys)
