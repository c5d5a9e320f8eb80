"""`/v1/ingest`: reserve an upload, commit it, and probe a file without changing anything."""

from functools import partial
from typing import Any

from fastapi import APIRouter, Request

from heimdex_api.api.deps import InstanceDep, LauncherDep, PrincipalDep, SettingsDep, StoreDep
from heimdex_api.api.job_threads import run_job_request
from heimdex_api.api.responses import error_responses
from heimdex_api.core.security import READ, WRITE
from heimdex_api.schemas import (
    CommitRequest,
    CommitResponse,
    InitRequest,
    InitResponse,
    ProbeResponse,
    SourceRequest,
)
from heimdex_api.services import uploads

router = APIRouter(prefix="/v1/ingest", tags=["ingest"])


@router.post("/init", status_code=201, response_model=InitResponse, responses=error_responses("init"))
def init(body: InitRequest, request: Request, principal: PrincipalDep, settings: SettingsDep,
         store: StoreDep) -> dict[str, Any]:
    """Reserve one upload; send the file to `presigned.upload_url` (one PUT) or `presigned.resumable_url` (tus),
    or place it at `presigned.asset_uri` (local storage), then commit."""
    principal.require(WRITE)
    principal.require_org(body.org_id)
    return uploads.init_upload(settings, store, body, str(request.base_url))


@router.post("/commit", response_model=CommitResponse, responses=error_responses("commit"))
async def commit(body: CommitRequest, request: Request, principal: PrincipalDep, settings: SettingsDep,
                 store: StoreDep, instance: InstanceDep, launcher: LauncherDep) -> dict[str, Any]:
    """Identify the uploaded file and start its ingest (unless its content is already known)."""
    principal.require(WRITE)
    principal.require_org(body.org_id)
    return await run_job_request(request, partial(uploads.commit_upload, settings, store, instance, launcher, body))


@router.post("/probe", response_model=ProbeResponse, responses=error_responses("probe"))
def probe(body: SourceRequest, principal: PrincipalDep, settings: SettingsDep, store: StoreDep) -> dict[str, Any]:
    """The probe document of a file in the org's uploads, with its hash and asset id (a dry run)."""
    principal.require(READ)
    principal.require_org(body.org_id)
    return uploads.probe_source(settings, store, body)
