"""A request-body size limit: larger bodies are refused with 413 before any route reads them."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heimdex_api.core.errors import error_response


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies above `limit` bytes (`legacy_limit` for `POST /metadata` uploads), declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int, legacy_limit: int) -> None:
        self.app, self.limit, self.legacy_limit = app, limit, legacy_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.legacy_limit if scope["path"] == "/metadata" else self.limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, limit)
            return
        received, started = 0, False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(413, "payload_too_large", f"the request body exceeds {limit} bytes")
        await response(scope, receive, send)
