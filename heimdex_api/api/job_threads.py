"""The threads of requests that start jobs, kept apart from anyio's default pool."""

from collections.abc import Callable
from typing import TypeVar

import anyio
from fastapi import FastAPI, Request

T = TypeVar("T")

# As many as anyio's default pool: job requests queue among themselves, never in front of others.
JOB_REQUEST_THREADS = 40


def install_job_threads(app: FastAPI) -> None:
    """Give the app its own pool of threads for job requests."""
    app.state.job_threads = anyio.CapacityLimiter(JOB_REQUEST_THREADS)


async def run_job_request(request: Request, work: Callable[[], T]) -> T:
    """Run `work` (which may wait for a whole run in immediate mode) on the job requests' threads.

    On anyio's default pool, 40 requests waiting for their runs would leave health checks and
    reads without a thread until a run ends.
    """
    return await anyio.to_thread.run_sync(work, limiter=request.app.state.job_threads)
