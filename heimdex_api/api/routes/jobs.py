"""`/v1/jobs`: the state of a job, read from Dagster's run storage."""

from functools import partial

import anyio
from fastapi import APIRouter, Request, Response

from heimdex_api.api.deps import DownloadUrlsDep, InstanceDep, PrincipalDep, SettingsDep, StoreDep
from heimdex_api.api.job_threads import run_job_read
from heimdex_api.api.params import RUN_ID_PATTERN, JobIdPath
from heimdex_api.api.responses import error_responses
from heimdex_api.core.errors import NotFound
from heimdex_api.core.security import READ
from heimdex_api.schemas import JobResponse
from heimdex_api.services.job_state import JobState, job_view, read_job_state, with_progress, with_result
from heimdex_api.services.urls import DownloadUrls
from heimdex_pipeline.storage import ObjectStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _answer(job: JobState, urls: DownloadUrls) -> bytes:
    """The job's JSON answer, its download URLs signed now."""
    return JobResponse.model_validate(job_view(job, urls)).model_dump_json().encode()


def _answer_afresh(job: JobState, store: ObjectStore, urls: DownloadUrls, catalog_url: str) -> tuple[JobState, bytes]:
    job = with_progress(with_result(job, store), catalog_url)
    return job, _answer(job, urls)


@router.get("/{job_id}", response_model=JobResponse, responses=error_responses("read_job"))
async def read_job(request: Request, job_id: JobIdPath, principal: PrincipalDep, instance: InstanceDep,
                   store: StoreDep, urls: DownloadUrlsDep, settings: SettingsDep) -> Response:
    """A job (a Dagster run) of the caller's org: its type, asset, status, result or error, and its progress
    while it runs."""
    principal.require(READ)
    if not RUN_ID_PATTERN.match(job_id):
        raise NotFound("no such job", code="job_not_found")
    finished = request.app.state.finished_jobs
    job, answer = finished.get(principal.org_id, job_id)
    if answer is not None:
        return Response(answer, media_type="application/json")
    if job is None:
        job = await run_job_read(request, partial(read_job_state, instance, job_id, principal.org_id))
        # Apart from the job reads' one thread: from a bucket, the sidecar read takes a request.
        job, answer = await anyio.to_thread.run_sync(_answer_afresh, job, store, urls, settings.catalog_url)
    else:
        # In a thread too: a bucket's credentials may be refreshed over the network while URLs are signed.
        answer = await anyio.to_thread.run_sync(_answer, job, urls)
    finished.keep(job, answer)
    return Response(answer, media_type="application/json")
