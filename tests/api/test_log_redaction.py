"""Secrets never reach a log line: a real server's access log, error log and `api.unhandled`, read from its output."""

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from heimdex_pipeline.core.logs import REDACTED
from tests.api.support import bearer, make_token
from tests.dagster_home import free_port, wait_until_serving

SECRET = secrets.token_urlsafe(48)
SIGNATURE, CREDENTIAL, SIG = (secrets.token_hex(16) for _ in range(3))

# The app of `heimdex_api.main` plus one route that fails with secrets in its exception, as a
# failing call to a signed URL would.
FAILING_APP = f"""
import uvicorn
from heimdex_api.main import create_app

app = create_app()

@app.get("/v1/boom")
def boom(token: str) -> None:
    raise RuntimeError(
        "the bucket said no to https://bucket.example/a.mp4?X-Amz-Signature={SIGNATURE}&sig={SIG} "
        "for Authorization: Bearer " + token)

uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), log_level="info")
"""


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEIMDEX_")}
    env.update(HEIMDEX_JWT_SECRET=SECRET, HEIMDEX_URL_SIGNING_KEY="u" * 32,
               HEIMDEX_DERIVED_ROOT=str(tmp_path / "derived"),
               DAGSTER_HOME=str(tmp_path / "dagster_home"), PYTHONUNBUFFERED="1")
    (tmp_path / "dagster_home").mkdir()
    return env


@contextmanager
def _serving(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[tuple[str, Path]]:
    """Run the server until the block ends; yield its URL and the file that gets its stdout and stderr."""
    port = free_port()
    log = cwd / f"server-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen([*command, str(port)], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/v1/health", process, log, 90)
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=30)


def _signed_query(token: str) -> str:
    return f"X-Amz-Signature={SIGNATURE}&X-Amz-Credential={CREDENTIAL}&sig={SIG}&signature={SIG}&token={token}"


def _assert_redacted(output: str, token: str) -> None:
    for secret in (token, SECRET, SIGNATURE, CREDENTIAL, SIG, token.split(".")[2]):
        assert secret not in output
    assert REDACTED in output


@pytest.mark.slow
def test_the_access_log_holds_no_token_and_no_signature(server_env: dict[str, str], tmp_path: Path) -> None:
    token = make_token("org-a", secret=SECRET)
    command = [sys.executable, "-m", "uvicorn", "heimdex_api.main:app", "--host", "127.0.0.1", "--port"]
    with _serving(command, server_env, tmp_path) as (url, log), httpx.Client(base_url=url, timeout=120) as http:
        assert http.get(f"/v1/jobs/{uuid4()}?{_signed_query(token)}", headers=bearer(token)).status_code == 404
        assert http.get(f"/v1/assets/{token}", headers=bearer(token)).status_code == 404  # a token in the path
        assert http.get(f"/v1/jobs/{uuid4()}", headers=bearer(token + "x")).status_code == 401
    text = log.read_text()
    assert "GET /v1/jobs/" in text, text  # the access log is there ...
    _assert_redacted(text, token)  # ... without the secrets


@pytest.mark.slow
def test_an_unhandled_error_logs_no_secret(server_env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "failing_app.py"
    script.write_text(FAILING_APP)
    token = make_token("org-a", secret=SECRET)
    with _serving([sys.executable, str(script)], server_env, tmp_path) as (url, log), \
            httpx.Client(base_url=url, timeout=120) as http:
        response = http.get("/v1/boom", params={"token": token}, headers=bearer(token))
        assert (response.status_code, response.json()["error"]) == (500, "internal_error")
    text = log.read_text()
    assert '"event": "api.unhandled"' in text and "Exception in ASGI application" in text, text
    _assert_redacted(text, token)
