"""A video's storyboard as the API answers it: the geometry, the WebVTT track and the sprite.

The stored track points at `storyboard.jpg` beside it, which a player resolves against the
track's own URL. The API's track is rendered from the stored geometry with the sprite's download
URL instead (`DownloadUrls`: presigned on S3, signed by the API on local storage), so that a
player given the track needs no token for the sprite. The track itself has a signed URL of the
API's files route (`vtt_url`), on every store, for a `<track src>` that cannot send a token.
"""

import json
from typing import Any

from heimdex_api.core.errors import NotFound
from heimdex_api.services.urls import DownloadUrls
from heimdex_pipeline.catalog.models import Video
from heimdex_pipeline.media.storyboard import DOCUMENT_NAME, SPRITE_NAME, VTT_NAME, Storyboard, render_vtt
from heimdex_pipeline.storage import ObjectNotFoundError, ObjectStore
from heimdex_pipeline.storage.layout import org_key, storyboard_storage_key

VTT_PATH = "/v1/assets/{asset_id}/storyboard.vtt"


def _missing() -> NotFound:
    return NotFound("the storyboard does not exist yet", code="storyboard_not_found")


def _read(store: ObjectStore, org_id: str, asset_id: str, name: str) -> bytes:
    try:
        return store.read_bytes(org_key(org_id, storyboard_storage_key(asset_id, name)))
    except ObjectNotFoundError:
        raise _missing() from None


def _links(urls: DownloadUrls, org_id: str, asset_id: str) -> dict[str, str]:
    storage_key = storyboard_storage_key(asset_id, SPRITE_NAME)
    return {"storage_key": storage_key, "url": urls.url(org_id, storage_key),
            "vtt_url": urls.api_url(org_id, storyboard_storage_key(asset_id, VTT_NAME)),
            "vtt_location": VTT_PATH.format(asset_id=asset_id)}


def storyboard_ref(store: ObjectStore, urls: DownloadUrls, video: Video) -> dict[str, Any] | None:
    """The asset answer's `storyboard`: the sprite's key and URL, and its track's; None until it exists."""
    if store.stat(org_key(video.org_id, storyboard_storage_key(video.asset_id, DOCUMENT_NAME))) is None:
        return None
    return _links(urls, video.org_id, video.asset_id)


def storyboard_document(store: ObjectStore, urls: DownloadUrls, video: Video) -> dict[str, Any]:
    """The stored geometry with the sprite's `storage_key` and `url`; 404 until the pipeline wrote it."""
    document = json.loads(_read(store, video.org_id, video.asset_id, DOCUMENT_NAME))
    return {**document, **_links(urls, video.org_id, video.asset_id)}


def storyboard_vtt(store: ObjectStore, urls: DownloadUrls, org_id: str, asset_id: str) -> str:
    """The WebVTT track, each cue pointing at `<sprite url>#xywh=...`; 404 until the pipeline wrote it."""
    document = json.loads(_read(store, org_id, asset_id, DOCUMENT_NAME))
    return render_vtt(Storyboard.model_validate(document),
                      sprite=urls.url(org_id, storyboard_storage_key(asset_id, SPRITE_NAME)))


def sprite_bytes(store: ObjectStore, video: Video) -> bytes:
    """The sprite's JPEG bytes; 404 until the pipeline wrote it."""
    return _read(store, video.org_id, video.asset_id, SPRITE_NAME)
