"""Finished jobs, kept in memory for a while: a finished run never changes, and clients read the
same jobs again and again (polling to the end, then reading the result).

A job is kept under its org and id, and only after its own org has read it: a lookup by another
org misses and goes to Dagster's storage like a lookup of an unknown id, so the time of the 404
does not tell that the job exists. It is forgotten after `ttl_s`, so a sidecar rewritten since
(a later thumbnails job) shows within minutes. Its answer, whose download URLs expire, is kept
with it and given again for at most `answer_max_age_s`. Used from the event loop only.

A job is kept with the time its video was catalogued (`video_stamp`), and given again only while
the catalog still has that video: a DELETE answered by another worker process (or another host)
removes the video and its runs, and its jobs must answer 404 everywhere at once, not after
`ttl_s`. A video deleted and uploaded again is catalogued anew, with another time.
"""

import time
from dataclasses import dataclass, replace
from datetime import datetime

from cachetools import TTLCache

from heimdex_api.services.job_state import JobState
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.repository import get_video

# About 10,000 finished jobs of 20 thumbnails, more of fewer: each entry counts its size in bytes.
FINISHED_JOBS_BYTES = 64 * 1024 * 1024
FINISHED_JOBS_TTL_S = 600.0


def video_stamp(catalog_url: str, job: JobState) -> datetime | None:
    """When the job's video was catalogued, if the catalog has it for the job's org."""
    if job.asset_id is None:
        return None
    with session_scope(catalog_url) as session:
        video = get_video(session, job.asset_id)
    return video.created_at if video is not None and video.org_id == job.org_id else None


@dataclass
class KeptJob:
    """A kept job, its last answer and when it was made, and when its video was catalogued."""

    job: JobState
    answer: bytes | None
    answered_at: float
    video: datetime


def _size(kept: KeptJob) -> int:
    # A rough size: the answer, and the job's fields as printed.
    return len(kept.answer or b"") + len(repr(kept.job))


class FinishedJobs:
    """Finished jobs by org and id with their last answer, at most `max_bytes` of them, each for `ttl_s` seconds."""

    def __init__(self, answer_max_age_s: float, max_bytes: int = FINISHED_JOBS_BYTES,
                 ttl_s: float = FINISHED_JOBS_TTL_S) -> None:
        self._answer_max_age_s = answer_max_age_s
        self._jobs: TTLCache[tuple[str, str], KeptJob] = TTLCache(maxsize=max_bytes, ttl=ttl_s, getsizeof=_size)

    def get(self, org_id: str, job_id: str) -> KeptJob | None:
        """The org's job if it is kept (to be given again only while the catalog has its `video`), its
        answer None once too old to give again."""
        kept = self._jobs.get((org_id, job_id))
        if kept is None or time.monotonic() - kept.answered_at < self._answer_max_age_s:
            return kept
        return replace(kept, answer=None)

    def keep(self, job: JobState, answer: bytes, video: datetime | None) -> None:
        """Keep `job` and the answer just made of it, if its run has finished and its video is catalogued
        (`video`: when, as `video_stamp` read it after the job)."""
        if not job.finished or video is None:
            return
        kept = self._jobs.get((job.org_id, job.job_id))
        if kept is not None and kept.job == job and kept.video == video:
            # A new answer of a kept job: in place, as storing the entry again would restart its
            # `ttl_s`, and a job read at least every `ttl_s` would then never be read afresh. The
            # answer's size does not change: its URLs are signed again, to the same lengths.
            kept.answer, kept.answered_at = answer, time.monotonic()
        else:
            self._jobs[job.org_id, job.job_id] = KeptJob(job, answer, time.monotonic(), video)

    def forget(self, org_id: str, job_ids: list[str]) -> None:
        """Drop the org's jobs of `job_ids` (deleted with their video)."""
        for job_id in job_ids:
            self._jobs.pop((org_id, job_id), None)
