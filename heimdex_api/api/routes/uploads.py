"""`/v1/uploads`: an upload's bytes over HTTP, at the URLs init signs (no bearer token: the URL is the credential).

    PUT     /v1/uploads/{org_id}/{upload_id}?expires=..&sig=..       the whole file in one request
    OPTIONS /v1/uploads/{org_id}/{upload_id}/tus                      tus discovery (no signature)
    HEAD    /v1/uploads/{org_id}/{upload_id}/tus?expires=..&sig=..    tus: the offset
    PATCH   /v1/uploads/{org_id}/{upload_id}/tus?expires=..&sig=..    tus: append at the offset
    DELETE  /v1/uploads/{org_id}/{upload_id}/tus?expires=..&sig=..    tus termination: the upload is gone

The org and the upload are in the path and under the signature, so a URL names one upload and
a changed byte answers 403. The tus routes are left out of the OpenAPI document: tus is a
protocol of headers and bodiless answers (and a 460) that tus clients speak, not a JSON API.
"""

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Request, Response
from heimdex_api.api.deps import SettingsDep, StoreDep
from heimdex_api.api.responses import error_responses
from heimdex_api.core.errors import (
    ApiError,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    UnsupportedMediaType,
)
from heimdex_api.schemas import UploadReceived
from heimdex_api.services import tus
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Upload
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.uploads.lock import Ending, end_upload

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

