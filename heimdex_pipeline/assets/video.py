"""Three assets of a video partition: probe metadata, scene sidecar, thumbnails; and what every step shares."""

import base64
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Backoff,
    Config,
    DagsterEventType,
    DagsterExecutionInterruptedError,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)
from pydantic import Field
from structlog.stdlib import BoundLogger

from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.assets.progress import step_progress
from heimdex_pipeline.catalog.models import Video
from heimdex_pipeline.logs import get_logger
from heimdex_pipeline.media.detector import DetectorParams, Scene
from heimdex_pipeline.media.errors import TransientMediaError, UnreadableMediaError
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.thumbnails import ThumbnailPolicy, extract_thumbnails, plan_thumbnails
from heimdex_pipeline.pools import FFMPEG_POOL
from heimdex_pipeline.resources import CatalogResource, MediaStorage
from heimdex_pipeline.settings import get_settings
from heimdex_pipeline.sidecar import Sidecar, SidecarSource, ThumbnailEntry, sidecar_json_schema
from heimdex_pipeline.storage import ObjectNotFoundError, ObjectStore, disk_full_reported
from heimdex_pipeline.storage.layout import (
    SIDECAR_SCHEMA_KEY,
    probe_key,
    sidecar_key,
    storage_key_of,
    thumbnails_prefix,
)

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
DETECTOR = DetectorParams(threshold=_settings.scene_threshold,
                          min_scene_len_frames=_settings.scene_min_scene_len_frames)
PREVIEW_COUNT = 4
PREVIEW_HEIGHT = 90
# The probe step's own check: the one place that knows why a file could not be read.
READABLE_CHECK = "video_is_readable"


def _detector_version() -> str:
    """The sidecar's code version: a change of detector, version or parameters makes partitions stale."""
    described = DETECTOR.describe()
    params = ",".join(f"{k}={v}" for k, v in sorted(described["parameters"].items()))
    # scenes-N counts changes to what the detector is fed (2: PyAV decoding in two passes).
    return f"scenes-2;{described['name']}-{described['version']};{params}"


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


def start_step(context: AssetExecutionContext, catalog: CatalogResource, step: str) -> tuple[Video, BoundLogger]:
    """The partition's video, and a logger bound to it and to the run; logs the step's start."""
    video = catalog.video(context.partition_key)
    log = get_logger("assets", asset_id=video.asset_id, job_id=context.run.run_id, org_id=video.org_id)
    log.info(f"{step}.start", attempt=context.retry_number)
    return video, log


@asset(
    partitions_def=videos_partitions,
    retry_policy=MEDIA_RETRY_POLICY,
    code_version="probe-2",
    group_name="video",
    kinds={"ffmpeg", "json"},
    check_specs=[AssetCheckSpec(READABLE_CHECK, asset="probe_metadata", partitions_def=videos_partitions,
                                blocking=True, description="ffprobe reads the file as a video within the media limits")],
)
@stops_when_interrupted
def probe_metadata(context: AssetExecutionContext, catalog: CatalogResource,
                   storage: MediaStorage) -> Iterator[AssetCheckResult | MaterializeResult]:
    """ffprobe's view of the video, normalised: duration, size, frame rate, codec, rotation, streams."""
    video, log = start_step(context, catalog, "probe")
    store = storage.store
    try:
        with media_errors(log, "probe"), store.probe_input(video.source_key) as source:
            probe = probe_video(source)
    except Failure as failure:
        # Unreadable for good: the check says why, and the step still fails.
        yield AssetCheckResult(check_name=READABLE_CHECK, passed=False, description=failure.description)
        raise
    key = probe_key(video.org_id, video.asset_id)
    store.write_json(key, probe)
    log.info("probe.done", duration_s=probe["duration_s"], codec=probe["codec"])
    yield MaterializeResult(
        metadata={
            "org_id": video.org_id,
            "source": MetadataValue.path(store.uri(video.source_key)),
            "duration_s": MetadataValue.float(probe["duration_s"]),
            "resolution": f"{probe['width']}x{probe['height']}",
            "display_resolution": f"{probe['display_width']}x{probe['display_height']}",
            "fps": MetadataValue.float(probe["fps"] or 0.0),
            "codec": probe["codec"] or "unknown",
            "rotation": probe["rotation"],
            "probe_uri": MetadataValue.path(store.uri(key)),
        },
        check_results=[AssetCheckResult(check_name=READABLE_CHECK, passed=True,
                                        description=f"{probe['codec']} video, {probe['duration_s']} s")],
    )


