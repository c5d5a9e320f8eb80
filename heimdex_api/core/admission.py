"""Admission of reads: a worker works on a bounded number of GET requests at once, and the rest wait
their turn in order of arrival, so that a crowd of readers cannot fill its event loop."""

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

# Not counted: a health check is answered at once whatever the crowd, and a download streams for
# as long as its client reads (it would hold a turn without working).
UNCOUNTED_PATHS = ("/v1/health",)
UNCOUNTED_PREFIXES = ("/v1/files/",)


class ReadAdmissionMiddleware:
    """Let at most `limit` GET requests run at once on this event loop; the others wait, first come,
    first served. Writes are not counted: uploads stream bodies, and in `immediate` mode a job request
    waits for its run, so either would hold a turn while doing nothing.

    Without it, 150 readers on one worker kept 150 requests interleaved on its loop: every turn of
    the loop went through all of them, and a health check on a new connection waited behind them
    (p99 150 ms and more, docs/benchmarks.md, "A crowd"). A request that waits here costs nothing
    until its turn.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit
        self._turns: anyio.Semaphore | None = None  # made on the loop that serves

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or scope["method"] != "GET" or path in UNCOUNTED_PATHS
                or path.startswith(UNCOUNTED_PREFIXES)):
            await self.app(scope, receive, send)
            return
        if self._turns is None:
            self._turns = anyio.Semaphore(self.limit, fast_acquire=True)
        async with self._turns:
            await self.app(scope, receive, send)
