"""A real webhook receiver for the tests: an HTTP(S) server on 127.0.0.1 that records every request and
answers as the test says (a status, after a delay), and that can be stopped and started again on its port."""

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


# How long an answer held by an event waits at most for it: a test whose sender waited for the answer fails
# then instead of hanging.
HOLD_LIMIT_S = 60.0


@dataclass
class Receiver:
    """Answers each request with `answer(request)`: a status, and the seconds to wait first or an event to wait
    for (at most HOLD_LIMIT_S); records what it got."""

    port: int
    answer: Callable[[Received], tuple[int, float | threading.Event]] = lambda _: (200, 0.0)
    received: list[Received] = field(default_factory=list)
    extra_headers: dict[str, str] = field(default_factory=dict)
    # HTTPS with this context's certificate, reached by `host` (the name the certificate is for).
    tls: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/hooks/heimdex"

    def answer_with(self, *statuses: int, then: int = 200, delay_s: float = 0.0) -> None:
        """Answer `statuses` in turn, then `then` for every later request."""
        pending = list(statuses)
        self.answer = lambda _: (pending.pop(0) if pending else then, delay_s)

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Received(time.time(), self.path, dict(self.headers.items()), body)
                with receiver._lock:
                    receiver.received.append(request)
                    status, wait = receiver.answer(request)
                if isinstance(wait, threading.Event):
                    wait.wait(HOLD_LIMIT_S)
                else:
                    time.sleep(wait)
                try:
                    self.send_response(status)
                    for name, value in receiver.extra_headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port: connections are refused until `start()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self) -> list[dict[str, Any]]:
        return [request.event for request in self.received]

