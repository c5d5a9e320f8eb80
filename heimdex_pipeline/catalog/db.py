"""Engines and sessions of the catalog database (SQLite or PostgreSQL)."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the sensor, the runs and the API read while one of them writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain `postgresql://` URLs."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


@lru_cache(maxsize=8)
def make_engine(url: str) -> Engine:
    """One pooled engine per database URL and process."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


# SQLSTATE classes of a server that is away, not of a bad query: connection exceptions (08),
# shutdown, crash or start-up in progress (57P), too many connections or no memory (53).
_UNAVAILABLE_SQLSTATES = ("08", "57P", "53")


def _server_away(driver_error: BaseException) -> bool:
    # No SQLSTATE means the client side failed: refused, reset or closed connections.
    state = getattr(driver_error, "sqlstate", None) or getattr(driver_error, "pgcode", None)
    return state is None or state.startswith(_UNAVAILABLE_SQLSTATES)


# Told by module rather than imported: a run worker on SQLite never loads psycopg (0.2 s a run).
_POSTGRES_DRIVERS = ("psycopg", "psycopg2")


def _from_postgres_driver(driver_error: BaseException) -> bool:
    return type(driver_error).__module__.partition(".")[0] in _POSTGRES_DRIVERS


def is_unavailable(error: BaseException) -> bool:
    """Whether `error`, or an error that led to it, says PostgreSQL cannot be reached right now.

    Covers both drivers: psycopg 3 (the catalog) and psycopg2 (Dagster's storage, which wraps
    its last connection error in its own exception). Errors of the query itself are not.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PoolTimeoutError):
            return True
        if isinstance(current, DBAPIError) and (
                current.connection_invalidated
                or (isinstance(current, OperationalError | InterfaceError)
                    and _from_postgres_driver(current.orig) and _server_away(current.orig))):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits when the block ends cleanly and rolls back otherwise."""
    session = sessionmaker(make_engine(url), expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
