"""A real browser: the Dagster web UI (the asset graph, a partition's thumbnails and storyboard), and a
storyboard's WebVTT track read by a `<video>` element's TextTrack API."""

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, instance_for_test, materialize
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from heimdex_pipeline.assets import VIDEO_CHECKS, media_qc, probe_metadata, scene_sidecar, storyboard, thumbnails
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.storyboard import SPRITE_NAME, VTT_NAME, make_storyboard, parse_vtt
from tests.api.live import live_api
from tests.api.support import commit, place
from tests.dagster_home import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium keeps calling home, and this machine's closed network refuses it.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def webserver(instance: DagsterInstance, derived_root: Path, catalog_url: str) -> Iterator[str]:
    """`dagster-webserver` on the test's instance and code, as the run script starts it."""
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory, "HEIMDEX_DERIVED_ROOT": str(derived_root),
           "HEIMDEX_DATABASE_URL": catalog_url}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
         "-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the webserver did not start"
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def page() -> Iterator[Page]:
    """A page of headless Debian Chromium driven by Playwright (browsers cannot be downloaded here)."""
    assert Path(CHROMIUM).exists(), "Chromium is missing: scripts/test.sh installs Debian's chromium package"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        yield context.new_page()
        browser.close()


def _dismiss_community_dialog(page: Page) -> None:
    """Close the webserver's first-visit newsletter dialog, which covers the page."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=5_000)
    except PlaywrightTimeoutError:
        return
    skip.click()


@pytest.mark.slow
# On the embedded default, as a new user first opens the web UI: what it shows is Dagster's reading of
# its own storage, which every other test of the suite exercises on both backends.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_asset_graph_and_partition_thumbnails_in_a_browser(clips, upload, resources, instance: DagsterInstance,
                                                           webserver: str, page: Page, tmp_path: Path) -> None:
    # HEIMDEX_SCREENSHOT_DIR=docs refreshes the README's screenshots.
    shots = Path(os.environ.get("HEIMDEX_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    path, _ = clips((2.0, 1.5, 3.0))
    asset_id = upload(path)
    assert materialize([probe_metadata, scene_sidecar, thumbnails, storyboard, media_qc, *VIDEO_CHECKS],
                       partition_key=asset_id, instance=instance, resources=resources).success

    page.goto(f"{webserver}/asset-groups/video/lineage", wait_until="networkidle")
    _dismiss_community_dialog(page)
    for name in ("probe_metadata", "scene_sidecar", "thumbnails", "storyboard", "media_qc"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(shots / "ui-asset-graph.png"))

    page.goto(f"{webserver}/assets/thumbnails?view=partitions&partition={asset_id}", wait_until="networkidle")
    _dismiss_community_dialog(page)
    expect(page.get_by_text("preview", exact=True)).to_be_visible(timeout=60_000)
    page.get_by_text("[Show Markdown]").click()
    preview = page.locator('img[src^="data:image/jpeg;base64,"]')
    expect(preview.first).to_be_visible(timeout=60_000)
    assert preview.count() == 3
    page.screenshot(path=str(shots / "ui-thumbnails-partition.png"), full_page=True)

    # The sidecar's checks, with their results, on its "Checks" tab.
    page.goto(f"{webserver}/assets/scene_sidecar?view=checks", wait_until="networkidle")
    _dismiss_community_dialog(page)
    for name in ("sidecar_matches_schema", "scenes_cover_the_video"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Passed").first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(shots / "ui-sidecar-checks.png"), full_page=True)

    # The storyboard's sprite, inline with its materialisation.
    page.goto(f"{webserver}/assets/storyboard?view=partitions&partition={asset_id}", wait_until="networkidle")
    _dismiss_community_dialog(page)
    expect(page.get_by_text("preview", exact=True)).to_be_visible(timeout=60_000)
    page.get_by_text("[Show Markdown]").click()
    expect(page.locator('img[alt="storyboard.jpg"][src^="data:image/jpeg;base64,"]')).to_be_visible(timeout=60_000)
    page.screenshot(path=str(shots / "ui-storyboard-partition.png"), full_page=True)

    # The QC figures as the partition's metadata (the clip has no audio: no loudness, and why).
    page.goto(f"{webserver}/assets/media_qc?view=partitions&partition={asset_id}", wait_until="networkidle")
    _dismiss_community_dialog(page)
    for name in ("loudness_unavailable", "scan", "black_stretches", "frozen_stretches", "silences"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("no audio stream").first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(shots / "ui-qc-partition.png"), full_page=True)


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on 127.0.0.1 serving a folder, as a page and its media would be served."""
    folder = tmp_path / "site"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


