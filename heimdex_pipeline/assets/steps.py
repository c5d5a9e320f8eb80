"""What every step of a video partition shares: its retry policy, its start (the partition's video and a
logger), interrupts that stop the run, media errors mapped to retry or not, upstream reads, and the
inline previews the web UI shows with a materialisation."""

import base64
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetExecutionContext,
    Backoff,
    DagsterEventType,
    DagsterExecutionInterruptedError,
    Failure,
    Jitter,
    RetryPolicy,
)
from structlog.stdlib import BoundLogger

from heimdex_pipeline.catalog.models import Video
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.core.settings import get_settings
from heimdex_pipeline.media.errors import TransientMediaError, UnreadableMediaError
from heimdex_pipeline.resources import CatalogResource
from heimdex_pipeline.storage import ObjectNotFoundError, ObjectStore

if TYPE_CHECKING:
    from heimdex_pipeline.media.frame_taps import SharedFrames

# Read as the definitions load: Dagster fixes a step's retry policy from its definition.
_settings = get_settings()

# Transient failures (ffmpeg killed, a file briefly missing, a full derived disk that someone
# may free) are retried with exponential backoff and jitter; unreadable input raises
# Failure(allow_retries=False) and fails at once.
MEDIA_RETRY_POLICY = RetryPolicy(
    max_retries=_settings.retry_max_retries,
    delay=_settings.retry_delay_s,
    backoff=Backoff.EXPONENTIAL,
    jitter=Jitter.PLUS_MINUS,
)


@contextmanager
def media_errors(log: BoundLogger, step: str) -> Iterator[None]:
    """Turn unreadable input into a Failure that skips retries; let transient errors retry.

    Unreadable covers a format that is no video container, a file beyond the media limits
    and a tool past its deadline: the same file would fail the same way again.
    """
    try:
        yield
    except UnreadableMediaError as exc:
        log.error(f"{step}.unreadable", error=str(exc), kind=type(exc).__name__)
        raise Failure(description=str(exc), allow_retries=False) from exc
    except TransientMediaError as exc:
        log.warning(f"{step}.transient", error=str(exc))
        raise


def _stopped() -> Failure:
    return Failure(description="interrupted: the run was stopped", allow_retries=False)


# Runs whose step was interrupted, in this process: their other steps stop at once too.
_INTERRUPTED_RUNS: set[str] = set()
# What Dagster raises in a step when the run worker gets SIGINT (or SIGTERM, which it maps to SIGINT).
_INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def _interrupted_around_a_step(context: AssetExecutionContext) -> bool:
    """Whether an interrupt reached a step of this run in Dagster's own code around the step's (before
    it is called, or once it has returned), where the step cannot catch it and Dagster makes it a retry."""
    return any(
        (cause := entry.dagster_event.step_retry_data.error.cause) is not None and cause.cls_name in _INTERRUPTS
        for entry in context.instance.all_logs(context.run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY))


def stops_when_interrupted(step: Callable[..., Any]) -> Callable[..., Any]:
    """Make an interrupt of the step (Ctrl-C, SIGTERM to run.sh, a run terminated in the UI) fail it
    for good, and every step of the run that starts after it.

    The steps run in the run worker itself (the in-process executor), where Dagster raises an
    interrupt inside the step and hands it to the step's retry policy: the step would start over
    instead of stopping, and the run be killed later, left `STARTED`. Once the step has failed,
    Dagster goes on with the steps that do not need it (the storyboard needs only the probe): they
    fail at their start, so that the run ends while the services stop. An interrupt that lands in
    Dagster's code just before or after the step's own is made a retry by Dagster: that retry, and
    every step after it, fails at its start too.
    """

    def start(context: AssetExecutionContext) -> str:
        run_id = context.run.run_id
        if run_id in _INTERRUPTED_RUNS or _interrupted_around_a_step(context):
            _INTERRUPTED_RUNS.add(run_id)
            raise _stopped()
        return run_id

    if inspect.isgeneratorfunction(step):
        @functools.wraps(step)
        def run_events(context: AssetExecutionContext, *args: object, **kwargs: object) -> Iterator[Any]:
            run_id = start(context)
            try:
                yield from step(context, *args, **kwargs)
            except (DagsterExecutionInterruptedError, KeyboardInterrupt) as exc:
                _INTERRUPTED_RUNS.add(run_id)
                raise _stopped() from exc

        return run_events

    @functools.wraps(step)
    def run(context: AssetExecutionContext, *args: object, **kwargs: object) -> Any:
        run_id = start(context)
        try:
            return step(context, *args, **kwargs)
        except (DagsterExecutionInterruptedError, KeyboardInterrupt) as exc:
            _INTERRUPTED_RUNS.add(run_id)
            raise _stopped() from exc

    return run


def read_upstream(store: ObjectStore, key: str, what: str) -> dict:
    """The JSON an upstream asset wrote at `key`; a Failure without retries when it is missing."""
    try:
        return store.read_json(key)
    except ObjectNotFoundError:
        raise Failure(description=f"no {what} ({key.rpartition('/')[2]}): materialise it first",
                      allow_retries=False) from None


def read_shared_frames(store: ObjectStore, key: str, log: BoundLogger) -> "SharedFrames | None":
    """The scene pass's frames intermediate at `key`; None when it is missing or unreadable (the step then
    decodes for itself, so that it stands alone: a retry, a materialisation of it alone)."""
    from heimdex_pipeline.media.frame_taps import SharedFrames  # numpy and OpenCV: only in the steps that decode

    try:
        return SharedFrames.from_bytes(store.read_bytes(key))
    except ObjectNotFoundError:
        return None
    except ValueError as error:
        log.warning("shared_frames.unreadable", error=str(error))
        return None


def start_step(context: AssetExecutionContext, catalog: CatalogResource, step: str) -> tuple[Video, BoundLogger]:
    """The partition's video, and a logger bound to it and to the run; logs the step's start."""
    video = catalog.video(context.partition_key)
    log = get_logger("assets", asset_id=video.asset_id, job_id=context.run.run_id, org_id=video.org_id)
    log.info(f"{step}.start", attempt=context.retry_number)
    return video, log


def inline_jpeg(path: Path, height: int) -> str | None:
    """The image at `path` scaled to `height` as markdown with a JPEG data URI, for the web UI to show
    with a materialisation (None when it does not decode)."""
    import cv2  # only the steps that write images need it (see scene_sidecar)

    image = cv2.imread(str(path))
    if image is None:
        return None
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA),
                            [cv2.IMWRITE_JPEG_QUALITY, 70])
    return f"![{path.name}](data:image/jpeg;base64,{base64.b64encode(jpeg.tobytes()).decode()})" if ok else None
