"""The API as `python -m heimdex_api.serve` serves it (scripts/run.sh, docker-compose.yml, the README):
the bound on request heads, the body read timeout, and two workers answering as one API.

Each test starts the real server in a process of its own on 127.0.0.1, over a fresh DAGSTER_HOME
and SQLite catalog.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from tests.api.support import SECRET, bearer, make_token
from tests.dagster_home import REPO_ROOT, free_port, instance_yaml, wait_until_serving

ORG = "org-serving"
MAX_HEADER_BYTES = 64 * 1024  # the setting's default


@dataclass
class Served:
    url: str
    port: int
    process: subprocess.Popen

    @property
    def auth(self) -> dict[str, str]:
        return bearer(make_token(ORG, ["assets:read", "assets:write"]))

    def rss(self) -> int:
        """Resident bytes of the server and its workers."""
        parent = psutil.Process(self.process.pid)
        return sum(process.memory_info().rss for process in [parent, *parent.children(recursive=True)])

    def workers(self) -> list[int]:
        # uvicorn starts them by multiprocessing's spawn (beside it, its resource tracker).
        return [child.pid for child in psutil.Process(self.process.pid).children()
                if "spawn_main" in " ".join(child.cmdline())]

    def init(self, data: bytes) -> dict[str, Any]:
        answer = httpx.post(f"{self.url}/v1/ingest/init", headers=self.auth, timeout=30, json={
            "org_id": ORG, "source_name": "clip.mp4", "content_length": len(data), "content_type": "video/mp4"})
        assert answer.status_code == 201, answer.text
        return answer.json()


@contextmanager
def serve(tmp_path: Path, **settings: str) -> Iterator[Served]:
    """`python -m heimdex_api.serve` as run.sh starts it, with `settings` (HEIMDEX_<NAME>) on top."""
    home, derived = tmp_path / "dagster_home", tmp_path / "derived"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml())
    port = free_port()
    env = {**{name: value for name, value in os.environ.items() if not name.startswith("HEIMDEX_")},
           "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(derived), "HEIMDEX_ENV": "development",
           "HEIMDEX_JWT_SECRET": SECRET, "HEIMDEX_URL_SIGNING_KEY": "u" * 32,
           **{f"HEIMDEX_{name.upper()}": value for name, value in settings.items()}}
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "heimdex_api.serve", "--host", "127.0.0.1",
                                    "--port", str(port)], env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/v1/health", process, log_path, 120)
        yield Served(url, port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_answer(sock: socket.socket, timeout_s: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection (or `timeout_s`), and whether it closed."""
    sock.settimeout(timeout_s)
    received, deadline = b"", time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return received, True
            received += chunk
    except TimeoutError:
        return received, False
    except ConnectionResetError:
        return received, True
    return received, False


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _body(answer: bytes) -> dict[str, Any]:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def test_a_request_head_past_the_bound_is_answered_431_and_closed(tmp_path: Path) -> None:
    with serve(tmp_path, api_workers="2") as served:
        # What real clients send is served: a head of 8 KiB of headers.
        assert httpx.get(f"{served.url}/v1/health", headers={"X-Pad": "a" * 8192}).status_code == 200

        # The request: an unauthenticated GET with an 8 MB header, whole.
        with socket.create_connection(("127.0.0.1", served.port)) as sock:
            try:
                sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8_000_000 + b"\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed before the whole head was sent: the answer was already written
            answer, closed = _read_answer(sock, 10)
        assert _status(answer) == 431 and closed, answer[:300]
        assert _body(answer)["error"] == "request_header_fields_too_large"

        # Four connections, each sending up to 64 MiB of a header that never ends: each is answered
        # and closed early, and the server's memory does not grow with what they send.
        before = served.rss()
        sockets = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(4)]
        sent = [0] * 4
        chunk = b"a" * 65536
        for index, sock in enumerate(sockets):
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Pad: ")
            sock.settimeout(10)
            try:
                while sent[index] < 64 * 1024 * 1024:
                    sock.sendall(chunk)
                    sent[index] += len(chunk)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass
        grown = served.rss() - before
        for sock in sockets:
            answer, closed = _read_answer(sock, 10)
            sock.close()
            # A reset may come before the answer is read (the server closed with unread bytes).
            assert closed and (answer == b"" or _status(answer) == 431), answer[:300]
        print(f"\nsent before the close: {[count // 1024 for count in sent]} KiB; server RSS grew {grown / 2**20:.1f} MiB")
        # The socket buffers take a few MiB more than the bound before the close is seen.
        assert all(count < 16 * 1024 * 1024 for count in sent), sent
        assert grown < 32 * 2**20, f"the server grew by {grown / 2**20:.0f} MiB"
        # Still serving.
        assert httpx.get(f"{served.url}/v1/health").status_code == 200


