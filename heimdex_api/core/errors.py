"""The API's errors, and the handlers that answer every one as `{"error": code, "detail": ...}`.

    ApiError                      any answer that is not a success
    ├── BadRequest          400   a malformed upload header, a body cut short
    ├── Unauthorized        401   no token, or a token that does not verify
    ├── Forbidden           403   a token for another org, or without the scope; a bad signed URL
    ├── NotFound            404   nothing there, or another org's object
    ├── Conflict            409   idempotency conflict, commit twice, a tus offset mismatch, ...
    ├── PreconditionFailed  412   a tus request of another protocol version
    ├── PayloadTooLarge     413   body or declared upload too large
    ├── UnsupportedMediaType 415  a tus PATCH of another content type
    ├── Unprocessable       422   input that can never succeed (bad URI, unreadable video)
    ├── ChecksumMismatch    460   tus: the bytes do not match Upload-Checksum
    └── Unavailable         503   Dagster or the database cannot be reached

Database errors are not raised as ApiError: a lost PostgreSQL connection surfaces as SQLAlchemy's
or dagster-postgres's exception anywhere, and `_database_error` answers it 503
`database_unavailable` with `Retry-After`. Likewise a storage that cannot be used raises
StorageUnavailableError wherever it is touched: `_storage_error` answers 503 with its code
(`storage_unavailable`, `storage_bucket_missing`, `storage_access_denied`) and `Retry-After`.
"""

from collections.abc import Iterable, Iterator
from typing import Any

from dagster_postgres.utils import DagsterPostgresException
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route

from heimdex_pipeline.catalog.db import is_unavailable
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.storage import StorageUnavailableError


class ApiError(Exception):
    """An error answered with its status, machine code and detail."""

    status_code = 500
    code = "internal_error"
    # Headers the answer carries besides the standard ones (the tus routes add theirs).
    headers: dict[str, str] | None = None

    def __init__(self, detail: Any = None, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class BadRequest(ApiError):
    status_code, code = 400, "bad_request"


class Unauthorized(ApiError):
    status_code, code = 401, "unauthorized"


class Forbidden(ApiError):
    status_code, code = 403, "forbidden"


class NotFound(ApiError):
    status_code, code = 404, "not_found"


class Conflict(ApiError):
    status_code, code = 409, "conflict"


class PreconditionFailed(ApiError):
    """412: a tus request of another protocol version."""

    status_code, code = 412, "tus_version_unsupported"


class PayloadTooLarge(ApiError):
    status_code, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status_code, code = 415, "unsupported_media_type"


class Unprocessable(ApiError):
    status_code, code = 422, "unprocessable"


class ChecksumMismatch(ApiError):
    """460, the checksum extension's own status: the bytes do not match `Upload-Checksum`."""

    status_code, code = 460, "checksum_mismatch"


class Unavailable(ApiError):
    status_code, code = 503, "unavailable"


# Codes for HTTP errors raised by Starlette itself (unknown route, wrong method).
_HTTP_CODES = {400: "invalid_body", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "unprocessable"}


def error_response(status_code: int, code: str, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one JSON shape of every error."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status_code, headers=headers)


# Seconds a client should wait before retrying a 503: a PostgreSQL restart or a webserver
# hiccup takes a few (see docs/reliability.md).
RETRY_AFTER_S = 5


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    elif exc.status_code == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return error_response(exc.status_code, exc.code, exc.detail, headers)


def _routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        # FastAPI keeps an included router whole; its own routes carry the full paths.
        included = getattr(route, "original_router", None)
        yield from _routes(included.routes) if included is not None else (route,)


def _allowed_methods(request: Request) -> str:
    # Starlette's 405 names the methods of the first route of the path only; a path may have several.
    path = request.scope["path"]
    return ", ".join(sorted({method for route in _routes(request.app.router.routes)
                             if isinstance(route, Route) and route.methods and route.path_regex.match(path)
                             for method in route.methods}))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), exc.detail, headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # The input is echoed back only by its location: it may be large or hold a NUL.
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
    return error_response(422, "validation_error", errors)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    get_logger("api").error("api.unhandled", path=request.url.path, error=repr(exc), exc_info=exc)
    return error_response(500, "internal_error", "unexpected server error")


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not is_unavailable(exc):
        return await _unhandled(request, exc)
    # A warning without traceback: the outage is the server's state, not a bug of this request.
    get_logger("api").warning("api.database_unavailable", path=request.url.path, error=type(exc).__name__)
    return error_response(503, "database_unavailable", "the database cannot be reached; retry later",
                          {"Retry-After": str(RETRY_AFTER_S)})


# What a client is told per storage code: the store's own message names the internal endpoint
# and bucket, which stay in the server's log.
_STORAGE_DETAILS = {
    "storage_unavailable": "the object store does not answer; retry later",
    "storage_bucket_missing": "the configured bucket does not exist; an operator must create it",
    "storage_access_denied": "the object store refuses the server's credentials; an operator must fix them",
}


async def _storage_error(request: Request, exc: StorageUnavailableError) -> JSONResponse:
    get_logger("api").warning("api.storage_unavailable", path=request.url.path, code=exc.code, error=str(exc))
    return error_response(503, exc.code, _STORAGE_DETAILS.get(exc.code, _STORAGE_DETAILS["storage_unavailable"]),
                          {"Retry-After": str(RETRY_AFTER_S)})


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of the app answer in the `{"error", "detail"}` shape."""
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(DagsterPostgresException, _database_error)
    app.add_exception_handler(StorageUnavailableError, _storage_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unhandled)
