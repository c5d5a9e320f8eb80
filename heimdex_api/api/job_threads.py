"""The threads of requests that start jobs, and the thread that reads jobs from Dagster, kept apart
from anyio's default pool; and the size of that pool."""

from collections.abc import Callable
from typing import TypeVar

import anyio
from fastapi import FastAPI, Request

T = TypeVar("T")

# As many as anyio's default pool had: job requests queue among themselves, never in front of others.
JOB_REQUEST_THREADS = 40
# anyio's default pool, where the plain-function routes and dependencies run (catalog and storage
# reads). Its own default, 40, let a burst of reads run 40 threads at once; each wants the GIL,
# which the event loop then got once in 40 switches (5 ms each), so that every answer, a health
# check's too, waited hundreds of milliseconds (docs/benchmarks.md, "A crowd"). The reads are
# short and mostly Python: a few threads overlap their waits on the database, and the rest of a
# burst queues in order for them instead of for the GIL.
REQUEST_THREADS = 8
# As many as the instance's storages keep connections open (`optimize_for_webserver`: one each).
JOB_READ_THREADS = 1


def limit_request_threads() -> None:
    """Size anyio's default pool of the running event loop to REQUEST_THREADS (call it from the app's lifespan)."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = REQUEST_THREADS


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
