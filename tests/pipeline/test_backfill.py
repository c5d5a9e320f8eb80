"""A backfill of every video with the `dagster` CLI, run by a real Dagster daemon."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus

from tests.dagster_home import REPO_ROOT, instance_yaml, prepare

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_backfill_all_videos_from_the_cli(clips, upload, derived_root: Path, catalog_url: str,
                                          instance: DagsterInstance, tmp_path: Path) -> None:
    first, _ = clips((2.0, 2.0))
    second, _ = clips((1.0, 1.5, 1.0))
    asset_ids = {upload(first), upload(second, org_id="org-other")}
    # The processes the CLI starts read the repository's config, on this test's storage.
    config = Path(instance.root_directory) / "dagster.yaml"
    config.write_text(instance_yaml(yaml.safe_load(config.read_text()).get("storage")))
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory, "HEIMDEX_DERIVED_ROOT": str(derived_root),
           "HEIMDEX_DATABASE_URL": catalog_url}
    prepare(env)
    command = [str(BIN / "dagster"), "job", "backfill", "-j", "ingest_video", "--all", "--noprompt",
               "-w", str(REPO_ROOT / "workspace.yaml")]
    backfill = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert backfill.returncode == 0, backfill.stderr
    assert "Launched backfill job" in backfill.stdout

    # The queued runs wait for the daemon, as they do in production.
    reloaded = DagsterInstance.from_config(instance.root_directory)
    runs = reloaded.get_runs()
    assert {run.tags["dagster/partition"] for run in runs} == asset_ids
    assert all("dagster/backfill" in run.tags for run in runs)
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
                              cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            statuses = {run.status for run in reloaded.get_runs()}
            if statuses <= {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}:
                break
            time.sleep(0.25)  # the daemon is stopped as soon as the runs end
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    # The runs' own failures, to say why if any failed.
    failures = [record.event_log_entry.dagster_event.event_specific_data.error.to_string()
                for run in reloaded.get_runs() if run.status != DagsterRunStatus.SUCCESS
                for record in reloaded.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
                if record.event_log_entry.dagster_event.event_specific_data.error]
    assert {run.status for run in reloaded.get_runs()} == {DagsterRunStatus.SUCCESS}, failures
    for key in ("probe_metadata", "scene_sidecar", "thumbnails"):
        assert reloaded.get_materialized_partitions(AssetKey(key)) == asset_ids
