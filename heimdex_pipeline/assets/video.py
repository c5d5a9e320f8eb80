"""Three assets of a video partition: probe metadata, scene sidecar, thumbnails."""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field, TypeAdapter, ValidationError

from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.assets.progress import step_progress
from heimdex_pipeline.assets.steps import (
    MEDIA_RETRY_POLICY,
    inline_jpeg,
    media_errors,
    read_upstream,
    start_step,
    stops_when_interrupted,
)
from heimdex_pipeline.catalog.models import Video
from heimdex_pipeline.core.settings import get_settings
from heimdex_pipeline.media.detector import DetectorParams, Scene
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.thumbnails import ThumbnailPolicy, extract_thumbnails, plan_thumbnails
from heimdex_pipeline.outputs.sidecar import Sidecar, SidecarSource, ThumbnailEntry, sidecar_json_schema
from heimdex_pipeline.resources import CatalogResource, MediaStorage, MediaWork, QcRules
from heimdex_pipeline.runs.pools import FFMPEG_POOL
from heimdex_pipeline.storage import ObjectNotFoundError, disk_full_reported
from heimdex_pipeline.storage.layout import (
    SIDECAR_SCHEMA_KEY,
    frames_key,
    probe_key,
    sidecar_key,
    storage_key_of,
    thumbnails_prefix,
)

# Read as the definitions load: Dagster fixes an asset's code version and config schema from its
# definition. What a step reads as it runs comes from its resources (`MediaWork`).
_settings = get_settings()

# The deployment's detector (HEIMDEX_SCENE_DETECTOR), for every job that names none.
DETECTOR: DetectorParams = _settings.scene_detector
DETECTOR_PARAMS: TypeAdapter[DetectorParams] = TypeAdapter(DetectorParams)
PREVIEW_COUNT = 4
PREVIEW_HEIGHT = 90
# The probe step's own check: the one place that knows why a file could not be read.
READABLE_CHECK = "video_is_readable"

# The tag by which Dagster's executors order the steps ready at once (its docs, "op priority");
# Dagster exports it only from a private module.
OP_PRIORITY_TAG = "dagster/priority"


def _readable(context: AssetExecutionContext, catalog: CatalogResource, video: Video, passed: bool,
              description: str) -> AssetCheckResult:
    """The probe's own check, kept in the catalog too: could ffprobe read the file as a video?"""
    catalog.record_check(video, context.asset_key, READABLE_CHECK, passed, description, context.run.run_id)
    return AssetCheckResult(check_name=READABLE_CHECK, passed=passed, description=description)


def _detector_version(detector: DetectorParams) -> str:
    """The sidecar's code version: a change of detector, version or parameters makes partitions stale."""
    # scenes-N counts changes to what the detector is fed (3: PySceneDetect's own frames, but for
    # ContentDetector's two looks and Heimdex's detector).
    return f"scenes-3;{detector.code_version()}"


class SidecarConfig(Config):
    """The scene detector of this run; by default the deployment's."""

    detector: dict[str, Any] | None = Field(
        default=None, description='A detector as the API takes it ({"kind": "hash", "threshold": 0.3}); '
                                  "null: HEIMDEX_SCENE_DETECTOR")

    def params(self) -> DetectorParams:
        """The detector to run; a Failure that says what is wrong with one given."""
        if self.detector is None:
            return DETECTOR
        try:
            return DETECTOR_PARAMS.validate_python(self.detector)
        except ValidationError as error:
            raise Failure(f"invalid detector: {error}", allow_retries=False) from None


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
def probe_metadata(context: AssetExecutionContext, catalog: CatalogResource, storage: MediaStorage,
                   media: MediaWork) -> Iterator[AssetCheckResult | MaterializeResult]:
    """ffprobe's view of the video, normalised: duration, size, frame rate, codec, rotation, streams."""
    video, log = start_step(context, catalog, "probe")
    store = storage.store
    try:
        with media_errors(log, "probe"), store.probe_input(video.source_key) as source:
            probe = probe_video(source, media.limits)
    except Failure as failure:
        # Unreadable for good: the check says why, and the step still fails.
        yield _readable(context, catalog, video, False, failure.description)
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
        check_results=[_readable(context, catalog, video, True, f"{probe['codec']} video, {probe['duration_s']} s")],
    )


