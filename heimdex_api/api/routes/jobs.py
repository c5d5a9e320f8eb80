"""`/v1/jobs`: the state of a job, read from Dagster's run storage."""

from datetime import datetime
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
from heimdex_api.services.finished_jobs import KeptJob, video_stamp
from heimdex_api.services.job_state import JobState, job_view, read_job_state, with_progress, with_result
from heimdex_api.services.urls import DownloadUrls
from heimdex_pipeline.storage import ObjectStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def _answer(job: JobState, urls: DownloadUrls) -> bytes:
    """The job's JSON answer, its download URLs signed now."""
    return JobResponse.model_validate(job_view(job, urls)).model_dump_json().encode()


def _answer_afresh(job: JobState, store: ObjectStore, urls: DownloadUrls,
                   catalog_url: str) -> tuple[JobState, bytes, datetime | None]:
    """The job with its result and progress, its answer, and when its video was catalogued (read last)."""
    job = with_progress(with_result(job, store), catalog_url)
    return job, _answer(job, urls), video_stamp(catalog_url, job)


def _answer_kept(kept: KeptJob, urls: DownloadUrls, catalog_url: str) -> bytes | None:
    """The kept job's answer, signed again if it is old; None once the catalog no longer has its video."""
    if video_stamp(catalog_url, kept.job) != kept.video:
        return None
    return kept.answer if kept.answer is not None else _answer(kept.job, urls)


@router.get("/{job_id}", response_model=JobResponse, responses=error_responses("read_job"))
async def read_job(request: Request, job_id: JobIdPath, principal: PrincipalDep, instance: InstanceDep,
                   store: StoreDep, urls: DownloadUrlsDep, settings: SettingsDep) -> Response:
    """A job (a Dagster run) of the caller's org: its type, asset, status, result or error, and its progress
    while it runs."""
    principal.require(READ)
    if not RUN_ID_PATTERN.match(job_id):
        raise NotFound("no such job", code="job_not_found")
    finished, org_id = request.app.state.finished_jobs, principal.org_id

    async def fresh() -> bytes:
        kept = finished.get(org_id, job_id)
        if kept is not None:
            # In a thread: the catalog is read, and a bucket's credentials may be refreshed over the
            # network while URLs are signed.
            answer = await anyio.to_thread.run_sync(_answer_kept, kept, urls, settings.catalog_url)
            if answer is None:
                finished.forget(org_id, [job_id])
            else:
                if kept.answer is None:
                    finished.keep(kept.job, answer, kept.video)
                return answer
        job = await run_job_read(request, partial(read_job_state, instance, job_id, org_id))
        # Apart from the job reads' one thread: from a bucket, the sidecar read takes a request.
        job, answer, video = await anyio.to_thread.run_sync(_answer_afresh, job, store, urls, settings.catalog_url)
        finished.keep(job, answer, video)
        return answer

    answer = await request.app.state.shared_reads.read(("job", org_id, job_id, urls.base_url), fresh)
    return Response(answer, media_type="application/json")
