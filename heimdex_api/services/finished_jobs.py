"""Finished jobs, kept in memory for a while: a finished run never changes, and clients read the
same jobs again and again (polling to the end, then reading the result).

A job is kept under its org and id, and only after its own org has read it: a lookup by another
org misses and goes to Dagster's storage like a lookup of an unknown id, so the time of the 404
does not tell that the job exists. It is forgotten after `ttl_s`, so a sidecar rewritten since
(a later thumbnails job) shows within minutes. Its answer, whose download URLs expire, is kept
with it and given again for at most `answer_max_age_s`. Used from the event loop only.
"""

import time
from dataclasses import dataclass

from cachetools import TTLCache

from heimdex_api.services.job_state import JobState

# About 10,000 finished jobs of 20 thumbnails, more of fewer: each entry counts its size in bytes.
FINISHED_JOBS_BYTES = 64 * 1024 * 1024
FINISHED_JOBS_TTL_S = 600.0


@dataclass
class _Kept:
    job: JobState
    answer: bytes
    answered_at: float


def _size(kept: _Kept) -> int:
    # A rough size: the answer, and the job's fields as printed.
    return len(kept.answer) + len(repr(kept.job))


class FinishedJobs:
    """Finished jobs by org and id with their last answer, at most `max_bytes` of them, each for `ttl_s` seconds."""

    def __init__(self, answer_max_age_s: float, max_bytes: int = FINISHED_JOBS_BYTES,
                 ttl_s: float = FINISHED_JOBS_TTL_S) -> None:
        self._answer_max_age_s = answer_max_age_s
        self._jobs: TTLCache[tuple[str, str], _Kept] = TTLCache(maxsize=max_bytes, ttl=ttl_s, getsizeof=_size)

    def get(self, org_id: str, job_id: str) -> tuple[JobState | None, bytes | None]:
        """The org's job if it is kept, and its answer if that is recent enough to give again."""
        kept = self._jobs.get((org_id, job_id))
        if kept is None:
            return None, None
        recent = time.monotonic() - kept.answered_at < self._answer_max_age_s
        return kept.job, kept.answer if recent else None

    def keep(self, job: JobState, answer: bytes) -> None:
        """Keep `job` and the answer just made of it, if its run has finished."""
        if not job.finished:
            return
        kept = self._jobs.get((job.org_id, job.job_id))
        if kept is not None and kept.job == job:
            # A new answer of a kept job: in place, as storing the entry again would restart its
            # `ttl_s`, and a job read at least every `ttl_s` would then never be read afresh. The
            # answer's size does not change: its URLs are signed again, to the same lengths.
            kept.answer, kept.answered_at = answer, time.monotonic()
        else:
            self._jobs[job.org_id, job.job_id] = _Kept(job, answer, time.monotonic())

    def forget(self, org_id: str, job_ids: list[str]) -> None:
        """Drop the org's jobs of `job_ids` (deleted with their video)."""
        for job_id in job_ids:
            self._jobs.pop((org_id, job_id), None)
