"""Identical reads asked at the same time, made once: many clients polling one job or one video
cost one read of it at a time, not one each.

A read asked while another of the same key is under way does not take that one's answer, which
may predate what the caller has seen (a deletion answered a moment ago): it waits for it to end
and shares the next read with everything else asked meanwhile. So every answer comes from a read
that started after it was asked, as if each had been made alone, and a key never has more than
one read under way and one waiting. Under a crowd of readers of one job, the reads queued one per
request behind the job reads' thread for up to 30 s (docs/benchmarks.md, "A crowd").

A key says everything the answer depends on: the caller's org, the id read, the base of its URLs.
"""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class SharedReads:
    """Reads by key, each shared by the callers that asked for it while the previous one ran. Used
    from the event loop only."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[Any]] = {}
        self._next: dict[Hashable, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # held here: the loop keeps only weak references

    async def read(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        """What `work` answers (or raises), from a run of it that starts after this call."""
        shared = self._next.get(key)
        if shared is None:
            shared = self._next[key] = asyncio.get_running_loop().create_future()
            # Retrieved here too, so that an error whose callers all went away is not logged as never retrieved.
            shared.add_done_callback(lambda done: done.cancelled() or done.exception())
            task = asyncio.create_task(self._run(key, shared, work))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Shielded: a caller that goes away leaves the read to the others.
        return await asyncio.shield(shared)

    async def _run(self, key: Hashable, shared: asyncio.Future[Any], work: Callable[[], Awaitable[Any]]) -> None:
        running = self._running.get(key)
        if running is not None:
            await asyncio.wait([running])
        # From here on, callers of this key wait for the read about to start, not to join it.
        del self._next[key]
        self._running[key] = shared
        try:
            shared.set_result(await work())
        except asyncio.CancelledError:
            shared.cancel()
            raise
        except Exception as exc:  # an error is an answer too: every caller of this read gets it
            shared.set_exception(exc)
        finally:
            del self._running[key]
