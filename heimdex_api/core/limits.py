"""A request-body size limit: larger bodies are refused with 413 before any route reads them."""

from starlette.exceptions import HTTPException
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