def _stalled(served: Served, method: str, url: str, headers: dict[str, str], first: bytes,
             timeout_s: float) -> tuple[bytes, bool, float]:
    """Send the request's head and `first` bytes of its body, then nothing: the answer, whether the
    connection was closed, and after how long."""
    parts = urlsplit(url)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(f"{method} {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n{head}\r\n".encode()
                     + first)
        started = time.monotonic()
        answer, closed = _read_answer(sock, timeout_s)
        return answer, closed, time.monotonic() - started


def test_a_stalled_upload_body_is_answered_408_and_keeps_what_arrived(tmp_path: Path, clip: Path) -> None:
    data = clip.read_bytes()
    half = len(data) // 2
    with serve(tmp_path, api_workers="1", body_read_timeout_s="1") as served:
        upload = served.init(data)
        presigned = upload["presigned"]
        answer, closed, after = _stalled(served, "PUT", presigned["upload_url"],
                                         {"Content-Length": str(len(data)), "Content-Type": "video/mp4"},
                                         data[:half], 20)
        assert _status(answer) == 408 and closed, answer[:300]
        assert _body(answer) == {"error": "request_timeout", "detail": "the request body sent nothing for 1 s"}
        assert 0.9 < after < 10, after

        # A PUT cut short: what arrived is kept (tus resumes from it), the upload is not whole.
        tus = {"Tus-Resumable": "1.0.0"}
        head = httpx.head(presigned["resumable_url"], headers=tus)
        assert head.headers["Upload-Offset"] == str(half), head.headers
        commit = httpx.post(f"{served.url}/v1/ingest/commit", headers=served.auth, timeout=60, json={
            "org_id": ORG, "upload_id": upload["upload_id"], "source_uri": presigned["asset_uri"]})
        assert commit.status_code == 409 and commit.json()["error"] == "upload_incomplete", commit.text

        # A tus PATCH that stalls: 408, and the bytes that arrived are kept at the new offset.
        more = len(data) // 4
        answer, closed, _ = _stalled(served, "PATCH", presigned["resumable_url"], {
            **tus, "Upload-Offset": str(half), "Content-Length": str(len(data) - half),
            "Content-Type": "application/offset+octet-stream"}, data[half:half + more], 20)
        assert _status(answer) == 408 and closed, answer[:300]
        assert httpx.head(presigned["resumable_url"], headers=tus).headers["Upload-Offset"] == str(half + more)

        # The client resumes from there and the upload completes.
        patch = httpx.patch(presigned["resumable_url"], content=data[half + more:], headers={
            **tus, "Upload-Offset": str(half + more), "Content-Type": "application/offset+octet-stream"})
        assert patch.status_code == 204, patch.text
        assert httpx.head(presigned["resumable_url"], headers=tus).headers["Upload-Offset"] == str(len(data))
        # A slow JSON body is refused the same way.
        answer, closed, _ = _stalled(served, "POST", f"{served.url}/v1/ingest/init?",
                                     {**served.auth, "Content-Type": "application/json", "Content-Length": "100"},
                                     b'{"org_id": ', 20)
        assert _status(answer) == 408 and closed, answer[:300]


def _connection_on(served: Served, pid: int, tries: int = 200) -> httpx.Client:
    """A keep-alive client whose connection a given worker accepted (the kernel hands new
    connections to whichever worker accepts first)."""
    for _ in range(tries):
        client = httpx.Client(base_url=served.url, timeout=120)
        assert client.get("/v1/health").status_code == 200
        ports = {connection.raddr.port for connection in psutil.Process(pid).net_connections("tcp")
                 if connection.raddr and connection.laddr.port == served.port}
        local = {connection.laddr.port for connection in psutil.net_connections("tcp")
                 if connection.raddr and connection.raddr.port == served.port and connection.pid == os.getpid()}
        if ports & local:
            return client
        client.close()
    raise AssertionError(f"no connection landed on worker {pid}")


