"""The admission of reads (heimdex_api/core/admission.py): at most `limit` GET requests at work, the rest
in order of arrival, and health checks, downloads and writes never waiting behind them."""

import asyncio
from collections.abc import Callable

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from heimdex_api.core.admission import ReadAdmissionMiddleware


class GatedApp:
    """An app whose GET /v1/assets/<n> answers only once the test opens gate n; it records what entered."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered.append(scope["path"])
        if scope["path"].startswith("/v1/assets/"):
            await self.gates.setdefault(scope["path"], asyncio.Event()).wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def open(self, path: str) -> None:
        self.gates.setdefault(path, asyncio.Event()).set()


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.mark.anyio
async def test_reads_past_the_limit_wait_in_order_while_the_rest_is_answered() -> None:
    inner = GatedApp()
    transport = httpx.ASGITransport(app=ReadAdmissionMiddleware(inner, limit=2))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        reads = []
        for n in range(5):
            reads.append(asyncio.create_task(client.get(f"/v1/assets/{n}")))
            await asyncio.sleep(0.05)  # each reaches the middleware before the next is sent
        assert inner.entered == ["/v1/assets/0", "/v1/assets/1"], "two at work, three waiting"

        # Not counted: a health check, a download and a write are answered while the three wait.
        for answer in await asyncio.gather(client.get("/v1/health"), client.get("/v1/files/org-a/k.jpg"),
                                           client.post("/v1/ingest/init")):
            assert answer.status_code == 200
        assert not any(task.done() for task in reads)

        # A turn freed goes to the longest waiting read.
        inner.open("/v1/assets/1")
        await _until(lambda: "/v1/assets/2" in inner.entered)
        assert (await reads[1]).status_code == 200
        await asyncio.sleep(0.2)
        assert [path for path in inner.entered if path.startswith("/v1/assets/")] == [
            "/v1/assets/0", "/v1/assets/1", "/v1/assets/2"]
        for n in (0, 2, 3, 4):
            inner.open(f"/v1/assets/{n}")
        assert [(await read).status_code for read in reads] == [200] * 5
    assert [path for path in inner.entered if path.startswith("/v1/assets/")] == [
        f"/v1/assets/{n}" for n in range(5)]
