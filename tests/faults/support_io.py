"""Support of the I/O fault tests: a PostgreSQL cluster of the test's own, and a small tmpfs."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from dagster._utils.error import SerializableErrorInfo

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def error_text(error: SerializableErrorInfo | None) -> str:
    """A step error's message with its causes' (Dagster wraps the asset's own error in its retry request)."""
    messages = []
    while error is not None:
        messages.append(error.message.strip())
        error = error.cause
    return " | ".join(messages)


def _cannot(reason: str) -> None:
    """Skip, except on CI, where every fault must really be injected."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


class PrivateCluster:
    """A PostgreSQL 15 cluster in a temporary folder, on its own port: a test may stop and restart it
    without touching the shared server on 5432. It runs as the `postgres` user (PostgreSQL refuses root)."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.data = root / "data"

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=60)

    def _pg_ctl(self, *args: str) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                          *args)

    def init(self) -> None:
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        # The socket lives in the cluster's folder: nothing is shared with the system's server.
        self._pg_ctl("-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        """A fast shutdown: open transactions are aborted and their connections cut, as in a restart."""
        self._pg_ctl("-m", "fast", "stop")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new database on the cluster; answers its URL."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def private_cluster(port: int) -> Iterator[PrivateCluster]:
    """A started private cluster on `port`, stopped and deleted afterwards."""
    if not (PG_BIN / "initdb").is_file() or shutil.which("runuser") is None or os.geteuid() != 0:
        _cannot(f"a private PostgreSQL cluster needs {PG_BIN}/initdb, runuser and root")
    # Not under pytest's tmp_path: the `postgres` user must be able to enter the folder.
    root = Path(tempfile.mkdtemp(prefix="heimdex-pg-"))
    shutil.chown(root, "postgres")
    cluster = PrivateCluster(root, port)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """`path` mounted as a tmpfs of `size` bytes (e.g. "2m"), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        _cannot(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)