def test_two_workers_serve_one_api(tmp_path: Path, clip: Path) -> None:
    data = clip.read_bytes()
    with serve(tmp_path, api_workers="2", job_queue_backend="immediate") as served:
        first, second = served.workers()
        on_first, on_second = _connection_on(served, first), _connection_on(served, second)
        try:
            upload = on_first.post("/v1/ingest/init", headers=served.auth, json={
                "org_id": ORG, "source_name": "clip.mp4", "content_length": len(data), "content_type": "video/mp4"})
            assert upload.status_code == 201, upload.text
            presigned = upload.json()["presigned"]
            # The upload reserved through one worker is written through the other.
            assert on_second.put(presigned["upload_url"], content=data).status_code == 200
            # The commit runs the ingest in the first worker (immediate mode); the job and the asset
            # are read through the second, which never saw them.
            committed = on_first.post("/v1/ingest/commit", headers=served.auth, json={
                "org_id": ORG, "upload_id": upload.json()["upload_id"], "source_uri": presigned["asset_uri"]})
            assert committed.status_code == 200, committed.text
            job = on_second.get(f"/v1/jobs/{committed.json()['job_id']}", headers=served.auth)
            assert job.status_code == 200 and job.json()["status"] == "succeeded", job.text
            # The first worker keeps the finished job in memory from here on.
            assert on_first.get(f"/v1/jobs/{committed.json()['job_id']}", headers=served.auth).status_code == 200
            asset = on_second.get(f"/v1/assets/{committed.json()['asset_id']}", headers=served.auth)
            assert asset.status_code == 200 and asset.json()["status"] == "ready", asset.text
            # A second commit of the upload, through the other worker, is refused: the claim is the catalog's.
            again = on_second.post("/v1/ingest/commit", headers=served.auth, json={
                "org_id": ORG, "upload_id": upload.json()["upload_id"], "source_uri": presigned["asset_uri"]})
            assert again.status_code == 409, again.text
            # Deleted through the second worker: the first answers 404 for the asset.
            assert on_second.delete(f"/v1/assets/{committed.json()['asset_id']}",
                                    headers=served.auth).status_code == 204
            gone = on_first.get(f"/v1/assets/{committed.json()['asset_id']}", headers=served.auth)
            assert gone.status_code == 404, gone.text
            # And for the job it kept: a kept job is given again only while its video is catalogued.
            gone = on_first.get(f"/v1/jobs/{committed.json()['job_id']}", headers=served.auth)
            assert (gone.status_code, gone.json()["error"]) == (404, "job_not_found"), gone.text
        finally:
            on_first.close()
            on_second.close()


def test_one_request_at_a_time_writes_an_upload_across_workers(tmp_path: Path, clip: Path) -> None:
    """A client retrying through another worker while its first PUT is still being read answers 409
    `upload_busy`, as it does within one process; once the first is gone the retry goes through."""
    data = clip.read_bytes()
    with serve(tmp_path, api_workers="2") as served:
        first, second = served.workers()
        on_first, on_second = _connection_on(served, first), _connection_on(served, second)
        try:
            upload = served.init(data)
            url = urlsplit(upload["presigned"]["upload_url"])
            # A PUT through the first worker that has sent part of its body and is still sending.
            stalled = on_first.stream("PUT", f"{url.path}?{url.query}", content=_slow_body(data, pause_s=5),
                                      headers={"Content-Length": str(len(data))})
            writing = threading.Thread(target=_consume, args=(stalled,))
            writing.start()
            time.sleep(1.5)
            retry = on_second.put(upload["presigned"]["upload_url"], content=data)
            assert retry.status_code == 409 and retry.json()["error"] == "upload_busy", retry.text
            writing.join()
            again = on_second.put(upload["presigned"]["upload_url"], content=data)
            assert again.status_code == 200, again.text
        finally:
            on_first.close()
            on_second.close()


def _slow_body(data: bytes, pause_s: float) -> Iterator[bytes]:
    yield data[:1024]
    time.sleep(pause_s)
    yield data[1024:]


def _consume(stream: Any) -> None:
    with stream as answer:
        answer.read()


def test_a_served_worker_keeps_its_startup_heap_out_of_full_collections(tmp_path: Path) -> None:
    """What importing Dagster and the app made is frozen when a worker loads the app, so that a full
    collection (which stops the event loop) walks only what requests made since."""
    env = {**{name: value for name, value in os.environ.items() if not name.startswith("HEIMDEX_")},
           "DAGSTER_HOME": str(tmp_path), "HEIMDEX_DERIVED_ROOT": str(tmp_path / "derived"),
           "HEIMDEX_ENV": "development", "HEIMDEX_JWT_SECRET": SECRET}
    # As uvicorn's worker loads `heimdex_api.main:app`.
    code = "import gc, heimdex_api.main as main; main.app; print(gc.get_freeze_count(), len(gc.get_objects()))"
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120, check=True)
    frozen, collected = map(int, result.stdout.split())
    assert frozen > 100_000 and collected < frozen / 20, (frozen, collected)
