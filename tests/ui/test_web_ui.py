"""The Dagster web UI in a real browser: the asset graph, and a materialised partition's thumbnails."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from heimdex_pipeline.assets import VIDEO_CHECKS, probe_metadata, scene_sidecar, thumbnails
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
def test_asset_graph_and_partition_thumbnails_in_a_browser(clips, upload, resources, instance: DagsterInstance,
                                                           webserver: str, page: Page, tmp_path: Path) -> None:
    # HEIMDEX_SCREENSHOT_DIR=docs refreshes the README's screenshots.
    shots = Path(os.environ.get("HEIMDEX_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    path, _ = clips((2.0, 1.5, 3.0))
    asset_id = upload(path)
    assert materialize([probe_metadata, scene_sidecar, thumbnails, *VIDEO_CHECKS], partition_key=asset_id,
                       instance=instance, resources=resources).success

    page.goto(f"{webserver}/asset-groups/video/lineage", wait_until="networkidle")
    _dismiss_community_dialog(page)
    for name in ("probe_metadata", "scene_sidecar", "thumbnails"):
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
