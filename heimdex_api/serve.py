"""The API's server: `python -m heimdex_api.serve`, the one way the API is served (scripts/run.sh,
docker-compose.yml, the README).

uvicorn with httptools, as `uvicorn[standard]` picks, but with what a bare `uvicorn` lacks:

- a bound on a request's head (request line and headers, `HEIMDEX_MAX_HEADER_BYTES`): httptools
  gathers a header of any size in memory, so one that never ends held its connection and
  its memory for good. Past the bound the answer is 431 and the connection is closed;
- `HEIMDEX_API_WORKERS` worker processes on one socket, so that a burst on one of them does not
  hold up the others;
- the catalog's migrations run once here, before the workers start, instead of in every worker
  at the same time.
"""

import argparse
import json
import os

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from heimdex_api.core.config import get_api_settings
from heimdex_pipeline.catalog.migrate import migrate

# Bytes of a request's head fed to the parser at a time while it is incomplete: the head is
# counted after each, so the count passes the bound by less than this.
_HEAD_SLICE = 4096


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering 431 and closing once a request's head passes
    `config.h11_max_incomplete_event_size` bytes (the bound uvicorn gives h11, here for httptools)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.max_head_bytes: int = self.config.h11_max_incomplete_event_size or get_api_settings().max_header_bytes
        self.head_bytes = 0
        self.in_head = True  # between requests, and until the next one's headers are complete

    def on_headers_complete(self) -> None:
        self.in_head, self.head_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head = True

    def data_received(self, data: bytes) -> None:
        # Fed in slices while the head is incomplete, so that its size is known after each; the
        # rest (a body) at once.
        view = memoryview(data)
        while self.in_head and view and not self.transport.is_closing():
            piece, view = view[:_HEAD_SLICE], view[_HEAD_SLICE:]
            super().data_received(bytes(piece))
            if self.in_head:
                self.head_bytes += len(piece)
                if self.head_bytes > self.max_head_bytes:
                    self._refuse_head()
                    return
        if view and not self.transport.is_closing():
            super().data_received(bytes(view) if len(view) != len(data) else data)

    def _refuse_head(self) -> None:
        body = json.dumps({"error": "request_header_fields_too_large",
                           "detail": f"the request line and headers exceed {self.max_head_bytes} bytes"}).encode()
        self.logger.warning("A request's head exceeded %d bytes: answered 431.", self.max_head_bytes)
        head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                 b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


APP = "heimdex_api.main:app"
WORKER_PING_TIMEOUT_S = 30


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The server's address; everything else is a setting (`HEIMDEX_API_WORKERS`, `HEIMDEX_MAX_HEADER_BYTES`, ...)."""
    parser = argparse.ArgumentParser(prog="python -m heimdex_api.serve", description="Serve the Heimdex API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = get_api_settings()  # refused settings (a weak secret) stop the server before it forks
    if settings.migrate_on_start:
        migrate(settings.catalog_url, derived_root=settings.derived_root)
        # Done for every worker: the app's own start (its lifespan) would run them in each at once.
        os.environ["HEIMDEX_MIGRATE_ON_START"] = "false"
    uvicorn.run(APP, host=args.host, port=args.port, workers=settings.api_workers,
                http=f"{__spec__.name}:BoundedHttpToolsProtocol",  # by name: each worker imports it
                h11_max_incomplete_event_size=settings.max_header_bytes,
                # uvicorn kills a worker that does not answer its supervisor's ping within this; its 5 s
                # killed workers that were starting (importing Dagster) on a busy machine.
                timeout_worker_healthcheck=WORKER_PING_TIMEOUT_S)


if __name__ == "__main__":
    main()
