"""The repository's `dagster.yaml`, as tests give it to the Dagster processes they start."""

from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def instance_yaml(storage: dict[str, Any] | None = None) -> str:
    """The embedded default instance config (queued coordinator, pools, monitoring), on `storage` if given."""
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    if storage:
        config["storage"] = storage
    return yaml.safe_dump(config)
