"""The API's Dagster instance: pooled connections, and a run read that is one statement."""

from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import pytest
from dagster import DagsterInvariantViolationError, DagsterRun, instance_for_test
from sqlalchemy import event

from heimdex_api.core.config import ApiSettings
from heimdex_api.main import Runtime
from heimdex_api.services.dagster_instance import tuned_for_serving
from heimdex_api.services.launchers import DagsterLauncher
from tests.api.support import SECRET


def test_a_job_read_is_one_statement_on_postgresql(postgres_database: Callable[[], str], tmp_path: Path) -> None:
    overrides = {"storage": {"postgres": {"postgres_url": postgres_database()}}}
    with instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        tuned_for_serving(instance)
        run = instance.add_run(DagsterRun(job_name="ingest_video", run_id=str(uuid4()), tags={"heimdex/org_id": "org-a"}))
        statements: list[str] = []
        engine = instance.run_storage._engine  # the pooled engine `optimize_for_webserver` made
        event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        connections = engine.pool.checkedin()
        for _ in range(3):
            record = instance.get_run_record_by_id(run.run_id)
            assert record is not None and record.dagster_run.tags == {"heimdex/org_id": "org-a"}
        # One SELECT per read (no reflection of the runs table), on the connection kept open.
        assert len(statements) == 3 and all("FROM runs" in statement for statement in statements)
        assert engine.pool.checkedin() == connections == 1


def test_an_api_that_queues_its_runs_opens_no_instance_to_launch_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Where no instance can be opened, the launcher is still made: it only talks to the webserver.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "no-such-home"))
    settings = ApiSettings(derived_root=tmp_path, jwt_secret=SECRET, env="development", job_queue_backend="dagster",
                           dagster_webserver_url="http://127.0.0.1:9", migrate_on_start=False)
    runtime = Runtime(settings, None, None)
    assert isinstance(runtime.launcher, DagsterLauncher)
    with pytest.raises(DagsterInvariantViolationError):
        runtime.instance  # noqa: B018 - made on first use
