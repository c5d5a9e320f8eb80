"""A video's scene list as editors take it (CSV, CMX 3600 EDL, OpenTimelineIO), made from its stored sidecar.

Nothing is stored: each is rendered from the sidecar when asked, at the asset's routes
(`/v1/assets/{asset_id}/scenes.csv`, with the token) and at a signed URL of the API's files
route (`sidecars/<asset_id>.scenes.csv`, without it), so an editor's download needs no token.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from heimdex_api.core.errors import NotFound
from heimdex_api.services.urls import DownloadUrls
from heimdex_pipeline.media.fingerprint import ASSET_ID_PATTERN
from heimdex_pipeline.outputs.scene_lists import scenes_csv, scenes_edl, scenes_otio
from heimdex_pipeline.outputs.sidecar import Sidecar
from heimdex_pipeline.storage import ObjectNotFoundError, ObjectStore
from heimdex_pipeline.storage.layout import sidecar_key


@dataclass(frozen=True)
class SceneListFormat:
    """One form of the scene list: its media type and how it is made from the sidecar."""

    media_type: str
    render: Callable[[Sidecar], str]


FORMATS = {
    "csv": SceneListFormat("text/csv; charset=utf-8", scenes_csv),
    "edl": SceneListFormat("text/plain; charset=utf-8", scenes_edl),
    "otio": SceneListFormat("application/json", scenes_otio),
}
LOCATION = "/v1/assets/{asset_id}/scenes.{extension}"
# The storage key a scene list is signed for: beside the sidecar, though never stored.
SIGNED_KEY = re.compile(rf"^sidecars/({ASSET_ID_PATTERN.pattern.strip('^$')})\.scenes\.({'|'.join(FORMATS)})$")


def _signed_key(asset_id: str, extension: str) -> str:
    return f"sidecars/{asset_id}.scenes.{extension}"


def scene_list_refs(urls: DownloadUrls, org_id: str, asset_id: str) -> dict[str, dict[str, str]]:
    """The asset answer's `scene_lists`: per format, a signed `url` (no token) and the `location` on this API."""
    return {extension: {"url": urls.api_url(org_id, _signed_key(asset_id, extension)),
                        "location": LOCATION.format(asset_id=asset_id, extension=extension)}
            for extension in FORMATS}


@dataclass(frozen=True)
class SceneList:
    """A scene list as answered: its text, media type and the file name offered for it."""

    text: str
    media_type: str
    filename: str

    def headers(self) -> dict[str, str]:
        """The answer's headers: save it under its name rather than show it."""
        return {"Content-Disposition": f'attachment; filename="{self.filename}"'}


def render_scene_list(store: ObjectStore, org_id: str, asset_id: str, extension: str) -> SceneList:
    """The scene list in a format (`csv`, `edl`, `otio`); 404 `sidecar_not_found` until the sidecar exists."""
    try:
        sidecar = Sidecar.model_validate(store.read_json(sidecar_key(org_id, asset_id)))
    except ObjectNotFoundError:
        raise NotFound("the sidecar does not exist yet", code="sidecar_not_found") from None
    form = FORMATS[extension]
    return SceneList(form.render(sidecar), form.media_type, f"{asset_id}.scenes.{extension}")