@asset(
    partitions_def=videos_partitions,
    deps=[probe_metadata],
    retry_policy=MEDIA_RETRY_POLICY,
    code_version=_detector_version(DETECTOR),
    pool=FFMPEG_POOL,
    group_name="video",
    kinds={"pyscenedetect", "json"},
    # Before the storyboard and QC steps of the same run, which read the frames it keeps (they do not
    # depend on it: they decode for themselves when its frames are missing).
    op_tags={OP_PRIORITY_TAG: "1"},
)
@stops_when_interrupted
def scene_sidecar(context: AssetExecutionContext, config: SidecarConfig, catalog: CatalogResource,
                  storage: MediaStorage, media: MediaWork, qc: QcRules) -> MaterializeResult:
    """The scene sidecar (`<asset_id>.vna.json`): source, probe and the detector's scenes (with their transitions);
    beside it, what the storyboard and QC steps need of the frames it decodes (`<asset_id>.frames.npz`)."""
    detector = config.params()
    video, log = start_step(context, catalog, "scenes")
    store = storage.store
    probe = read_upstream(store, probe_key(video.org_id, video.asset_id), "probe metadata")
    # PyAV, OpenCV and PySceneDetect load in the step that decodes, not in every process that
    # loads the definitions (webserver, daemon, code server, API): a second per process.
    from heimdex_pipeline.media.scenes import detect_scenes
    from heimdex_pipeline.media.shared_frames import scene_pass_tap

    progress = step_progress(context, catalog, "frames")  # before the source is fetched: the step has begun
    tap = scene_pass_tap(probe, media.storyboard_tile_width, qc.black_pixel_threshold)
    with media_errors(log, "scenes"), store.media_input(video.source_key) as source:
        detection = detect_scenes(source, probe, detector, limits=media.limits, progress=progress, tap=tap)
    shared = tap.shared(detection.frame_count)
    store.write_bytes(frames_key(video.org_id, video.asset_id), shared.to_bytes(), "application/octet-stream")
    sidecar = Sidecar(
        asset_id=video.asset_id,
        org_id=video.org_id,
        source=SidecarSource(uri=store.uri(video.source_key), filename=video.source_name,
                             size_bytes=video.size_bytes, hash=video.hash, hash_quality=video.hash_quality),
        probe=probe,
        scenes=[asdict(scene) for scene in detection.scenes],
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
    # The data version names the detector this run used (a job may choose another than the code
    # version's) and the cuts, so the thumbnails go stale only when the cuts changed.
    cuts = hashlib.sha256(json.dumps([asdict(scene) for scene in detection.scenes]).encode()).hexdigest()[:16]
    return MaterializeResult(data_version=DataVersion(f"{_detector_version(detector)};cuts={cuts}"), metadata={
        "org_id": video.org_id,
        "scene_count": len(detection.scenes),
        "cuts_s": MetadataValue.json([scene.start_s for scene in detection.scenes[1:]]),
        "duration_s": MetadataValue.float(probe["duration_s"]),
        "resolution": f"{probe['width']}x{probe['height']}",
        "frames": detection.frame_count,
        "frames_decoded": detection.frames_decoded,
        "shared_frames": MetadataValue.json({"storyboard_tiles": shared.tiles is not None,
                                             "qc_frames": 0 if shared.pictures is None else len(shared.pictures.seconds)}),
        "detector": MetadataValue.json(detection.detector),
        "sidecar_uri": MetadataValue.path(store.uri(key)),
    })


class ThumbnailConfig(Config):
    """The contract's thumbnail policy; by default one frame per scene."""

    interval_s: float = Field(default=0.0, ge=0, description="0: one per scene; else one every interval_s seconds")
    max_count: int = Field(default=_settings.thumbnail_max_count, ge=1, le=50)
    max_height: int = Field(default=_settings.thumbnail_max_height, ge=64)


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
               storage: MediaStorage, media: MediaWork) -> MaterializeResult:
    """JPEG thumbnails, one representative frame per scene by default, listed in the sidecar."""
    video, log = start_step(context, catalog, "thumbnails")
    store = storage.store
    index_key = sidecar_key(video.org_id, video.asset_id)
    sidecar = Sidecar.model_validate(read_upstream(store, index_key, "scene sidecar"))
    probe = read_upstream(store, probe_key(video.org_id, video.asset_id), "probe metadata")
    policy = ThumbnailPolicy(interval_s=config.interval_s, max_count=config.max_count, max_height=config.max_height)
    scenes = [Scene(**scene.model_dump(exclude={"transition"})) for scene in sidecar.scenes]
    slots = plan_thumbnails(scenes, probe["duration_s"], policy)
    prefix = thumbnails_prefix(video.org_id, video.asset_id)
    progress = step_progress(context, catalog, "thumbnails")
    # Extract into a scratch folder and publish it whole with the sidecar that lists it: a failed
    # attempt (a full disk included) leaves the old set and the old sidecar intact.
    with store.scratch_dir(prefix) as staged:
        with media_errors(log, "thumbnails"), disk_full_reported("thumbnails"), \
                store.media_input(video.source_key) as source:
            extracted = extract_thumbnails(source, probe, slots, staged, policy.max_height, media.limits,
                                           progress=progress)
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