@asset(
    partitions_def=videos_partitions,
    deps=[probe_metadata],
    retry_policy=MEDIA_RETRY_POLICY,
    code_version=_detector_version(),
    pool=FFMPEG_POOL,
    group_name="video",
    kinds={"pyscenedetect", "json"},
)
@stops_when_interrupted
def scene_sidecar(context: AssetExecutionContext, catalog: CatalogResource, storage: MediaStorage) -> MaterializeResult:
    """The scene sidecar (`<asset_id>.vna.json`): source, probe and PySceneDetect's scenes."""
    video, log = start_step(context, catalog, "scenes")
    store = storage.store
    probe = read_upstream(store, probe_key(video.org_id, video.asset_id), "probe metadata")
    # PyAV, OpenCV and PySceneDetect load in the step that decodes, not in every process that
    # loads the definitions (webserver, daemon, code server, API): a second per process.
    from heimdex_pipeline.media.scenes import detect_scenes

    progress = step_progress(context, catalog, "frames")  # before the source is fetched: the step has begun
    with media_errors(log, "scenes"), store.media_input(video.source_key) as source:
        detection = detect_scenes(source, probe, DETECTOR, progress=progress)
    sidecar = Sidecar(
        asset_id=video.asset_id,
        org_id=video.org_id,
        source=SidecarSource(uri=store.uri(video.source_key), filename=video.source_name,
                             size_bytes=video.size_bytes, hash=video.hash, hash_quality=video.hash_quality),
        probe=probe,
        scenes=[vars(scene) for scene in detection.scenes],
        detector=detection.detector,
    )
    key = sidecar_key(video.org_id, video.asset_id)
    try:
        # Thumbnails follow the scenes: while the cuts are unchanged the existing ones still hold.
        previous = Sidecar.model_validate(store.read_json(key))
    except ObjectNotFoundError:
        previous = None
    if previous is not None and previous.scenes == sidecar.scenes:
        sidecar.thumbnails = previous.thumbnails
    store.write_json(SIDECAR_SCHEMA_KEY, sidecar_json_schema())
    store.write_json(key, sidecar.model_dump(mode="json"))
    log.info("scenes.done", scene_count=len(detection.scenes), frames=detection.frame_count,
             frames_decoded=detection.frames_decoded)
    return MaterializeResult(metadata={
        "org_id": video.org_id,
        "scene_count": len(detection.scenes),
        "cuts_s": MetadataValue.json([scene.start_s for scene in detection.scenes[1:]]),
        "duration_s": MetadataValue.float(probe["duration_s"]),
        "resolution": f"{probe['width']}x{probe['height']}",
        "frames": detection.frame_count,
        "frames_decoded": detection.frames_decoded,
        "detector": MetadataValue.json(detection.detector),
        "sidecar_uri": MetadataValue.path(store.uri(key)),
    })


class ThumbnailConfig(Config):
    """The contract's thumbnail policy; by default one frame per scene."""

    interval_s: float = Field(default=0.0, ge=0, description="0: one per scene; else one every interval_s seconds")
    max_count: int = Field(default=_settings.thumbnail_max_count, ge=1, le=50)
    max_height: int = Field(default=_settings.thumbnail_max_height, ge=64)


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


def _preview_markdown(paths: list[Path]) -> str:
    """Small inline copies of the first thumbnails, so the web UI shows them with the materialisation."""
    images = [image for path in paths[:PREVIEW_COUNT] if (image := inline_jpeg(path, PREVIEW_HEIGHT))]
    return " ".join(images) or "_no thumbnail_"


@asset(
    partitions_def=videos_partitions,
    deps=[scene_sidecar],
    retry_policy=MEDIA_RETRY_POLICY,
    code_version="thumbnails-2",
    pool=FFMPEG_POOL,
    group_name="video",
    kinds={"ffmpeg", "jpeg"},
)
@stops_when_interrupted
def thumbnails(context: AssetExecutionContext, config: ThumbnailConfig, catalog: CatalogResource,
               storage: MediaStorage) -> MaterializeResult:
    """JPEG thumbnails, one representative frame per scene by default, listed in the sidecar."""
    video, log = start_step(context, catalog, "thumbnails")
    store = storage.store
    index_key = sidecar_key(video.org_id, video.asset_id)
    sidecar = Sidecar.model_validate(read_upstream(store, index_key, "scene sidecar"))
    probe = read_upstream(store, probe_key(video.org_id, video.asset_id), "probe metadata")
    policy = ThumbnailPolicy(interval_s=config.interval_s, max_count=config.max_count, max_height=config.max_height)
    slots = plan_thumbnails([Scene(**scene.model_dump()) for scene in sidecar.scenes], probe["duration_s"], policy)
    prefix = thumbnails_prefix(video.org_id, video.asset_id)
    progress = step_progress(context, catalog, "thumbnails")
    # Extract into a scratch folder and publish it whole with the sidecar that lists it: a failed
    # attempt (a full disk included) leaves the old set and the old sidecar intact.
    with store.scratch_dir(prefix) as staged:
        with media_errors(log, "thumbnails"), disk_full_reported("thumbnails"), \
                store.media_input(video.source_key) as source:
            extracted = extract_thumbnails(source, probe, slots, staged, policy.max_height, progress=progress)
        keys = [prefix + thumb.path.name for thumb in extracted]
        sidecar.thumbnails = [
            ThumbnailEntry(idx=t.idx, storage_key=storage_key_of(video.org_id, key), width=t.width,
                           height=t.height, ts_ms=t.ts_ms)
            for t, key in zip(extracted, keys, strict=True)
        ]
        # The preview is made from the staged files: once published they may be out of reach (a bucket).
        preview = _preview_markdown([thumb.path for thumb in extracted])
        store.publish_dir(staged, prefix, index_key, sidecar.model_dump(mode="json"))
    log.info("thumbnails.done", count=len(keys))
    return MaterializeResult(metadata={
        "org_id": video.org_id,
        "count": len(keys),
        "policy": MetadataValue.json(config.model_dump()),
        "folder": MetadataValue.path(store.uri(prefix.rstrip("/"))),
        "files": MetadataValue.json([store.uri(key) for key in keys]),
        "preview": MetadataValue.md(preview),
    })
