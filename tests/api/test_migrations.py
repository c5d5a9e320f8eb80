"""`alembic upgrade head` and `downgrade -1` with the URL from HEIMDEX_DATABASE_URL, on SQLite and PostgreSQL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from heimdex_pipeline.catalog.db import make_engine

REPO_ROOT = Path(__file__).resolve().parents[2]


def _alembic(url: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "alembic", *args], cwd=REPO_ROOT, check=True, capture_output=True,
                   env={**os.environ, "HEIMDEX_DATABASE_URL": url})


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
    assert {"videos", "sources", "uploads", "idempotency_keys"} <= _tables(empty_database)
    assert "run_launched_at" in _columns(empty_database, "videos")
    _alembic(empty_database, "downgrade", "-1")
    assert "run_launched_at" not in _columns(empty_database, "videos")
    assert "claim_token" not in _columns(empty_database, "idempotency_keys")
    _alembic(empty_database, "downgrade", "-1")
    tables = _tables(empty_database)
    assert "idempotency_keys" not in tables and "uploads" in tables
    _alembic(empty_database, "upgrade", "head")
    assert "idempotency_keys" in _tables(empty_database)
