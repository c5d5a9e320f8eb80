"""A video's storyboard as the API answers it: the geometry, the WebVTT track and the sprite.

The stored track points at `storyboard.jpg` beside it, which a player resolves against the
track's own URL. The API's track is rendered from the stored geometry with the sprite's download
URL instead (`DownloadUrls`: presigned on S3, signed by the API on local storage), so that a
player given the track needs no token for the sprite.
"""

import json
from typing import Any

from heimdex_api.core.errors import NotFound
from heimdex_api.services.urls import DownloadUrls
from heimdex_pipeline.catalog.models import Video
from heimdex_pipeline.media.storyboard import DOCUMENT_NAME, SPRITE_NAME, Storyboard, render_vtt
from heimdex_pipeline.storage import ObjectNotFoundError, ObjectStore
from heimdex_pipeline.storage.layout import org_key, storyboard_storage_key

VTT_PATH = "/v1/assets/{asset_id}/storyboard.vtt"


def _missing() -> NotFound:
    return NotFound("the storyboard does not exist yet", code="storyboard_not_found")


def _read(store: ObjectStore, video: Video, name: str) -> bytes:
    try:
        return store.read_bytes(org_key(video.org_id, storyboard_storage_key(video.asset_id, name)))
    except ObjectNotFoundError:
        raise _missing() from None


def storyboard_ref(store: ObjectStore, urls: DownloadUrls, video: Video) -> dict[str, Any] | None:
    """The asset answer's `storyboard`: the sprite's key and URL, and where its track is; None until it exists."""
    if store.stat(org_key(video.org_id, storyboard_storage_key(video.asset_id, DOCUMENT_NAME))) is None:
        return None
    storage_key = storyboard_storage_key(video.asset_id, SPRITE_NAME)
    return {"storage_key": storage_key, "url": urls.url(video.org_id, storage_key),
            "vtt_location": VTT_PATH.format(asset_id=video.asset_id)}


def storyboard_document(store: ObjectStore, urls: DownloadUrls, video: Video) -> dict[str, Any]:
    """The stored geometry with the sprite's `storage_key` and `url`; 404 until the pipeline wrote it."""
    document = json.loads(_read(store, video, DOCUMENT_NAME))
    storage_key = storyboard_storage_key(video.asset_id, SPRITE_NAME)
    return {**document, "storage_key": storage_key, "url": urls.url(video.org_id, storage_key),
            "vtt_location": VTT_PATH.format(asset_id=video.asset_id)}


def storyboard_vtt(store: ObjectStore, urls: DownloadUrls, video: Video) -> str:
    """The WebVTT track, each cue pointing at `<sprite url>#xywh=...`; 404 until the pipeline wrote it."""
    document = storyboard_document(store, urls, video)
    return render_vtt(Storyboard.model_validate(document), sprite=document["url"])


def sprite_bytes(store: ObjectStore, video: Video) -> bytes:
    """The sprite's JPEG bytes; 404 until the pipeline wrote it."""
    return _read(store, video, SPRITE_NAME)
