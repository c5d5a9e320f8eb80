"""Throwaway PostgreSQL databases on the local server, for the tests and the benchmarks."""

import os
from urllib.parse import urlsplit
from uuid import uuid4

import psycopg

from heimdex_pipeline.catalog.db import make_engine

POSTGRES_ADMIN_URL = os.environ.get("HEIMDEX_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def create_database(prefix: str = "heimdex_test") -> str:
    """A new empty database on the server of POSTGRES_ADMIN_URL; its URL."""
    name = f"{prefix}_{uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}").geturl()


def drop_databases(urls: list[str]) -> None:
    """Drop the databases `create_database` made, closing whatever still holds a connection to them."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for url in urls:
            make_engine(url).dispose()
            admin.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path[1:]}" WITH (FORCE)')
