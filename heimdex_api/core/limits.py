"""Request-body limits: larger bodies are refused with 413 before any route reads them, and a body
that stalls is answered 408."""

import anyio
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heimdex_api.core.errors import error_response

# The upload routes take a file's bytes: each request is held to its upload's declared length instead.
UPLOADS_PATH = "/v1/uploads/"


class BodyLimitMiddleware:
    """Refuse bodies above `limit` bytes (`legacy_limit` for `POST /metadata` uploads), declared or streamed;
    the upload routes (`/v1/uploads/`) are left to check against the upload's length."""

    def __init__(self, app: ASGIApp, limit: int, legacy_limit: int) -> None:
        self.app, self.limit, self.legacy_limit = app, limit, legacy_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UPLOADS_PATH):
            await self.app(scope, receive, send)
            return
        limit = self.legacy_limit if scope["path"] == "/metadata" else self.limit
        detail = f"the request body exceeds {limit} bytes"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await error_response(413, "payload_too_large", detail)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # A streamed (chunked) body: an HTTPException is the one error FastAPI's body
                # parsing passes on (any other becomes a 400); the app's handler answers 413.
                raise HTTPException(413, detail)
            return message

        await self.app(scope, counting_receive, send)


class BodyReadTimeout(ClientDisconnect):
    """The client sent nothing of the request body for the timeout: handled as a client gone away
    (an upload keeps what arrived), and answered 408."""


class BodyReadTimeoutMiddleware:
    """Answer 408 and close the connection when a request body sends nothing for `timeout_s` while
    the app waits for it.

    Only the app's waits count, so a slow app is never timed out by its own slowness. The app
    sees the timeout as the client going away (`ClientDisconnect`): what it answers then is
    replaced by the 408 (and if it answers nothing, the 408 is sent for it).
    """

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = timed_out = started = False

        async def timed_receive() -> Message:
            nonlocal body_done, timed_out
            if body_done:  # waiting for a disconnect, not for the body
                return await receive()
            try:
                with anyio.fail_after(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise BodyReadTimeout() from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                if not started:
                    started = True
                    await _timeout_response(self.timeout_s)(scope, receive, send)
                return  # the app's own answer, past the timeout, is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except BodyReadTimeout:
            if started:
                raise
            await guarded_send({"type": "http.response.start"})


def _timeout_response(timeout_s: float) -> JSONResponse:
    response = error_response(408, "request_timeout", f"the request body sent nothing for {timeout_s:g} s")
    # uvicorn closes the connection after an answer that says so: the rest of the body is never read.
    response.headers["Connection"] = "close"
    return response
