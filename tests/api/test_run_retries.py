"""Immediate mode: a run that lost the database is run again, as Dagster's run retries would start a
new run for a crashed worker; a run that failed on its video is not."""

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, instance_for_test

from heimdex_api.core.config import ApiSettings
from heimdex_api.services.launchers import JOB_NAMES, ImmediateLauncher, JobRequest, pipeline_definitions
from heimdex_pipeline.runs.tags import PARENT_RUN_TAG, PARTITION_TAG, RETRY_NUMBER_TAG, ROOT_RUN_TAG
from tests.api.support import SECRET
from tests.dagster_home import free_port, instance_yaml


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """A real instance with the run retries of the repository's dagster.yaml (one retry)."""
    run_retries = yaml.safe_load(instance_yaml())["run_retries"]
    with instance_for_test(overrides={"run_retries": run_retries}, temp_dir=str(tmp_path)) as instance:
        yield instance


def _launch(instance: DagsterInstance, tmp_path: Path, database_url: str) -> tuple[str, list]:
    """Start an ingest of a new partition in immediate mode; answer its job id and the partition's runs, oldest first."""
    asset_id, org = f"v_{uuid4().hex}", f"org-{uuid4().hex[:10]}"
    instance.add_dynamic_partitions("videos", [asset_id])
    settings = ApiSettings(derived_root=tmp_path / "derived", database_url=database_url, jwt_secret=SECRET,
                           env="development")
    launcher = ImmediateLauncher(pipeline_definitions(settings), instance)
    job_id = launcher.launch(JobRequest("ingest", asset_id, org, JOB_NAMES["ingest"]))
    records = instance.get_run_records(RunsFilter(tags={PARTITION_TAG: asset_id}), ascending=True)
    return job_id, [record.dagster_run for record in records]


def test_a_run_that_lost_the_database_is_run_again(instance: DagsterInstance, tmp_path: Path) -> None:
    # A catalog nobody listens for: every step's first query fails on the connection.
    job_id, runs = _launch(instance, tmp_path, f"postgresql://postgres@127.0.0.1:{free_port()}/heimdex")
    assert len(runs) == 2
    first, retry = runs
    assert retry.run_id == job_id
    assert (retry.tags[PARENT_RUN_TAG], retry.tags[ROOT_RUN_TAG], retry.tags[RETRY_NUMBER_TAG]) == (
        first.run_id, first.run_id, "1")
    assert first.tags["heimdex/org_id"] == retry.tags["heimdex/org_id"]
    assert {first.status, retry.status} == {DagsterRunStatus.FAILURE}


def test_a_run_that_failed_on_its_video_is_not_run_again(instance: DagsterInstance, tmp_path: Path,
                                                          sqlite_url: str) -> None:
    # The catalog answers, and says the partition's video is unknown: no new run can change that.
    job_id, runs = _launch(instance, tmp_path, sqlite_url)
    assert [run.run_id for run in runs] == [job_id]
    assert runs[0].status == DagsterRunStatus.FAILURE
