"""One POST of a webhook event to its receiver, and what came of it; never follows a redirect."""

import socket
import threading
import time
from dataclasses import dataclass
from http.client import HTTPException

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError

from heimdex_pipeline.webhooks.addresses import UnsafeUrlError, parse_url, resolve

USER_AGENT = "Heimdex-Webhooks/1"
# Only the start of an answer is read (and dropped): a receiver's body means nothing to Heimdex.
_ANSWER_READ_BYTES = 4096
# An error quotes what the receiver sent (a bad status line, say): kept short, since it is stored with
# every attempt, logged and listed, and a receiver could otherwise send 64 KB of it each time.
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Answer:
    """What one attempt got: the receiver's status code, or why there was none; how long it took."""

    status_code: int | None
    latency_ms: int
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _cut(connection: HTTPConnection, cut: threading.Event) -> None:
    # Socket timeouts bound each read, not the whole answer: a receiver trickling a byte at a time
    # would hold the attempt for ever. Shutting the socket ends any read in progress at once.
    cut.set()
    if connection.sock is not None:
        try:
            connection.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float, allow_private: bool) -> Answer:
    """POST `body` to `url`, connecting to an address `addresses.resolve` allowed; cut off after `timeout_s`."""
    started = time.monotonic()

    def answer(status_code: int | None, error: str | None = None) -> Answer:
        if error is not None and len(error) > MAX_ERROR_CHARS:
            error = error[:MAX_ERROR_CHARS - 1] + "…"
        return Answer(status_code, round((time.monotonic() - started) * 1000), error)

    try:
        parts = parse_url(url, allow_private)
        https = parts.scheme.lower() == "https"
        port = parts.port or (443 if https else 80)
        address = resolve(parts.hostname or "", port, allow_private, timeout_s)
    except UnsafeUrlError as exc:
        return answer(None, f"refused: {exc}")
    # The connection goes to the address checked; TLS still verifies the certificate against the name.
    connection = (HTTPSConnection(address, port, timeout=timeout_s, server_hostname=parts.hostname,
                                  assert_hostname=parts.hostname) if https
                  else HTTPConnection(address, port, timeout=timeout_s))
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cut = threading.Event()
    watchdog = threading.Timer(max(0.0, timeout_s - (time.monotonic() - started)), _cut, [connection, cut])
    watchdog.start()
    try:
        connection.request("POST", target, body=body, preload_content=False,
                           headers={**headers, "Host": parts.netloc, "User-Agent": USER_AGENT,
                                    "Content-Type": "application/json"})
        response = connection.getresponse()
        # The cut ends the headers' read as an end of file would, and http.client then answers with the
        # status line it had: headers cut off are no answer, whatever that line said.
        if cut.is_set():
            return answer(None, f"timed out after {timeout_s:g} s")
        response.read(_ANSWER_READ_BYTES)
    except (HTTPError, HTTPException, OSError, ValueError) as exc:
        # ValueError: urllib3's check of the certificate's name raises CertificateError, one of them; left
        # to rise, one receiver's certificate would fail the whole sending pass, every org's deliveries.
        if time.monotonic() - started >= timeout_s:
            return answer(None, f"timed out after {timeout_s:g} s")
        return answer(None, f"{type(exc).__name__}: {exc}")
    finally:
        watchdog.cancel()
        connection.close()
    if 300 <= response.status < 400:
        return answer(response.status, "a redirect, not followed")
    return answer(response.status, None if 200 <= response.status < 300 else f"HTTP {response.status}")
