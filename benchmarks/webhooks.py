"""The webhook outbox: how fast events are recorded, and how fast the sender drains them to a receiver on
127.0.0.1, normally and after the receiver was down for a pass; then what one org's endpoint that
never answers costs another org's delivery in a sending pass.

A real catalog (SQLite by default, or `--database-url` for PostgreSQL) and a real HTTP receiver in
a process of its own that answers 204 at once, so the figures are Heimdex's side: the outbox's
queries, the signing and one connection per attempt.

    uv run python -m benchmarks.webhooks [--events 2000] [--videos 200] [--silent-videos 1000] [--database-url URL]
"""

import argparse
import multiprocessing
import socket
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import update

from benchmarks.run import log, print_header, table
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.catalog.models import WebhookDelivery, utcnow
from heimdex_pipeline.sensors.webhooks import SEND_BUDGET_S
from heimdex_pipeline.webhooks import DeliveryPolicy, Event, deliver_due, endpoints, record

ORG = "org-bench"


class _Accept(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(sock: socket.socket) -> None:
    server = ThreadingHTTPServer(sock.getsockname(), _Accept, bind_and_activate=False)
    server.socket = sock
    server.serve_forever()


def _receiver(sock: socket.socket) -> multiprocessing.Process:
    """The receiver, in a process of its own on `sock`."""
    process = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,), daemon=True)
    process.start()
    return process


def _record(catalog_url: str, events: int, videos: int, first_job: int) -> float:
    """Seconds to record `events` events spread over `videos` videos, one transaction per tick's worth (200)."""
    start = time.perf_counter()
    for batch in range(0, events, 200):
        with session_scope(catalog_url) as session:
            for n in range(batch, min(events, batch + 200)):
                record(session, Event("asset.ready", ORG, f"v_{n % videos:032x}", f"run-{first_job + n}", utcnow(),
                                      {"status": "succeeded"}))
    return time.perf_counter() - start


def _drain(catalog_url: str, policy: DeliveryPolicy) -> tuple[float, int]:
    """Seconds and passes of the sender until nothing is due."""
    start, passes = time.perf_counter(), 0
    while True:
        passes += 1
        if not deliver_due(catalog_url, policy, budget_s=600).answers:
            return time.perf_counter() - start, passes


def _beside_silent(catalog_url: str, videos: int) -> list[str]:
    """One sending pass, as a webhook sensor tick makes it, where an endpoint that never answers has
    `videos` videos' events due before one event of the benchmark's org: the pass's length, its
    attempts, and whether the other org's event went out in it."""
    silent = socket.create_server(("127.0.0.1", 0), backlog=videos)  # takes connections, never answers
    with session_scope(catalog_url) as session:
        endpoints.create(session, "org-silent", f"http://127.0.0.1:{silent.getsockname()[1]}/hook", ["asset.ready"],
                         allow_private=True, max_per_org=20)
    with session_scope(catalog_url) as session:
        for n in range(videos):
            record(session, Event("asset.ready", "org-silent", f"v_{n:032x}", f"silent-{n}", utcnow(), {}))
    _record(catalog_url, 1, 1, 10**9)
    start = time.perf_counter()
    report = deliver_due(catalog_url, DeliveryPolicy(allow_private=True), budget_s=SEND_BUDGET_S)
    seconds = time.perf_counter() - start
    silent.close()
    return [str(videos), f"{seconds:.1f}", str(len(report.answers)), "yes" if report.delivered == 1 else "no"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--videos", type=int, default=200, help="the events are spread over these (order per video)")
    parser.add_argument("--silent-videos", type=int, default=1000,
                        help="videos with an event due to the endpoint that never answers")
    parser.add_argument("--database-url", help="a catalog to use (it is migrated); a fresh SQLite file by default")
    args = parser.parse_args()
    print_header("The webhook outbox", f"uv run python -m benchmarks.webhooks --events {args.events} "
                                       f"--videos {args.videos} --silent-videos {args.silent_videos}"
                                       f"{' --database-url …' if args.database_url else ''}")
    sock = socket.create_server(("127.0.0.1", 0))
    receiver = _receiver(sock)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    policy = DeliveryPolicy(allow_private=True, retry_base_s=0.001, retry_max_delay_s=0.001)
    rows = []
    with tempfile.TemporaryDirectory(prefix="heimdex-bench-") as folder:
        catalog_url = args.database_url or f"sqlite:///{Path(folder) / 'catalog.db'}"
        migrate(catalog_url)
        with session_scope(catalog_url) as session:
            endpoints.create(session, ORG, url, ["asset.ready"], allow_private=True, max_per_org=20)
        recording = _record(catalog_url, args.events, args.videos, 0)
        log(f"recorded {args.events} events in {recording:.2f} s")
        seconds, passes = _drain(catalog_url, policy)
        rows.append(["receiver up", f"{recording:.2f}", f"{seconds:.2f}", str(passes), f"{args.events / seconds:.0f}"])
        log(f"delivered in {seconds:.2f} s")

        # Down for a pass: the endpoint's first batch is refused and waits its retry, and the endpoint is
        # set aside for the rest of the pass; the rest wait.
        recording = _record(catalog_url, args.events, args.videos, args.events)
        receiver.kill()
        receiver.join()
        sock.close()
        down = deliver_due(catalog_url, DeliveryPolicy(allow_private=True, timeout_s=2.0, retry_base_s=3600),
                           budget_s=600)
        log(f"receiver down: {down}")
        sock = socket.create_server(("127.0.0.1", int(url.split(":")[2].split("/")[0])))
        receiver = _receiver(sock)
        with session_scope(catalog_url) as session:  # back up, and the retries' time has come
            session.execute(update(WebhookDelivery).where(WebhookDelivery.status == "pending")
                            .values(next_attempt_at=utcnow()))
        seconds, passes = _drain(catalog_url, policy)
        rows.append(["after an outage", f"{recording:.2f}", f"{seconds:.2f}", str(passes),
                     f"{args.events / seconds:.0f}"])
        beside = _beside_silent(catalog_url, args.silent_videos)
    receiver.kill()
    print(table(["receiver", "record s", "drain s", "passes", "deliveries/s"], rows))
    print(table(["silent endpoint's videos", "pass s", "attempts", "other org's event sent"], [beside]))


if __name__ == "__main__":
    main()
