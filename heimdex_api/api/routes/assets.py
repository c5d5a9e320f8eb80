"""`/v1/assets`: start sidecar and thumbnails jobs, read a video, its sidecar, its storyboard and its QC, delete a
video."""

from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request, Response

from heimdex_api.api.deps import (
    DownloadUrlsDep,
    InstanceDep,
    LauncherDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    StoreDep,
)
from heimdex_api.api.job_threads import run_job_request
from heimdex_api.api.params import AssetIdPath, IdempotencyKeyHeader
from heimdex_api.api.responses import error_responses
from heimdex_api.core.errors import NotFound
from heimdex_api.core.security import READ, WRITE, Principal
from heimdex_api.schemas import (
    AssetResponse,
    JobAccepted,
    QcDocumentOut,
    SidecarDocument,
    SidecarRequest,
    SourceRequest,
    StoryboardDocument,
    ThumbnailsRequest,
)
from heimdex_api.services import assets, idempotency, qc, storyboards
from heimdex_api.services.scene_lists import FORMATS, render_scene_list
from heimdex_pipeline.catalog.db import session_scope

router = APIRouter(prefix="/v1/assets", tags=["assets"])


async def _submit(job_type: str, asset_id: str, body: SourceRequest, request: Request, key: str | None,
                  principal: Principal, settings: SettingsDep, store: StoreDep, instance: InstanceDep,
                  launcher: LauncherDep) -> dict[str, Any]:
    principal.require(WRITE)
    principal.require_org(body.org_id)

    def start() -> dict[str, Any]:
        # From the catalog read to the launch: a deletion of the video has its turn before or after, never between.
        with assets.video_turn(settings, asset_id, "job"):
            job = assets.prepare_job(settings, store, asset_id, body, job_type)
            return assets.start_job(settings, instance, launcher, job)

    if key is None:
        return await run_job_request(request, start)
    # The key before the media: a replay answers from the stored response without reading the file.
    once = partial(idempotency.once, settings, body.org_id, idempotency.check_key(key), f"POST {request.url.path}",
                   body.model_dump(mode="json"), start)
    return await run_job_request(request, once)


@router.post("/{asset_id}/sidecar", status_code=202, response_model=JobAccepted,
             responses=error_responses("sidecar_job"))
async def sidecar_job(asset_id: AssetIdPath, body: SidecarRequest, request: Request, principal: PrincipalDep,
                      settings: SettingsDep, store: StoreDep, instance: InstanceDep, launcher: LauncherDep,
                      idempotency_key: IdempotencyKeyHeader = None) -> dict[str, Any]:
    """Probe the video and (re)write its scene sidecar, with the detector the body names or the deployment's."""
    return await _submit("sidecar", asset_id, body, request, idempotency_key, principal, settings, store, instance,
                         launcher)


@router.post("/{asset_id}/thumbnails", status_code=202, response_model=JobAccepted,
             responses=error_responses("thumbnails_job"))
async def thumbnails_job(asset_id: AssetIdPath, body: ThumbnailsRequest, request: Request, principal: PrincipalDep,
                         settings: SettingsDep, store: StoreDep, instance: InstanceDep, launcher: LauncherDep,
                         idempotency_key: IdempotencyKeyHeader = None) -> dict[str, Any]:
    """(Re)extract the video's thumbnails with the given policy."""
    return await _submit("thumbnails", asset_id, body, request, idempotency_key, principal, settings, store,
                         instance, launcher)


@router.get("/{asset_id}", response_model=AssetResponse, responses=error_responses("read_asset"))
async def read_asset(asset_id: AssetIdPath, request: Request, principal: PrincipalDep, settings: SettingsDep,
                     store: StoreDep, instance: InstanceDep, urls: DownloadUrlsDep) -> Response:
    """The video, its status, sidecar reference and thumbnails, with the URLs of their bytes."""
    principal.require(READ)

    # One worker thread, whose catalog connection is returned before it gives its thread back. As a
    # plain function with the session dependency, the request took a thread for the session, one
    # for the route and one to check the answer, holding the connection while it queued for the
    # last: under a crowd the catalog's pool ran dry, and the threads waiting for a connection
    # held every thread (503 after 30 s; docs/benchmarks.md, "A crowd"). The answer is made into
    # JSON there too, once for every caller of a shared read.
    def view() -> bytes:
        with session_scope(settings.catalog_url) as session:
            answer = assets.asset_view(session, instance, store, urls,
                                       assets.find_video(session, asset_id, principal.org_id))
        return AssetResponse.model_validate(answer).model_dump_json().encode()

    async def fresh() -> bytes:
        return await anyio.to_thread.run_sync(view)

    answer = await request.app.state.shared_reads.read(("asset", principal.org_id, asset_id, urls.base_url), fresh)
    return Response(answer, media_type="application/json")


# The document is answered as the pipeline wrote it (plus the thumbnails' `url`), so its model is
# documented, not re-validated.
@router.get("/{asset_id}/sidecar", response_model=None,
            responses={200: {"model": SidecarDocument}, **error_responses("read_sidecar")})
def read_sidecar(asset_id: AssetIdPath, principal: PrincipalDep, session: SessionDep,
                 store: StoreDep, urls: DownloadUrlsDep) -> dict[str, Any]:
    """The scene sidecar document, each thumbnail with the URL of its bytes; 404 until it exists."""
    principal.require(READ)
    return assets.sidecar_document(store, urls, assets.find_video(session, asset_id, principal.org_id))


def _scene_list(asset_id: str, extension: str, principal: Principal, session: SessionDep, store: StoreDep) -> Response:
    principal.require(READ)
    video = assets.find_video(session, asset_id, principal.org_id)
    scene_list = render_scene_list(store, video.org_id, video.asset_id, extension)
    return Response(scene_list.text, media_type=scene_list.media_type, headers=scene_list.headers())


