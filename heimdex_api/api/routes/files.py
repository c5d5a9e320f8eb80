"""`/v1/files`: the bytes of sidecars, thumbnails and storyboard sprites on local storage, under the URL the API signed;
and, on every store, a storyboard's track and a video's scene lists (CSV, EDL, OTIO) as the API makes them.

No bearer token: like a presigned S3 URL, the signed URL is the credential (services/urls.py
makes it). It opens one object of one org until it expires, and nothing else: the signature
covers the full key, and only sidecars, thumbnails and storyboards inside the org's folder are served.
"""

import re
from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import FileResponse

from heimdex_api.api.deps import DownloadUrlsDep, SettingsDep, StoreDep
from heimdex_api.api.responses import error_responses
from heimdex_api.core.errors import NotFound
from heimdex_api.core.signing import url_signer
from heimdex_api.services.scene_lists import SIGNED_KEY, render_scene_list
from heimdex_api.services.storyboards import storyboard_vtt
from heimdex_api.services.urls import DOWNLOAD, FILES_PATH
from heimdex_pipeline.media.fingerprint import ASSET_ID_PATTERN
from heimdex_pipeline.media.storyboard import VTT_NAME
from heimdex_pipeline.outputs.sidecar import Sidecar
from heimdex_pipeline.storage import InvalidKeyError, ObjectNotFoundError
from heimdex_pipeline.storage.layout import org_key

router = APIRouter(prefix=FILES_PATH, tags=["files"])

# What the API links to (asset, sidecar and job answers), by folder and suffix.
_SERVED_FOLDERS = ("sidecars/", "thumbnails/", "storyboards/")
_MEDIA_TYPES = {".json": "application/json", ".jpg": "image/jpeg"}
# A storyboard's track, made from its geometry with the sprite's download URL in every cue.
_TRACK = re.compile(rf"^storyboards/({ASSET_ID_PATTERN.pattern.strip('^$')})/{re.escape(VTT_NAME)}$")


# The answer is a FileResponse; documented as what it holds: a stored sidecar (JSON) or a thumbnail (JPEG).
@router.get("/{org_id}/{storage_key:path}", response_model=None,
            responses={200: {"model": Sidecar, "description": "The file's bytes, as stored; `Range` requests answer 206. "
                                                              "A storyboard's track is made by the API (any origin may "
                                                              "read it), its cues pointing at the sprite's URL.",
                             "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                                         "text/vtt": {"schema": {"type": "string"}}}},
                       **error_responses("download_file", authenticated=False)})
def download_file(
        org_id: Annotated[str, Path(description="The org whose folder holds the file.")],
        storage_key: Annotated[str, Path(description="The file's `storage_key`, relative to the org's folder.")],
        settings: SettingsDep, store: StoreDep, urls: DownloadUrlsDep,
        expires: Annotated[str | None, Query(description="Unix seconds after which the URL answers 403 `url_expired`.")] = None,
        sig: Annotated[str | None, Query(description="The URL's signature; any other answers 403 `url_signature_invalid`.")] = None,
) -> Response:
    """A sidecar, thumbnail or storyboard file, by the signed URL an asset, sidecar, storyboard or job answer gave."""
    # The signature first: without one, nothing (not even whether a file exists) is answered.
    url_signer(settings).verify(DOWNLOAD, org_id, f"{org_id}/{storage_key}", expires, sig)
    try:
        key = org_key(org_id, storage_key)
    except (InvalidKeyError, ValueError):  # `..`, odd bytes, a reserved or malformed org id
        raise NotFound("no such file", code="file_not_found") from None
    if track := _TRACK.match(storage_key):
        # A player's page loads it from its own origin (`<track crossorigin>`); the URL is the only credential.
        return Response(storyboard_vtt(store, urls, org_id, track.group(1)), media_type="text/vtt; charset=utf-8",
                        headers={"Access-Control-Allow-Origin": "*"})
    if scenes := SIGNED_KEY.match(storage_key):
        scene_list = render_scene_list(store, org_id, scenes.group(1), scenes.group(2))
        return Response(scene_list.text, media_type=scene_list.media_type, headers=scene_list.headers())
    media_type = _MEDIA_TYPES.get(PurePosixPath(key).suffix)
    if not storage_key.startswith(_SERVED_FOLDERS) or media_type is None:
        raise NotFound("no such file", code="file_not_found")
    try:
        # Only a regular file of the store's own; a store with URLs of its own (S3) has none to serve.
        served = store.served_file(key)
    except ObjectNotFoundError:
        raise NotFound("the file is gone: it was replaced or removed", code="file_not_found") from None
    return FileResponse(served.path, media_type=media_type, stat_result=served.stat)
