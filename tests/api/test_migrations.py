"""`alembic upgrade head` and `downgrade -1` with the URL from HEIMDEX_DATABASE_URL, on SQLite and PostgreSQL."""

import io
import os
import subprocess
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest.mock import patch

import pytest
from alembic.config import CommandLine, Config
from sqlalchemy import inspect, text

from heimdex_pipeline.catalog.db import make_engine

REPO_ROOT = Path(__file__).resolve().parents[2]


def _alembic(url: str, *args: str, derived_root: Path | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """`alembic <args>` with HEIMDEX_DATABASE_URL (and HEIMDEX_DERIVED_ROOT) set: Alembic's command line, run in
    this process as its `main` runs it (the repository's alembic.ini, its output kept). A new interpreter per
    command only added a second of imports each, some forty times a run."""
    env = {"HEIMDEX_DATABASE_URL": url}
    if derived_root is not None:
        env["HEIMDEX_DERIVED_ROOT"] = str(derived_root)
    stdout, stderr, returncode = io.StringIO(), io.StringIO(), 0
    command_line = CommandLine(prog="alembic")
    options = command_line.parser.parse_args(args)
    config = Config(str(REPO_ROOT / "alembic.ini"), ini_section=options.name, cmd_opts=options, stdout=stdout)
    with patch.dict(os.environ, env), redirect_stdout(stdout), redirect_stderr(stderr):
        try:
            command_line.run_cmd(config, options)
        except SystemExit as exit_:  # how the command line fails a command
            returncode = exit_.code if isinstance(exit_.code, int) else 1
        except Exception:  # a migration's own error, which `python -m alembic` ends with a traceback
            returncode, _ = 1, stderr.write(traceback.format_exc())
    done = subprocess.CompletedProcess(["alembic", *args], returncode, stdout.getvalue(), stderr.getvalue())
    if check:
        done.check_returncode()
    return done


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no table yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("postgres_database")()


def test_upgrade_and_downgrade(empty_database: str) -> None:
    _alembic(empty_database, "upgrade", "head")
    webhooks = {"webhooks", "webhook_events", "webhook_deliveries", "webhook_attempts"}
    assert {"videos", "sources", "uploads", "idempotency_keys", "run_progress", *webhooks} <= _tables(empty_database)
    assert {"run_launched_at", "partition_seen_at"} <= _columns(empty_database, "videos")
    assert {"key", "version"} <= _columns(empty_database, "sources")
    assert {"lock_token", "lock_until"} <= _columns(empty_database, "uploads")
    assert {"asset_id", "holder", "expires_at"} <= _columns(empty_database, "asset_claims")
    assert {"asset_id", "asset_key", "check_name", "passed", "run_id"} <= _columns(empty_database, "check_outcomes")
    _alembic(empty_database, "downgrade", "-1")
    assert "check_outcomes" not in _tables(empty_database) and "asset_claims" in _tables(empty_database)
    _alembic(empty_database, "downgrade", "-1")
    assert "asset_claims" not in _tables(empty_database)
    assert {"lock_token", "lock_until"} <= _columns(empty_database, "uploads")
    _alembic(empty_database, "downgrade", "-1")
    assert not {"lock_token", "lock_until"} & _columns(empty_database, "uploads")
    assert {"previous_secret", "previous_secret_expires_at"} <= _columns(empty_database, "webhooks")
    _alembic(empty_database, "downgrade", "-1")
    assert not {"previous_secret", "previous_secret_expires_at"} & _columns(empty_database, "webhooks")
    _alembic(empty_database, "downgrade", "-1")
    assert not webhooks & _tables(empty_database)
    _alembic(empty_database, "downgrade", "-1")
    assert "run_progress" not in _tables(empty_database)
    _alembic(empty_database, "downgrade", "-1")
    assert "partition_seen_at" not in _columns(empty_database, "videos")
    _alembic(empty_database, "downgrade", "-1")
    assert {"source_path", "run_launched_at"} <= _columns(empty_database, "videos")
    assert "prefix" not in _columns(empty_database, "uploads")
    _alembic(empty_database, "downgrade", "-1")
    assert "run_launched_at" not in _columns(empty_database, "videos")
    assert "claim_token" not in _columns(empty_database, "idempotency_keys")
    _alembic(empty_database, "downgrade", "-1")
    tables = _tables(empty_database)
    assert "idempotency_keys" not in tables and "uploads" in tables
    _alembic(empty_database, "upgrade", "head")
    assert "idempotency_keys" in _tables(empty_database)


def test_the_models_and_the_migrations_agree(empty_database: str) -> None:
    """`alembic check`: a database migrated to head is what the models describe (a column or index added to
    a model without its migration, or the other way round, fails here)."""
    _alembic(empty_database, "upgrade", "head")
    checked = _alembic(empty_database, "check", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No new upgrade operations detected." in checked.stdout + checked.stderr


def _rows(url: str, query: str) -> list[tuple]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def _execute(url: str, *statements: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def test_0004_turns_paths_under_the_derived_root_into_keys_and_back(empty_database: str, tmp_path: Path) -> None:
    root = (tmp_path / "derived").resolve()
    _alembic(empty_database, "upgrade", "0003")
    now = "'2026-11-29 12:00:00+00:00'"
    _execute(
        empty_database,
        "INSERT INTO videos (asset_id, org_id, source_path, source_name, size_bytes, hash, hash_quality, origin, "
        f"created_at) VALUES ('v_1', 'org-a', '{root}/uploads/org-a/cam/clip 1.mp4', 'clip 1.mp4', 10, 'sha256:0', "
        f"'strong', 'sensor', {now})",
        "INSERT INTO sources (path, org_id, size_bytes, mtime_ns, asset_id, seen_at) VALUES "
        f"('{root}/uploads/org-a/cam/clip 1.mp4', 'org-a', 10, 1732900000123456789, 'v_1', {now}), "
        f"('{root}/uploads/org-a/copy.mp4', 'org-a', 10, 1732900000000000001, 'v_1', {now})",
        "INSERT INTO uploads (upload_id, org_id, source_name, content_length, directory, status, asset_id, created_at) "
        f"VALUES ('up_1', 'org-a', 'a.mp4', 10, '{root}/uploads/org-a/up_1', 'committed', 'v_1', {now})",
    )
    _alembic(empty_database, "upgrade", "0004", derived_root=tmp_path / "derived")
    assert _rows(empty_database, "SELECT asset_id, source_key FROM videos") == [("v_1", "uploads/org-a/cam/clip 1.mp4")]
    assert sorted(_rows(empty_database, "SELECT key, version, asset_id FROM sources")) == [
        ("uploads/org-a/cam/clip 1.mp4", "1732900000123456789", "v_1"),
        ("uploads/org-a/copy.mp4", "1732900000000000001", "v_1")]
    assert _rows(empty_database, "SELECT prefix, asset_id FROM uploads") == [("uploads/org-a/up_1/", "v_1")]

    _alembic(empty_database, "downgrade", "-1", derived_root=tmp_path / "derived")
    assert _rows(empty_database, "SELECT source_path FROM videos") == [(f"{root}/uploads/org-a/cam/clip 1.mp4",)]
    assert sorted(_rows(empty_database, "SELECT path, mtime_ns FROM sources")) == [
        (f"{root}/uploads/org-a/cam/clip 1.mp4", 1732900000123456789),
        (f"{root}/uploads/org-a/copy.mp4", 1732900000000000001)]
    assert _rows(empty_database, "SELECT directory FROM uploads") == [(f"{root}/uploads/org-a/up_1",)]

    # A catalog made under another root names no object of this one: the upgrade stops and changes nothing.
    refused = _alembic(empty_database, "upgrade", "0004", derived_root=tmp_path / "elsewhere", check=False)
    assert refused.returncode != 0 and "outside the derived root" in refused.stderr
    assert "source_path" in _columns(empty_database, "videos")
    assert _rows(empty_database, "SELECT directory FROM uploads") == [(f"{root}/uploads/org-a/up_1",)]
