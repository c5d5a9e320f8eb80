"""Structured JSON logs: one line per step of an ingest, with `component`, `asset_id` and `job_id`."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.support import commit, place


def _json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def test_each_step_of_an_ingest_logs_one_json_line(client: TestClient, auth: dict[str, str], org: str, clip: Path,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    upload_id, path = place(client, auth, org, clip)
    answer = commit(client, auth, org, upload_id, path).json()
    asset_id, job_id = answer["asset_id"], answer["job_id"]
    logs = [entry for entry in _json_lines(capfd.readouterr().err) if entry.get("org_id") == org]
    steps = [entry["event"] for entry in logs]
    # The clip has no audio: the QC's non-blocking `audio_is_heard` fails, and says so as a warning.
    # The scene step goes first after the probe: the QC and storyboard steps read the frames it keeps.
    assert steps == ["ingest.init", "ingest.commit", "probe.start", "probe.done", "scenes.start", "scenes.done",
                     "qc.start", "qc.done", "storyboard.start", "storyboard.done", "check.passed",
                     "check.passed", "check.failed", "check.passed", "check.passed", "check.passed",
                     "thumbnails.start", "thumbnails.done", "check.passed", "ingest.run_started"]
    for entry in logs[1:]:
        assert entry["asset_id"] == asset_id and "timestamp" in entry
        assert entry["level"] == ("warning" if entry["event"] == "check.failed" else "info")
    assert {entry["component"] for entry in logs} == {"api", "assets", "checks"}
    assert all(entry["job_id"] == job_id for entry in logs[2:])
