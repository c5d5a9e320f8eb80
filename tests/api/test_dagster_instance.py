"""The API's Dagster instance: pooled connections, and a run read that is one statement."""

from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

from dagster import DagsterRun, instance_for_test
from sqlalchemy import event

from heimdex_api.services.dagster_instance import tuned_for_serving


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
