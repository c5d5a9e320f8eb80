"""The asset checks over the API: a truncated upload probes as the whole video, its scenes stop where its
frames do, and the blocking coverage check stops the thumbnails; the asset and job answers say so."""

import subprocess
from pathlib import Path

from dagster import DagsterInstance
from fastapi.testclient import TestClient
from sqlalchemy import delete

from heimdex_api.core.config import ApiSettings
from heimdex_pipeline.admin.check_outcomes import carry_check_outcomes
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import CheckOutcome
from tests.api.support import commit, place


def _truncated_video(folder: Path) -> Path:
    """Six seconds of video whose index announces them all, cut after half its bytes (an interrupted copy)."""
    whole, cut = folder / "whole.mp4", folder / "cut.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=6",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(whole)], check=True)
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    return cut


def test_a_failed_check_stops_the_job_and_shows_in_the_asset(client: TestClient, auth: dict[str, str], org: str,
                                                             settings: ApiSettings, dagster_instance: DagsterInstance,
                                                             tmp_path: Path) -> None:
    upload_id, path = place(client, auth, org, _truncated_video(tmp_path))
    committed = commit(client, auth, org, upload_id, path)
    assert committed.status_code == 200, committed.text
    asset_id, job_id = committed.json()["asset_id"], committed.json()["job_id"]

    job = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "check_failed"
    assert job["error"]["message"].startswith("scene_sidecar: scenes_cover_the_video: the last scene ends at ")
    assert job["error"]["message"].endswith("; the video lasts 6.0 s")

    view = client.get(f"/v1/assets/{asset_id}", headers=auth).json()
    # The sidecar was written (its scenes are what the file holds) and passed its schema; no thumbnail was made.
    assert view["status"] == "ready" and view["thumbnails"] == []
    assert view["checks"]["passed"] == 3  # the probe, the schema and the storyboard, which needs no scenes
    assert view["checks"]["failed"] == [{"asset": "scene_sidecar", "check": "scenes_cover_the_video",
                                         "description": job["error"]["message"].split(": ", 2)[2]}]
    assert not (settings.derived_root / org / "thumbnails" / asset_id).exists()

    # A deployment upgraded past the catalog's check outcomes (migration 0011) has none: they are
    # carried over from Dagster's event log once, and the summary says what it said before.
    with session_scope(settings.catalog_url) as session:
        session.execute(delete(CheckOutcome))
    assert client.get(f"/v1/assets/{asset_id}", headers=auth).json()["checks"] == {"passed": 0, "failed": []}
    assert carry_check_outcomes(dagster_instance, settings.catalog_url) >= 4
    assert carry_check_outcomes(dagster_instance, settings.catalog_url) == 0
    assert client.get(f"/v1/assets/{asset_id}", headers=auth).json()["checks"] == view["checks"]
