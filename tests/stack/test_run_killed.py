"""A run container killed (`docker kill`) in its scene step: the daemon's run monitoring sees the
worker gone, the run is retried in a new container, and the video is ready within 60 s of the kill.
No run container is left behind, exited or not."""

import time

from tests.dagster_home import wait_for
from tests.stack.compose import API_ONLY_SECRETS, Stack
from tests.stack.flows import auth, job_status, upload_and_commit

ORG = "org-e2e-killed"


def test_a_killed_run_container_is_retried_and_the_video_is_ready_within_60_s(stack: Stack, clip_maker  # noqa: ANN001
                                                                              ) -> None:
    # Long and large enough that the scene step lasts a few seconds: the kill lands inside it.
    video = clip_maker((4.0, 4.0, 4.0), size="640x360")
    headers = auth(stack, ORG)
    with stack.api() as api:
        committed = upload_and_commit(stack, api, headers, ORG, video)
        job_id, asset_id = committed["job_id"], committed["asset_id"]
        wait_for("the scene step starts", lambda: stack.step_started(job_id, "scene_sidecar"), 180, every_s=0.2)
        [container] = stack.containers(all=False, dagster__run_id=job_id)

        environment = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        for name in API_ONLY_SECRETS:
            assert name not in environment and stack.env[name] not in environment.values(), name

        container.kill()
        killed_at = time.monotonic()

        def ready() -> bool:
            answer = api.get(f"/v1/assets/{asset_id}", headers=headers)
            return answer.status_code == 200 and answer.json()["status"] == "ready"

        try:
            wait_for("the video is ready again after the kill", ready, 60, every_s=1)
        except AssertionError as error:
            raise AssertionError(f"{error}; the partition's runs: {stack.runs_of(asset_id)}") from None
        recovered_s = time.monotonic() - killed_at
        print(f"stack: ready {recovered_s:.1f} s after the kill")
        assert job_status(api, headers, job_id) == "failed"

    def retry_ended() -> dict | None:
        retries = stack.graphql("""query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/parent_run_id",
            value: $id}]}) { ... on Runs { results { runId status tags { key value } } } } }""", id=job_id)
        [retry] = retries["runsOrError"]["results"]
        return retry if retry["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

    # The asset is ready once its sidecar and thumbnails are; the storyboard may still be running.
    retry = wait_for("the retry ends", retry_ended, 120)
    assert retry["status"] == "SUCCESS"
    assert {"key": "dagster/partition", "value": asset_id} in retry["tags"]
    # The engine removed both containers, the killed one and the retry's: none is left.
    wait_for("no run container is left", lambda: not stack.run_containers(all=True), 30)