_READ_CUES = """() => new Promise((resolve, reject) => {
    const element = document.querySelector('track');
    const read = () => resolve(Array.from(element.track.cues, c => [c.startTime, c.endTime, c.text]));
    element.track.mode = 'hidden';
    if (element.readyState === 2) { read(); return; }
    element.addEventListener('load', read);
    element.addEventListener('error', () => reject(new Error('the track did not load')));
})"""


def test_a_player_reads_the_storyboard_track(clips, page: Page, static_site: tuple[str, Path]) -> None:
    url, folder = static_site
    path, _ = clips((2.0, 1.5, 3.0))
    (folder / "clip.mp4").write_bytes(path.read_bytes())
    make_storyboard(path, probe_video(path), folder, 160)
    (folder / "index.html").write_text(
        '<!doctype html><video src="clip.mp4" preload="metadata" muted>'
        f'<track kind="metadata" src="{VTT_NAME}" default></video>')
    page.goto(f"{url}/index.html", wait_until="load")
    cues = page.evaluate(_READ_CUES)
    expected = parse_vtt((folder / VTT_NAME).read_text())
    assert len(cues) == len(expected) == 50
    for (start, end, text), cue in zip(cues, expected, strict=True):
        assert (round(start, 3), round(end, 3), text) == (cue.start_s, cue.end_s, cue.text)
    assert cues[0][2] == f"{SPRITE_NAME}#xywh=0,0,160,120"
    # Each target resolves against the track's URL to the sprite the server holds.
    sprite = page.evaluate(f"""async () => {{
        const target = new URL({cues[-1][2]!r}, document.querySelector('track').src);
        const answer = await fetch(target);
        return [target.pathname, target.hash, answer.status, answer.headers.get('content-type')];
    }}""")
    assert sprite == [f"/{SPRITE_NAME}", "#xywh=1440,480,160,120", 200, "image/jpeg"]


def test_a_player_on_another_origin_reads_the_apis_track(clips, page: Page, static_site: tuple[str, Path],
                                                         tmp_path: Path) -> None:
    """The page of a site, the track from the API's signed `vtt_url` (another origin, no token), the tiles from
    the sprite's signed URL: what a player embedding Heimdex's storyboard does."""
    site, folder = static_site
    path, _ = clips((2.0, 1.5, 3.0))
    (folder / "clip.mp4").write_bytes(path.read_bytes())
    catalog_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    migrate(catalog_url)
    (tmp_path / "dagster_home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance, \
            live_api(tmp_path, catalog_url, instance, "org-player") as api:
        upload_id, placed = place(api.http, api.auth, api.org, path)
        asset_id = commit(api.http, api.auth, api.org, upload_id, placed).json()["asset_id"]
        board = api.http.get(f"/v1/assets/{asset_id}/storyboard.json", headers=api.auth).json()
        (folder / "player.html").write_text(
            '<!doctype html><video src="clip.mp4" preload="metadata" muted crossorigin="anonymous">'
            f'<track kind="metadata" src="{board["vtt_url"]}" default></video>')
        page.goto(f"{site}/player.html", wait_until="load")
        cues = page.evaluate(_READ_CUES)
        assert [(round(start, 3), round(end, 3)) for start, end, _ in cues] == [
            (tile["start_s"], tile["end_s"]) for tile in board["tiles"]]
        target, _, rectangle = cues[7][2].partition("#xywh=")
        assert target.split("?")[0] == board["url"].split("?")[0] and rectangle == "1120,0,160,120"
        # The page shows a tile as players do: the sprite as an image, cropped to the cue's rectangle.
        shown = page.evaluate("""async (target) => {
            const image = new Image();
            image.src = target;
            await image.decode();
            return [image.naturalWidth, image.naturalHeight];
        }""", target)
        assert shown == [board["sprite_width"], board["sprite_height"]]
