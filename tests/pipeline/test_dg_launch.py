"""One video's ingest run with `dg launch`, as an operator starts it from the project (`[tool.dg]`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from tests.dagster_home import REPO_ROOT, instance_yaml

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_dg_launch_ingests_one_video(clips, upload, derived_root: Path, catalog_url: str,
                                     instance: DagsterInstance) -> None:
    clip, _ = clips((1.5, 1.5))
    asset_id = upload(clip)
    config = Path(instance.root_directory) / "dagster.yaml"
    config.write_text(instance_yaml(yaml.safe_load(config.read_text()).get("storage")))
    # As `uv run dg` runs it: in the project's environment.
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory, "HEIMDEX_DERIVED_ROOT": str(derived_root),
           "HEIMDEX_DATABASE_URL": catalog_url, "VIRTUAL_ENV": str(BIN.parent),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    launched = subprocess.run([str(BIN / "dg"), "launch", "--job", "ingest_video", "--partition", asset_id],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)
    output = launched.stdout + launched.stderr
    assert launched.returncode == 0, output[-3000:]
    assert "superseded" not in output.lower()

    with DagsterInstance.from_config(instance.root_directory) as reloaded:
        for key in ("probe_metadata", "scene_sidecar", "thumbnails"):
            assert reloaded.get_materialized_partitions(AssetKey(key)) == {asset_id}
