"""The threads of requests that start jobs, and the thread that reads jobs from Dagster, kept apart
from anyio's default pool."""

from collections.abc import Callable
from typing import TypeVar

import anyio
from fastapi import FastAPI, Request

T = TypeVar("T")

# As many as anyio's default pool: job requests queue among themselves, never in front of others.
JOB_REQUEST_THREADS = 40
# As many as the instance's storages keep connections open (`optimize_for_webserver`: one each).
JOB_READ_THREADS = 1


def install_job_threads(app: FastAPI) -> None:
    """Give the app its own pools of threads for job requests and job reads."""
    app.state.job_threads = anyio.CapacityLimiter(JOB_REQUEST_THREADS)
    app.state.job_read_threads = anyio.CapacityLimiter(JOB_READ_THREADS)


async def run_job_request(request: Request, work: Callable[[], T]) -> T:
    """Run `work` (which may wait for a whole run in immediate mode) on the job requests' threads.

    On anyio's default pool, 40 requests waiting for their runs would leave health checks and
    reads without a thread until a run ends.
    """
    return await anyio.to_thread.run_sync(work, limiter=request.app.state.job_threads)


async def run_job_read(request: Request, work: Callable[[], T]) -> T:
    """Run `work`, a read of Dagster's storage, on the job reads' thread.

    The instance keeps one connection open per storage; a second read at the same time would
    open a connection of its own and close it after, which on PostgreSQL costs a new server
    process each time, several times the read. Reads one after the other on that connection are
    faster than reads side by side on new ones.
    """
    return await anyio.to_thread.run_sync(work, limiter=request.app.state.job_read_threads)
