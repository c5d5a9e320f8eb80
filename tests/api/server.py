"""A real uvicorn process serving the API on 127.0.0.1, for tests that need real HTTP and real threads."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.api.support import SECRET
from tests.dagster_home import REPO_ROOT, instance_yaml


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def api_server(home: Path, derived: Path, database_url: str, **settings: str) -> Iterator[str]:
    """Start `uvicorn heimdex_api.main:app` over a fresh DAGSTER_HOME; yield its base URL.

    At the end the process gets SIGABRT first when it did not stop on SIGTERM, so that
    faulthandler writes every thread's stack to `home/api.log` (what a deadlock looks like).
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml())
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(derived),
           "HEIMDEX_DATABASE_URL": database_url, "HEIMDEX_JWT_SECRET": SECRET, "HEIMDEX_ENV": "development",
           **{f"HEIMDEX_{name.upper()}": value for name, value in settings.items()}}
    log = (home / "api.log").open("wb")
    process = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "uvicorn", "heimdex_api.main:app",
                                "--host", "127.0.0.1", "--port", str(port)],
                               env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start: {(home / 'api.log').read_text()[-3000:]}")
            time.sleep(0.3)
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
