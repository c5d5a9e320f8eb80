"""A run the upload sensor started is its org's job: readable by the org, 404 for any other."""

import shutil
from pathlib import Path

from dagster import DagsterInstance, SensorResult, build_sensor_context
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from heimdex_api.services.launchers import pipeline_definitions
from heimdex_pipeline.resources import resources_from
from heimdex_pipeline.sensors import upload_sensor
from tests.api.support import bearer, make_token


def test_a_sensor_started_run_is_its_orgs_job(client: TestClient, auth: dict[str, str], org: str, clip: Path,
                                              settings: ApiSettings, dagster_instance: DagsterInstance) -> None:
    target = settings.derived_root / "uploads" / org / "camera" / "dropped.mp4"
    target.parent.mkdir(parents=True)
    shutil.copyfile(clip, target)
    resources = resources_from(settings)
    cursor, requests = None, []
    for _ in range(2):  # seen, then settled
        result = upload_sensor(build_sensor_context(instance=dagster_instance, cursor=cursor, resources=resources))
        if isinstance(result, SensorResult):
            cursor = result.cursor
            requests += [r for r in result.run_requests if r.tags.get("heimdex/org_id") == org]
    (request,) = requests
    dagster_instance.add_dynamic_partitions("videos", [request.partition_key])
    # What the daemon does with the request: a run of the sensor's job with the request's tags.
    run = pipeline_definitions(settings).resolve_job_def("ingest_video").execute_in_process(
        instance=dagster_instance, partition_key=request.partition_key, tags=request.tags)
    job = client.get(f"/v1/jobs/{run.run_id}", headers=auth)
    assert job.status_code == 200, job.text
    assert (job.json()["type"], job.json()["asset_id"], job.json()["status"]) == \
        ("ingest", request.partition_key, "succeeded")
    other = client.get(f"/v1/jobs/{run.run_id}", headers=bearer(make_token("org-other", ["admin"])))
    assert (other.status_code, other.json()["error"]) == (404, "job_not_found")
