"""The error answers each route documents: `{"error": <code>, "detail": ...}`, its codes listed per status.

`ROUTE_ERRORS` is the one table: for each route, the codes it can answer by status, read from
the services (`code=` of the `ApiError`s they raise). `error_responses(route)` turns a row into
FastAPI's `responses=`, adding what every authenticated route can answer (401, 403
`missing_scope`) and, for routes with parameters or a body, 422 `validation_error`; it
replaces FastAPI's default 422 (`HTTPValidationError`), which is not what the API answers.
"""

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

UNAUTHORIZED = ("missing_token", "invalid_token", "token_expired")
_ORG = ("org_mismatch",)
_BODY_TOO_LARGE = ("payload_too_large",)
# FastAPI answers 400 for a body it cannot decode at all (not UTF-8, a broken multipart).
_BAD_BODY = ("invalid_body",)
_DATABASE = ("database_unavailable",)
# What a storage that cannot be used answers (StorageUnavailableError's codes), on every route that touches it.
_STORAGE = ("storage_unavailable", "storage_bucket_missing", "storage_access_denied")
_IDEMPOTENCY = ("idempotency_conflict", "idempotency_in_progress")
# What reading a client's file can answer (services/media.py, services/sources.py).
_SOURCE = ("invalid_source_uri", "empty_source", "unreadable_media", "unsupported_format", "media_limit_exceeded",
           "source_changed")
_JOB_503 = ("dagster_unavailable", "media_unavailable", *_DATABASE, *_STORAGE)

_DESCRIPTIONS = {
    400: "The body cannot be decoded at all.",
    401: "No bearer token, or one that does not verify or has expired.",
    403: "The token lacks the scope, or names another org than the request.",
    404: "Nothing there; another org's object answers the same.",
    409: "The request conflicts with an earlier one.",
    412: "A tus request of another protocol version than Tus-Resumable 1.0.0.",
    413: "The body is larger than the limit.",
    415: "A tus PATCH without Content-Type application/offset+octet-stream.",
    422: "The request can never succeed as it is: `validation_error` (schema) or a business code.",
    460: "tus checksum extension: the bytes do not match Upload-Checksum; nothing of them was kept.",
    503: "A service the request needs (Dagster, the catalog database, the storage, the media tools) is "
         "unavailable; retry.",
}

# Per route: the codes it can answer, by status, beyond the 401/403/422 every such route has.
ROUTE_ERRORS: dict[str, dict[int, tuple[str, ...]]] = {
    "env_check": {503: _DATABASE},
    # A content_length above the document's maximum is a 422 like any value the schema refuses: the body is small.
    "init": {400: _BAD_BODY, 403: _ORG, 413: _BODY_TOO_LARGE, 422: ("invalid_source_name", "upload_too_large"),
             503: (*_DATABASE, *_STORAGE)},
    "commit": {400: _BAD_BODY, 403: _ORG, 404: ("upload_not_found", "source_not_found"),
               409: ("upload_already_committed", "upload_incomplete", "asset_busy"), 413: _BODY_TOO_LARGE,
               422: (*_SOURCE, "content_length_mismatch"), 503: _JOB_503},
    "probe": {400: _BAD_BODY, 403: _ORG, 404: ("source_not_found",), 413: _BODY_TOO_LARGE, 422: _SOURCE,
              503: ("media_unavailable", *_STORAGE)},
    "sidecar_job": {400: _BAD_BODY, 403: _ORG, 404: ("asset_not_found", "source_not_found"),
                    409: (*_IDEMPOTENCY, "asset_busy"),
                    413: _BODY_TOO_LARGE, 422: (*_SOURCE, "source_mismatch", "invalid_idempotency_key"),
                    503: _JOB_503},
    "read_asset": {404: ("asset_not_found",), 503: (*_DATABASE, *_STORAGE)},
    "read_sidecar": {404: ("asset_not_found", "sidecar_not_found"), 503: (*_DATABASE, *_STORAGE)},
    "read_storyboard": {404: ("asset_not_found", "storyboard_not_found"), 503: (*_DATABASE, *_STORAGE)},
    "delete_asset": {404: ("asset_not_found",), 409: ("asset_busy",), 503: (*_DATABASE, *_STORAGE)},
    # Dagster's run storage lives in the same database as the catalog in production.
    "read_job": {404: ("job_not_found",), 503: (*_DATABASE, *_STORAGE)},
    "metadata": {400: _BAD_BODY, 413: _BODY_TOO_LARGE,
                 422: ("empty_source", "unreadable_media", "unsupported_format", "media_limit_exceeded"),
                 503: ("media_unavailable",)},
}
ROUTE_ERRORS["thumbnails_job"] = ROUTE_ERRORS["sidecar_job"]
ROUTE_ERRORS.update({
    "create_webhook": {400: _BAD_BODY, 409: ("webhook_limit_reached",), 413: _BODY_TOO_LARGE,
                       422: ("webhook_url_not_allowed",), 503: _DATABASE},
    "list_webhooks": {503: _DATABASE},
    "read_webhook": {404: ("webhook_not_found",), 503: _DATABASE},
    "rotate_webhook_secret": {400: _BAD_BODY, 404: ("webhook_not_found",), 413: _BODY_TOO_LARGE, 503: _DATABASE},
    "redeliver_webhook": {404: ("webhook_not_found", "delivery_not_found"), 409: ("delivery_pending",),
                          503: _DATABASE},
})
# The routes of an upload's signed URLs (api/routes/uploads.py): no bearer token, the URL is the credential.
_SIGNED_URL = ("url_signature_invalid", "url_expired")
_UPLOAD_WRITE = ("upload_already_committed", "upload_busy")
ROUTE_ERRORS["upload_put"] = {
    400: ("invalid_upload_header", "upload_incomplete"), 403: _SIGNED_URL,
    404: ("upload_not_found",), 409: _UPLOAD_WRITE, 413: ("upload_length_exceeded",), 503: (*_DATABASE, *_STORAGE)}
