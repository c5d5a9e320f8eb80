"""Asset checks of each video partition: is what the scene, thumbnail and storyboard steps wrote sound?

The probe's own check (`video_is_readable`) is made by the probe step itself (`video.py`), the
only place that knows why a file could not be read. The sidecar's checks block: thumbnails are
planned from the scenes, so a sidecar that breaks its schema or misses part of the video stops
the run before them.
"""

from typing import Any

from dagster import AssetCheckExecutionContext, AssetCheckResult, MetadataValue, asset_check
from pydantic import ValidationError

from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.assets.storyboard import storyboard
from heimdex_pipeline.assets.video import probe_metadata, scene_sidecar, thumbnails
from heimdex_pipeline.catalog.models import Video
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.media.storyboard import DOCUMENT_NAME, SPRITE_NAME, VTT_NAME
from heimdex_pipeline.outputs.sidecar import Sidecar, ThumbnailEntry
from heimdex_pipeline.outputs.validation import (
    schema_problems,
    scene_coverage_problems,
    storyboard_problems,
    thumbnail_problems,
)
from heimdex_pipeline.resources import CatalogResource, MediaStorage
from heimdex_pipeline.storage import InvalidKeyError, ObjectNotFoundError, ObjectStore
from heimdex_pipeline.storage.layout import SIDECAR_SCHEMA_KEY, org_key, probe_key, sidecar_key, storyboard_prefix

class Unreadable(Exception):
    """A document a check needs is missing or not JSON: the check fails with this message."""


def _read(store: ObjectStore, key: str, what: str) -> Any:
    try:
        return store.read_json(key)
    except ObjectNotFoundError:
        raise Unreadable(f"no {what} ({key.rpartition('/')[2]})") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise Unreadable(f"the {what} is not JSON: {exc}") from None


def _sidecar(store: ObjectStore, video: Video) -> Sidecar:
    try:
        return Sidecar.model_validate(_read(store, sidecar_key(video.org_id, video.asset_id), "sidecar"))
    except ValidationError as exc:
        raise Unreadable(f"the sidecar breaks its schema ({exc.error_count()} errors)") from None


def _result(context: AssetCheckExecutionContext, catalog: CatalogResource, video: Video, problems: list[str],
            passed: str, **metadata: Any) -> AssetCheckResult:
    """The check's result, kept in the catalog too: passed without problems, else failed with them as its description."""
    log = get_logger("checks", asset_id=video.asset_id, job_id=context.run.run_id, org_id=video.org_id)
    spec = context.check_specs[0]
    if problems:
        log.warning("check.failed", check=spec.name, problems=problems)
    else:
        log.info("check.passed", check=spec.name)
    description = "; ".join(problems) or passed
    catalog.record_check(video, spec.asset_key, spec.name, not problems, description, context.run.run_id)
    return AssetCheckResult(passed=not problems, description=description,
                            metadata={"problems": MetadataValue.json(problems), **metadata})


@asset_check(asset=scene_sidecar, partitions_def=videos_partitions, blocking=True)
def sidecar_matches_schema(context: AssetCheckExecutionContext, catalog: CatalogResource,
                           storage: MediaStorage) -> AssetCheckResult:
    """The sidecar validates against the JSON Schema published beside it (`schemas/sidecar.schema.json`)."""
    video, store = catalog.video(context.partition_key), storage.store
    try:
        schema = _read(store, SIDECAR_SCHEMA_KEY, "sidecar schema")
        problems = schema_problems(_read(store, sidecar_key(video.org_id, video.asset_id), "sidecar"), schema)
    except Unreadable as exc:
        problems = [str(exc)]
    return _result(context, catalog, video, problems, "the sidecar matches its schema",
                   schema=MetadataValue.path(store.uri(SIDECAR_SCHEMA_KEY)))


@asset_check(asset=scene_sidecar, partitions_def=videos_partitions, blocking=True)
def scenes_cover_the_video(context: AssetCheckExecutionContext, catalog: CatalogResource,
                           storage: MediaStorage) -> AssetCheckResult:
    """The scenes follow each other from the first frame to the probe's duration, without gap or overlap."""
    video, store = catalog.video(context.partition_key), storage.store
    try:
        probe = _read(store, probe_key(video.org_id, video.asset_id), "probe metadata")
        scenes = _sidecar(store, video).scenes
    except Unreadable as exc:
        return _result(context, catalog, video, [str(exc)], "")
    problems = scene_coverage_problems(scenes, probe["duration_s"], probe.get("fps"))
    return _result(context, catalog, video, problems, f"{len(scenes)} scenes cover {probe['duration_s']} s",
                   scene_count=len(scenes), duration_s=MetadataValue.float(probe["duration_s"]))


@asset_check(asset=thumbnails, partitions_def=videos_partitions)
def thumbnails_are_stored(context: AssetCheckExecutionContext, catalog: CatalogResource,
                          storage: MediaStorage) -> AssetCheckResult:
    """Every thumbnail the sidecar lists is stored, decodes, and has the size the sidecar says."""
    video, store = catalog.video(context.partition_key), storage.store
    try:
        listed = _sidecar(store, video).thumbnails
    except Unreadable as exc:
        return _result(context, catalog, video, [str(exc)], "")

    def read(entry: ThumbnailEntry) -> bytes | None:
        try:
            return store.read_bytes(org_key(video.org_id, entry.storage_key))
        except (ObjectNotFoundError, InvalidKeyError):  # a key outside the org's folder is no thumbnail of it
            return None

    return _result(context, catalog, video, thumbnail_problems(listed, read), f"{len(listed)} thumbnails stored as listed",
                   count=len(listed))


@asset_check(asset=storyboard, partitions_def=videos_partitions)
def storyboard_matches_sprite(context: AssetCheckExecutionContext, catalog: CatalogResource,
                              storage: MediaStorage) -> AssetCheckResult:
    """The storyboard's WebVTT track parses, its cues cover the video without gap or overlap, and each
    points at its tile, inside the sprite, whose decoded size is the one its JSON gives."""
    video, store = catalog.video(context.partition_key), storage.store
    prefix = storyboard_prefix(video.org_id, video.asset_id)
    try:
        probe = _read(store, probe_key(video.org_id, video.asset_id), "probe metadata")
        document = _read(store, prefix + DOCUMENT_NAME, "storyboard geometry")
        vtt = store.read_bytes(prefix + VTT_NAME).decode("utf-8")
    except Unreadable as exc:
        return _result(context, catalog, video, [str(exc)], "")
    except ObjectNotFoundError:
        return _result(context, catalog, video, [f"no storyboard track ({VTT_NAME})"], "")
    except UnicodeDecodeError:
        return _result(context, catalog, video, ["the storyboard track is not UTF-8"], "")
    try:
        sprite: bytes | None = store.read_bytes(prefix + SPRITE_NAME)
    except ObjectNotFoundError:
        sprite = None
    problems = storyboard_problems(document, vtt, sprite, probe["duration_s"], probe.get("fps"))
    tiles = document.get("tiles") if isinstance(document, dict) else None
    count = len(tiles) if isinstance(tiles, list) else 0
    return _result(context, catalog, video, problems, f"{count} cues point into the sprite", tiles=count)


VIDEO_CHECKS = [sidecar_matches_schema, scenes_cover_the_video, thumbnails_are_stored, storyboard_matches_sprite]
# Every check of a video partition, the probe step's own included: what the API's asset answer sums up.
VIDEO_CHECK_KEYS = [*probe_metadata.check_keys, *(key for check in VIDEO_CHECKS for key in check.check_keys)]
