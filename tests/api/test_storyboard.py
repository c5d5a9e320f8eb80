"""`/v1/assets/{asset_id}/storyboard.{json,vtt,jpg}`: an ingested clip's storyboard, org-scoped, its track
pointing at a sprite URL that needs no token."""

import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import webvtt
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from heimdex_pipeline.outputs.validation import image_size
from tests.api.support import bearer, commit, make_token, place
from tests.api.uploads import LiveApi

PARTS = ("storyboard.json", "storyboard.vtt", "storyboard.jpg")


def _fetch_without_token(client: TestClient, url: str) -> bytes:
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("http", "testserver"), url
    answer = client.get(f"{parts.path}?{parts.query}")
    assert answer.status_code == 200, answer.text
    return answer.content


def test_the_storyboard_of_an_ingested_clip(client: TestClient, auth: dict[str, str], asset: tuple[str, Path]) -> None:
    asset_id = asset[0]
    geometry = client.get(f"/v1/assets/{asset_id}/storyboard.json", headers=auth)
    assert geometry.status_code == 200 and geometry.headers["content-type"] == "application/json"
    document = geometry.json()
    assert len(document["tiles"]) == 50 and (document["tile_width"], document["tile_height"]) == (160, 120)
    assert document["storage_key"] == f"storyboards/{asset_id}/storyboard.jpg"
    assert document["vtt_location"] == f"/v1/assets/{asset_id}/storyboard.vtt"

    sprite = client.get(f"/v1/assets/{asset_id}/storyboard.jpg", headers=auth)
    assert sprite.status_code == 200 and sprite.headers["content-type"] == "image/jpeg"
    assert image_size(sprite.content) == (document["sprite_width"], document["sprite_height"]) == (1600, 600)
    # The signed URL fetches the same bytes without the token.
    assert _fetch_without_token(client, document["url"]) == sprite.content

    track = client.get(document["vtt_location"], headers=auth)
    assert track.status_code == 200 and track.headers["content-type"].startswith("text/vtt")
    cues = webvtt.from_string(track.text).captions
    assert [(c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000) for c in cues] == [
        (tile["start_s"], tile["end_s"]) for tile in document["tiles"]]
    target, _, rectangle = cues[11].text.partition("#xywh=")
    assert rectangle == "160,120,160,120" and _fetch_without_token(client, target) == sprite.content

    view = client.get(f"/v1/assets/{asset_id}", headers=auth).json()
    assert view["storyboard"]["storage_key"] == document["storage_key"]
    assert view["storyboard"]["vtt_location"] == document["vtt_location"]
    # The same track at a signed URL, for a player's `<track src>` that cannot send the token.
    assert _fetch_without_token(client, document["vtt_url"]).decode() == track.text


def test_another_orgs_or_a_missing_storyboard_answers_404(client: TestClient, auth: dict[str, str], org: str,
                                                          asset: tuple[str, Path], settings: ApiSettings) -> None:
    asset_id = asset[0]
    stranger = bearer(make_token("org-stranger", ["assets:read"]))
    for part in PARTS:
        for path, headers in ((f"/v1/assets/{asset_id}/{part}", stranger),
                              (f"/v1/assets/v_{'0' * 32}/{part}", auth)):
            answer = client.get(path, headers=headers)
            assert answer.status_code == 404 and answer.json()["error"] == "asset_not_found", path
        no_scope = client.get(f"/v1/assets/{asset_id}/{part}", headers=bearer(make_token(org, ["assets:write"])))
        assert no_scope.status_code == 403 and no_scope.json()["error"] == "missing_scope"

    # Until the pipeline has made it: the JSON error body, and no storyboard in the asset answer.
    shutil.rmtree(settings.derived_root / org / "storyboards" / asset_id)
    for part in PARTS:
        answer = client.get(f"/v1/assets/{asset_id}/{part}", headers=auth)
        assert answer.status_code == 404 and answer.json() == {"error": "storyboard_not_found",
                                                               "detail": "the storyboard does not exist yet"}
    assert client.get(f"/v1/assets/{asset_id}", headers=auth).json()["storyboard"] is None


def test_the_track_url_needs_no_token_on_either_store(live: LiveApi, clip: Path) -> None:
    """`vtt_url` is what a `<track src>` gets: any origin reads it with a plain GET, and its cues' sprite URLs
    work without the token too (presigned on S3, signed by the API on local storage)."""
    answer = live.init(clip.stat().st_size)
    assert live.http.put(answer["presigned"]["upload_url"], content=clip.read_bytes(),
                         headers=answer["presigned"]["upload_headers"]).status_code in (200, 201, 204)
    asset_id = live.commit(answer).json()["asset_id"]
    view = live.http.get(f"{live.url}/v1/assets/{asset_id}", headers=live.auth).json()
    ref = view["storyboard"]
    track = httpx.get(ref["vtt_url"], headers={"Origin": "https://player.example"})
    assert track.status_code == 200 and track.headers["content-type"].startswith("text/vtt")
    assert track.headers["access-control-allow-origin"] == "*"
    cues = webvtt.from_string(track.text).captions
    assert len(cues) == 50 and cues[-1].end_time.in_milliseconds() == round(
        live.http.get(f"{live.url}/v1/assets/{asset_id}/storyboard.json", headers=live.auth).json()["duration_s"] * 1000)
    sprite = httpx.get(cues[0].text.partition("#xywh=")[0])
    assert sprite.status_code == 200 and image_size(sprite.content) == (1600, 600)
    # The signature covers the track of this one video of this one org.
    other = ref["vtt_url"].replace(asset_id, "v_" + "0" * 32)
    assert httpx.get(other).status_code == 403
    assert httpx.get(ref["vtt_url"].split("?")[0]).json()["error"] == "url_signature_invalid"


def test_runs_the_api_executes_follow_its_settings_not_its_environment(
        make_client: Callable[..., TestClient], settings: ApiSettings, auth: dict[str, str], org: str, clip: Path) -> None:
    """The API's in-process runs read what the API was configured with (here a tile width of 64 px), like its
    own reads do: not the process's `HEIMDEX_*` environment, which the definitions' resources were built from."""
    client = make_client(settings.model_copy(update={"storyboard_tile_width": 64}))
    upload_id, path = place(client, auth, org, clip)
    committed = commit(client, auth, org, upload_id, path)
    assert committed.status_code == 200, committed.text
    document = client.get(f"/v1/assets/{committed.json()['asset_id']}/storyboard.json", headers=auth).json()
    assert (document["tile_width"], document["tile_height"]) == (64, 48)