def _scene_list_responses(extension: str, description: str) -> dict[int | str, dict[str, Any]]:
    media_type = FORMATS[extension].media_type.split(";")[0]
    return {200: {"content": {media_type: {"schema": {"type": "string"}}}, "description": description},
            **error_responses("read_sidecar")}


@router.get("/{asset_id}/scenes.csv", response_class=Response, responses=_scene_list_responses(
    "csv", "`scenedetect list-scenes`'s CSV: a `Timecode List:` row of the cuts, then a header and a row per scene."))
def read_scenes_csv(asset_id: AssetIdPath, principal: PrincipalDep, session: SessionDep, store: StoreDep) -> Response:
    """The scene list as PySceneDetect's `list-scenes` writes it; 404 until the sidecar exists."""
    return _scene_list(asset_id, "csv", principal, session, store)


@router.get("/{asset_id}/scenes.edl", response_class=Response, responses=_scene_list_responses(
    "edl", "A CMX 3600 EDL, non-drop-frame: one cut event per scene, source and record timecodes alike."))
def read_scenes_edl(asset_id: AssetIdPath, principal: PrincipalDep, session: SessionDep, store: StoreDep) -> Response:
    """The scene list as a CMX 3600 edit decision list; 404 until the sidecar exists."""
    return _scene_list(asset_id, "edl", principal, session, store)


@router.get("/{asset_id}/scenes.otio", response_class=Response, responses=_scene_list_responses(
    "otio", "An OpenTimelineIO timeline (`.otio` JSON): one video track, a clip per scene, each referring to the "
            "source."))
def read_scenes_otio(asset_id: AssetIdPath, principal: PrincipalDep, session: SessionDep, store: StoreDep) -> Response:
    """The scene list as an OpenTimelineIO timeline; 404 until the sidecar exists."""
    return _scene_list(asset_id, "otio", principal, session, store)


# Answered as the pipeline wrote it, like the sidecar: the model documents it.
@router.get("/{asset_id}/qc", response_model=None, responses={200: {"model": QcDocumentOut}, **error_responses("read_qc")})
def read_qc(asset_id: AssetIdPath, principal: PrincipalDep, session: SessionDep, store: StoreDep,
            urls: DownloadUrlsDep) -> dict[str, Any]:
    """The technical QC document: EBU R128 loudness, silences, black and frozen stretches, the picture's scan,
    the thresholds used and what measured each, with the document's `url`; 404 until it exists."""
    principal.require(READ)
    return qc.qc_document(store, urls, assets.find_video(session, asset_id, principal.org_id))


@router.get("/{asset_id}/storyboard.json", response_model=StoryboardDocument,
            responses=error_responses("read_storyboard"))
def read_storyboard(asset_id: AssetIdPath, principal: PrincipalDep, session: SessionDep, store: StoreDep,
                    urls: DownloadUrlsDep) -> dict[str, Any]:
    """The storyboard's geometry: tile and sprite sizes, and each tile's span and rectangle, with the sprite's
    `url`; 404 until it exists."""
    principal.require(READ)
    return storyboards.storyboard_document(store, urls, assets.find_video(session, asset_id, principal.org_id))


# A track and a JPEG, documented by their media type alone (a response class without one keeps the
# error answers JSON).
@router.get("/{asset_id}/storyboard.vtt", response_class=Response,
            responses={200: {"content": {"text/vtt": {"schema": {"type": "string"}}},
                             "description": "A WebVTT thumbnail track: one cue per tile, `<sprite url>#xywh=x,y,w,h`."},
                       **error_responses("read_storyboard")})
def read_storyboard_vtt(asset_id: AssetIdPath, principal: PrincipalDep, session: SessionDep, store: StoreDep,
                        urls: DownloadUrlsDep) -> Response:
    """The storyboard's WebVTT track for a player's thumbnail track, its cues pointing at the sprite's download
    URL (no token needed for it); 404 until it exists."""
    principal.require(READ)
    video = assets.find_video(session, asset_id, principal.org_id)
    track = storyboards.storyboard_vtt(store, urls, video.org_id, video.asset_id)
    return Response(track, media_type="text/vtt; charset=utf-8")


@router.get("/{asset_id}/storyboard.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The sprite: the tiles in rows, as the geometry places them."},
                       **error_responses("read_storyboard")})
def read_storyboard_sprite(asset_id: AssetIdPath, principal: PrincipalDep, session: SessionDep,
                           store: StoreDep) -> Response:
    """The storyboard's sprite (JPEG); 404 until it exists."""
    principal.require(READ)
    sprite = storyboards.sprite_bytes(store, assets.find_video(session, asset_id, principal.org_id))
    return Response(sprite, media_type="image/jpeg")


@router.delete("/{asset_id}", status_code=204, response_class=Response, responses=error_responses("delete_asset"))
async def delete_asset(asset_id: AssetIdPath, request: Request, principal: PrincipalDep, settings: SettingsDep,
                       store: StoreDep, instance: InstanceDep) -> Response:
    """Delete the video: its source and derived files, its catalog rows, its jobs and its Dagster partition.

    Refused with 409 `asset_busy` while a job of it is queued or running. Afterwards the asset and its
    jobs answer 404, and the same content uploaded again is a new ingest.
    """
    principal.require(WRITE)
    deletion = await run_job_request(
        request, partial(assets.delete_asset, settings, store, instance, asset_id, principal.org_id))
    request.app.state.finished_jobs.forget(principal.org_id, deletion.run_ids)
    if deletion.org_id is None:
        # Another deletion had the video's turn first and removed it whole.
        raise NotFound("no such asset", code="asset_not_found")
    return Response(status_code=204)