_TUS_OPTIONS = {"Tus-Resumable": tus.TUS_VERSION, "Tus-Version": tus.TUS_VERSION,
                "Tus-Extension": tus.TUS_EXTENSIONS, "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUM_ALGORITHMS)}
_BINARY_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.put("/{org_id}/{upload_id}", response_model=UploadReceived, openapi_extra=_BINARY_BODY,
            responses=error_responses("upload_put", authenticated=False))
async def put_upload(org_id: str, upload_id: str, request: Request, settings: SettingsDep, store: StoreDep,
                     expires: str | None = None, sig: str | None = None,
                     content_length: Annotated[str | None, Header(include_in_schema=False)] = None) -> dict[str, Any]:
    """Store the whole file: the body is the file's bytes, `content_length` of them (init's `upload_url`).

    A body longer than `content_length` answers 413 and keeps nothing; a shorter one, declared so
    or cut short, is kept and leaves the upload incomplete (400 `upload_incomplete` with its
    offset; commit answers 409 `upload_incomplete`; the tus URL resumes it); a PUT after commit
    answers 409. A new PUT replaces what an earlier one stored, until commit.
    """
    tus.verify_upload_url(settings, org_id, upload_id, expires, sig)
    upload = await anyio.to_thread.run_sync(lambda: tus.load_upload(settings, org_id, upload_id, writable=True))
    declared = tus.declared_length(content_length)
    if declared is not None and declared > upload.content_length:
        raise PayloadTooLarge(f"Content-Length {declared} exceeds the upload's content_length "
                                  f"{upload.content_length}", code="upload_length_exceeded")
    kept = await tus.receive(settings, store, upload, request.stream(), offset=0, restart=True)
    if kept != upload.content_length:
        raise BadRequest({"message": "the body ended before content_length bytes: the upload is incomplete",
                              "offset": kept}, code="upload_incomplete")
    return {"upload_id": upload_id, "size_bytes": kept}


def _tus_request(settings: Any, org_id: str, upload_id: str, expires: str | None, sig: str | None,
                 tus_resumable: str | None) -> int:
    until = tus.verify_upload_url(settings, org_id, upload_id, expires, sig)
    if tus_resumable != tus.TUS_VERSION:
        raise PreconditionFailed(f"Tus-Resumable must be {tus.TUS_VERSION}")
    return until


def _tus_headers(exc: ApiError) -> ApiError:
    """`exc` answered with the tus headers every tus answer carries."""
    exc.headers = {"Tus-Resumable": tus.TUS_VERSION, "Tus-Version": tus.TUS_VERSION}
    return exc


@router.options("/{org_id}/{upload_id}/tus", status_code=204, include_in_schema=False)
def tus_options(settings: SettingsDep) -> Response:
    """What the tus server supports (no signature needed: it says nothing of the upload)."""
    return Response(status_code=204, headers={**_TUS_OPTIONS, "Tus-Max-Size": str(settings.max_upload_bytes)})


@router.head("/{org_id}/{upload_id}/tus", include_in_schema=False)
async def tus_head(org_id: str, upload_id: str, settings: SettingsDep, store: StoreDep, expires: str | None = None,
                   sig: str | None = None, tus_resumable: Annotated[str | None, Header()] = None) -> Response:
    """The upload's offset and length (tus core), and when its URL expires (expiration)."""
    try:
        until = _tus_request(settings, org_id, upload_id, expires, sig, tus_resumable)
        upload = await anyio.to_thread.run_sync(lambda: tus.load_upload(settings, org_id, upload_id, writable=False))
        offset = await anyio.to_thread.run_sync(tus.upload_receiver(store, upload).offset)
    except ApiError as exc:
        raise _tus_headers(exc) from None
    return Response(status_code=200, headers={
        "Tus-Resumable": tus.TUS_VERSION, "Upload-Offset": str(offset), "Upload-Length": str(upload.content_length),
        "Upload-Expires": tus.http_date(until), "Cache-Control": "no-store"})


@router.patch("/{org_id}/{upload_id}/tus", status_code=204, include_in_schema=False)
async def tus_patch(org_id: str, upload_id: str, request: Request, settings: SettingsDep, store: StoreDep,
                    expires: str | None = None, sig: str | None = None,
                    tus_resumable: Annotated[str | None, Header()] = None,
                    upload_offset: Annotated[str | None, Header()] = None,
                    upload_checksum: Annotated[str | None, Header()] = None,
                    content_type: Annotated[str | None, Header()] = None,
                    content_length: Annotated[str | None, Header()] = None) -> Response:
    """Append the body at `Upload-Offset` (tus core), checked against `Upload-Checksum` (checksum)."""
    try:
        until = _tus_request(settings, org_id, upload_id, expires, sig, tus_resumable)
        if (content_type or "").split(";")[0].strip().lower() != "application/offset+octet-stream":
            raise UnsupportedMediaType("Content-Type must be application/offset+octet-stream")
        offset = tus.parse_offset(upload_offset)
        checksum = tus.parse_checksum(upload_checksum)
        declared = tus.declared_length(content_length)
        upload = await anyio.to_thread.run_sync(lambda: tus.load_upload(settings, org_id, upload_id, writable=True))
        if declared is not None and offset + declared > upload.content_length:
            raise PayloadTooLarge(f"the body would end past the upload's length, {upload.content_length}",
                                      code="upload_length_exceeded")
        kept = await tus.receive(settings, store, upload, request.stream(), offset=offset, restart=False, checksum=checksum)
    except ApiError as exc:
        raise _tus_headers(exc) from None
    return Response(status_code=204, headers={"Tus-Resumable": tus.TUS_VERSION, "Upload-Offset": str(kept),
                                              "Upload-Expires": tus.http_date(until)})


@router.delete("/{org_id}/{upload_id}/tus", status_code=204, include_in_schema=False)
async def tus_delete(org_id: str, upload_id: str, settings: SettingsDep, store: StoreDep, expires: str | None = None,
                     sig: str | None = None, tus_resumable: Annotated[str | None, Header()] = None) -> Response:
    """Forget the upload and its bytes (tus termination): commit then answers 404.

    A PATCH or PUT writing the upload meanwhile (in any API process) is stopped first: it answers
    404 and writes nothing more; the files go once it has let go of the upload's lock.
    """
    try:
        _tus_request(settings, org_id, upload_id, expires, sig, tus_resumable)
        # Not `load_upload`: an upload left `terminating` by a termination that died is ended again.
        upload = await anyio.to_thread.run_sync(_read_upload, settings, upload_id)
        if upload is None or upload.org_id != org_id:
            raise NotFound("no such upload: it was terminated, or never made", code="upload_not_found")
        ending = await anyio.to_thread.run_sync(lambda: end_upload(settings.catalog_url, store, upload_id,
                                                                   settings.upload_lock_lease_s))
        if ending is Ending.GONE:
            raise NotFound("no such upload: it was terminated, or never made", code="upload_not_found")
        if ending is Ending.COMMITTED:
            raise Conflict("the upload is already committed", code="upload_already_committed")
        if ending is Ending.BUSY:
            raise Conflict("the upload is ended, but a request still held it: DELETE again to remove its bytes",
                           code="upload_busy")
    except ApiError as exc:
        raise _tus_headers(exc) from None
    get_logger("api", org_id=org_id, upload_id=upload_id).info("upload.terminated")
    return Response(status_code=204, headers={"Tus-Resumable": tus.TUS_VERSION})


def _read_upload(settings: Any, upload_id: str) -> Upload | None:
    with session_scope(settings.catalog_url) as session:
        upload = session.get(Upload, upload_id)
        if upload is not None:
            session.expunge(upload)
    return upload
