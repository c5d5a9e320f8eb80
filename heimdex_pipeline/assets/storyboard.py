"""The fourth asset of a video partition: its storyboard (sprite, WebVTT thumbnail track, geometry)."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.assets.progress import step_progress
from heimdex_pipeline.assets.steps import (
    MEDIA_RETRY_POLICY,
    inline_jpeg,
    media_errors,
    read_shared_frames,
    read_upstream,
    start_step,
    stops_when_interrupted,
)
from heimdex_pipeline.assets.video import probe_metadata
from heimdex_pipeline.media.storyboard import DOCUMENT_NAME, SPRITE_NAME, VTT_NAME, make_storyboard
from heimdex_pipeline.resources import CatalogResource, MediaStorage, MediaWork
from heimdex_pipeline.runs.pools import FFMPEG_POOL
from heimdex_pipeline.storage import disk_full_reported
from heimdex_pipeline.storage.layout import frames_key, probe_key, storyboard_prefix

# The sprite as the web UI shows it: 1600 px wide sprites are scaled down to fit the page.
PREVIEW_HEIGHT = 240


@asset(
    partitions_def=videos_partitions,
    deps=[probe_metadata],
    retry_policy=MEDIA_RETRY_POLICY,
    # 2: the tiles from the scene pass's frames when it kept them (the frame shown at each middle, or the decoded one next to it).
    code_version="storyboard-2",
    pool=FFMPEG_POOL,
    group_name="video",
    kinds={"ffmpeg", "jpeg"},
)
@stops_when_interrupted
def storyboard(context: AssetExecutionContext, catalog: CatalogResource, storage: MediaStorage,
               media: MediaWork) -> MaterializeResult:
    """A sprite of 50 evenly spaced frames (100 from 15 minutes on), the WebVTT track whose cues point
    into it (`storyboard.jpg#xywh=...`), and the same geometry as JSON; the frames kept by the scene pass
    when it has run with these settings, else decoded here."""
    video, log = start_step(context, catalog, "storyboard")
    store = storage.store
    probe = read_upstream(store, probe_key(video.org_id, video.asset_id), "probe metadata")
    prefix = storyboard_prefix(video.org_id, video.asset_id)
    shared = read_shared_frames(store, frames_key(video.org_id, video.asset_id), log)
    tiles = shared.tiles if shared is not None else None
    progress = step_progress(context, catalog, "tiles")
    # Made in a scratch folder and published whole, the JSON last: a failed attempt leaves the old
    # storyboard intact, and a reader never meets a track without its sprite.
    with store.scratch_dir(prefix) as staged:
        with media_errors(log, "storyboard"), disk_full_reported("storyboard"), \
                store.media_input(video.source_key) as source:
            board = make_storyboard(source, probe, staged, media.storyboard_tile_width, media.limits, progress=progress,
                                    tiles=tiles)
        # The preview is made from the staged sprite: once published it may be out of reach (a bucket).
        preview = inline_jpeg(staged / SPRITE_NAME, min(PREVIEW_HEIGHT, board.sprite_height)) or "_no sprite_"
        store.publish_dir(staged, prefix, prefix + DOCUMENT_NAME, board.model_dump(mode="json"))
    sprite_size = f"{board.sprite_width}x{board.sprite_height}"
    from_scene_pass = board.takes(tiles)
    log.info("storyboard.done", tiles=len(board.tiles), sprite=sprite_size, from_scene_pass=from_scene_pass)
    return MaterializeResult(metadata={
        "org_id": video.org_id,
        "tiles": len(board.tiles),
        "frames_from": "scene pass" if from_scene_pass else "own decode",
        "tile_size": f"{board.tile_width}x{board.tile_height}",
        "sprite_size": sprite_size,
        "sprite": MetadataValue.path(store.uri(prefix + SPRITE_NAME)),
        "vtt": MetadataValue.path(store.uri(prefix + VTT_NAME)),
        "geometry": MetadataValue.path(store.uri(prefix + DOCUMENT_NAME)),
        "preview": MetadataValue.md(preview),
    })
