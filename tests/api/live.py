"""Real HTTP for the API tests on 127.0.0.1: an app served by uvicorn in a thread or in a process of its own,
and a listener that counts connections."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from dagster import DagsterInstance
from fastapi import FastAPI

from heimdex_api.core.config import ApiSettings
from heimdex_api.main import create_app
from tests.api.support import SECRET, uri_path
from tests.api.uploads import LiveApi
from tests.dagster_home import REPO_ROOT, free_port, instance_yaml, wait_until_serving


def free_socket() -> socket.socket:
    """A TCP socket bound to a free port of 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve `app` with uvicorn in a thread of this process; yield its base URL."""
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def live_api(tmp_path: Path, database_url: str, instance: DagsterInstance, org: str,
             **storage: str) -> Iterator[LiveApi]:
    """The API in immediate mode over `instance`, on a migrated catalog and `storage` (local unless told),
    served in a thread, with download URLs signed: what a browser or a client outside reaches."""
    settings = ApiSettings(derived_root=tmp_path / "derived", database_url=database_url, jwt_secret=SECRET,
                           env="development", job_queue_backend="immediate", migrate_on_start=False,
                           url_signing_key="u" * 32, **storage)
    with serve(create_app(settings, instance=instance)) as url, httpx.Client(base_url=url, timeout=120) as http:
        yield LiveApi(url, settings, instance, org, http)


@contextmanager
def api_server(home: Path, derived: Path, database_url: str, log_name: str = "api.log",
               **settings: str) -> Iterator[str]:
    """Start `uvicorn heimdex_api.main:app` over a DAGSTER_HOME (made fresh unless it is there already: several
    API processes may share one, each with its own `log_name`); yield its base URL.

    At the end the process gets SIGABRT first when it did not stop on SIGTERM, so that
    faulthandler writes every thread's stack to `home/<log_name>` (what a deadlock looks like).
    """
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(instance_yaml())
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(derived),
           "HEIMDEX_DATABASE_URL": database_url, "HEIMDEX_JWT_SECRET": SECRET, "HEIMDEX_ENV": "development",
           **{f"HEIMDEX_{name.upper()}": value for name, value in settings.items()}}
    log = (home / log_name).open("wb")
    process = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "uvicorn", "heimdex_api.main:app",
                                "--host", "127.0.0.1", "--port", str(port)],
                               env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/v1/health", process, home / log_name, 60)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


class Listener:
    """A TCP listener on 127.0.0.1 that accepts and counts every connection made to it."""

    def __init__(self) -> None:
        self._sock = free_socket()
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def __enter__(self) -> "Listener":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def placed_upload(url: str, headers: dict[str, str], org: str, source: Path) -> tuple[str, Path]:
    """`source` copied to where a new upload of a served API wants it; the upload's id and the file."""
    init = httpx.post(f"{url}/v1/ingest/init", headers=headers, timeout=60,
                      json={"org_id": org, "source_name": "clip.mp4", "content_length": source.stat().st_size})
    assert init.status_code == 201, init.text
    path = uri_path(init.json()["presigned"]["asset_uri"])
    shutil.copyfile(source, path)
    return init.json()["upload_id"], path


def commit_placed(url: str, headers: dict[str, str], org: str, upload_id: str, path: Path) -> httpx.Response:
    """The commit of a placed upload, through a served API."""
    return httpx.post(f"{url}/v1/ingest/commit", headers=headers, timeout=300,
                      json={"org_id": org, "upload_id": upload_id, "source_uri": path.as_uri()})