# tus at the resumable URL: documented here, not in the OpenAPI document (a protocol of headers).
ROUTE_ERRORS["upload_tus"] = {
    400: ("invalid_upload_header", "checksum_algorithm_unsupported"), 403: _SIGNED_URL,
    404: ("upload_not_found",), 409: (*_UPLOAD_WRITE, "upload_offset_mismatch"), 412: ("tus_version_unsupported",),
    413: ("upload_length_exceeded",), 415: ("unsupported_media_type",), 460: ("checksum_mismatch",),
    503: (*_DATABASE, *_STORAGE)}
# A download URL the API signed (services/urls.py, api/routes/files.py): no bearer token, the URL is the credential.
# `not_found`: a path no key can have (empty, a line break), which the router itself answers.
ROUTE_ERRORS["download_file"] = {403: _SIGNED_URL, 404: ("file_not_found", "not_found", "storyboard_not_found",
                                                          "sidecar_not_found"),
                                 503: _STORAGE}


def error_model(name: str, codes: tuple[str, ...]) -> type[BaseModel]:
    """The model of an error answer whose `error` is one of `codes`."""
    return create_model(
        name,
        # `enum` even for one code (pydantic would write `const`), so that clients read every list alike.
        error=(Literal[codes], Field(description="Machine-readable code.",  # type: ignore[valid-type]
                                     json_schema_extra={"enum": list(codes)})),
        detail=(Any, Field(description="What went wrong: a message, an object with a `message`, or, for "
                                       "`validation_error`, a list of `{loc, msg, type}`.")),
    )


def route_errors(route: str, *, validates: bool = True, authenticated: bool = True) -> dict[int, tuple[str, ...]]:
    """The codes `route` can answer by status: its row plus the authentication and validation ones."""
    row = ROUTE_ERRORS.get(route, {})
    codes = {**row, 401: UNAUTHORIZED, 403: ("missing_scope", *row.get(403, ()))} if authenticated else dict(row)
    if validates:
        codes[422] = ("validation_error", *row.get(422, ()))
    return dict(sorted(codes.items()))


def error_responses(route: str, *, validates: bool = True, authenticated: bool = True) -> dict[int | str, dict[str, Any]]:
    """FastAPI's `responses=` for a route (`validates`: it has parameters or a body; `authenticated`: a bearer token)."""
    camel = "".join(part.title() for part in route.split("_"))
    return {status: {"model": error_model(f"{camel}Error{status}", codes), "description": _DESCRIPTIONS[status]}
            for status, codes in route_errors(route, validates=validates, authenticated=authenticated).items()}
