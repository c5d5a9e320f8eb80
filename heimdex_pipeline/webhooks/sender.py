"""One POST of a webhook event to its receiver, and what came of it; never follows a redirect."""

import time
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import HTTPError

from heimdex_pipeline.webhooks.addresses import UnsafeUrlError, parse_url, resolve

USER_AGENT = "Heimdex-Webhooks/1"
# Only the start of an answer is read (and dropped): a receiver's body means nothing to Heimdex.
_ANSWER_READ_BYTES = 4096


@dataclass(frozen=True)
class Answer:
    """What one attempt got: the receiver's status code, or why there was none; how long it took."""

    status_code: int | None
    latency_ms: int
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float, allow_private: bool) -> Answer:
    """POST `body` to `url`, connecting to an address `addresses.resolve` allowed, within `timeout_s` in all."""
    started = time.monotonic()

    def answer(status_code: int | None, error: str | None = None) -> Answer:
        return Answer(status_code, round((time.monotonic() - started) * 1000), error)

    try:
        parts = parse_url(url, allow_private)
        https = parts.scheme.lower() == "https"
        port = parts.port or (443 if https else 80)
        address = resolve(parts.hostname or "", port, allow_private)
    except UnsafeUrlError as exc:
        return answer(None, f"refused: {exc}")
    # The connection goes to the address checked; TLS still verifies the certificate against the name.
    options = {"server_hostname": parts.hostname, "assert_hostname": parts.hostname} if https else {}
    pool_class = urllib3.HTTPSConnectionPool if https else urllib3.HTTPConnectionPool
    host_header = parts.netloc.rpartition("@")[2]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        with pool_class(address, port, timeout=urllib3.Timeout(total=timeout_s), retries=False, maxsize=1,
                        **options) as pool:
            response = pool.urlopen("POST", target, body=body, redirect=False, preload_content=False,
                                    assert_same_host=False,
                                    headers={**headers, "Host": host_header, "User-Agent": USER_AGENT,
                                             "Content-Type": "application/json"})
            response.read(_ANSWER_READ_BYTES)
            response.release_conn()
    except (HTTPError, OSError) as exc:
        return answer(None, f"{type(exc).__name__}: {exc}")
    if 300 <= response.status < 400:
        return answer(response.status, "a redirect, not followed")
    return answer(response.status, None if 200 <= response.status < 300 else f"HTTP {response.status}")
