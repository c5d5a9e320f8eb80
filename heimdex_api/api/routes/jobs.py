"""`/v1/jobs`: the state of a job, read from Dagster's run storage."""

from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Request

from heimdex_api.api.deps import DownloadUrlsDep, InstanceDep, PrincipalDep, StoreDep
from heimdex_api.api.job_threads import run_job_read
from heimdex_api.api.params import RUN_ID_PATTERN, JobIdPath
from heimdex_api.api.responses import error_responses
from heimdex_api.core.errors import NotFound
from heimdex_api.core.security import READ
from heimdex_api.schemas import JobResponse
from heimdex_api.services.pipeline import job_view, read_job_run

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobResponse, responses=error_responses("read_job"))
async def read_job(request: Request, job_id: JobIdPath, principal: PrincipalDep, instance: InstanceDep,
                   store: StoreDep, urls: DownloadUrlsDep) -> dict[str, Any]:
    """A job (a Dagster run) of the caller's org: its type, asset, status, result or error."""
    principal.require(READ)
    if not RUN_ID_PATTERN.match(job_id):
        raise NotFound("no such job", code="job_not_found")
    job = await run_job_read(request, partial(read_job_run, instance, job_id, principal.org_id))
    # The sidecar is read apart from the job reads' one thread: from a bucket it takes a request.
    return await anyio.to_thread.run_sync(job_view, job, store, urls)
