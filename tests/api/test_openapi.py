"""The OpenAPI document tells the truth: schemathesis, every check, over the whole document, in-process.

A fixed seed and example count keep the run short and repeatable; a longer run against a real
server is one command (README, "The OpenAPI document").
"""

import tomllib
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import schemathesis.engine
from schemathesis.engine import events
from dagster import DagsterInstance
from fastapi import FastAPI

import tests.api.openapi_checks  # noqa: F401  (registers the Heimdex check)
from heimdex_api.core.config import ApiSettings
from heimdex_api.main import create_app
from tests.api.support import SECRET, bearer, make_token

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED, MAX_EXAMPLES = 1, 12


def _app(tmp_path: Path, sqlite_url: str, instance: DagsterInstance, legacy: bool) -> FastAPI:
    settings = ApiSettings(derived_root=tmp_path / "derived", database_url=sqlite_url, jwt_secret=SECRET,
                           env="development", job_queue_backend="immediate", migrate_on_start=False,
                           enable_legacy=legacy)
    return create_app(settings, instance=instance)


def _run(schema: schemathesis.BaseSchema) -> tuple[set[str], int]:
    """Run every phase of `schemathesis run` over the schema; answer its unique failures and errors, and the cases sent."""
    problems: set[str] = set()
    cases = 0
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            cases += len(event.recorder.cases)
            problems |= {f"{event.recorder.label}: {check.failure_info.failure.title}: "
                         f"{check.failure_info.failure.message}\n{check.failure_info.code_sample}"
                         for checks in event.recorder.checks.values() for check in checks
                         if check.failure_info is not None}
        elif isinstance(event, events.NonFatalError):
            problems.add(f"{event.label}: error: {event.value!r}")
        elif isinstance(event, events.FatalError):
            problems.add(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            problems |= {f"{f.operation}: {f.title}: {f.message}" for f in event.failures}
    return problems, cases


@pytest.mark.parametrize("legacy", [False, True], ids=["legacy-off", "legacy-on"])
def test_the_api_answers_as_documented(tmp_path: Path, sqlite_url: str, dagster_instance: DagsterInstance, org: str,
                                       legacy: bool) -> None:
    """Every check of schemathesis.toml (all of them), as an admin of a test org: no failure."""
    project: dict[str, Any] = tomllib.loads((REPO_ROOT / "schemathesis.toml").read_text())
    project.pop("hooks")  # imported above
    project.update(seed=SEED, headers=bearer(make_token(org, ["admin"])), generation={"max-examples": MAX_EXAMPLES})
    config = schemathesis.Config.from_dict(project)
    config.projects.default.checks.update(included_check_names=["all"])
    schema = schemathesis.openapi.from_asgi("/openapi.json", _app(tmp_path, sqlite_url, dagster_instance, legacy),
                                            config=config)
    problems, cases = _run(schema)
    assert cases > 100
    assert not problems, "\n\n".join(sorted(problems))
