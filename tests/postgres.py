"""Throwaway PostgreSQL databases on the local server, for the tests and the benchmarks."""

import os
from urllib.parse import urlsplit
from uuid import uuid4

import psycopg

from heimdex_pipeline.catalog.db import make_engine

POSTGRES_ADMIN_URL = os.environ.get("HEIMDEX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def create_database(prefix: str = "heimdex_test", like: str | None = None) -> str:
    """A new database on the server of POSTGRES_ADMIN_URL, empty or a copy of the database at URL `like`
    (which nothing may be connected to); its URL."""
    name = f"{prefix}_{uuid4().hex[:12]}"
    template = f' TEMPLATE "{urlsplit(like).path[1:]}"' if like else ""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{template}')
    return urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}").geturl()


def close_connections(url: str) -> None:
    """End every connection to the database at `url` (a pool's idle ones too), as a copy of it needs."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = %s AND pid <> pg_backend_pid()", (urlsplit(url).path[1:],))


def drop_databases(urls: list[str]) -> None:
    """Drop the databases `create_database` made, closing whatever still holds a connection to them."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for url in urls:
            make_engine(url).dispose()
            admin.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')
