"""The webhook sensor on a real instance: run outcomes, whoever started the runs, become signed events that
reach a real receiver once each; a tick read again records nothing twice."""

import json
from collections.abc import Callable
from pathlib import Path

from dagster import DagsterInstance, SensorResult, build_sensor_context, materialize

from heimdex_pipeline.assets import media_qc, probe_metadata, scene_sidecar
from heimdex_pipeline.assets.checks import QC_CHECKS
from heimdex_pipeline.resources import WebhookSender
from heimdex_pipeline.runs.tags import run_tags
from heimdex_pipeline.sensors import webhook_sensor
from heimdex_pipeline.webhooks import SIGNATURE_HEADER, verify
from tests.webhooks.receiver import Receiver

SENDER = WebhookSender(allow_private_addresses=True, timeout_s=5.0)


def _tick(instance: DagsterInstance, resources: dict, cursor: str | None) -> SensorResult:
    context = build_sensor_context(instance=instance, cursor=cursor, resources={**resources, "webhooks": SENDER})
    result = webhook_sensor(context)
    assert isinstance(result, SensorResult)
    return result


def test_run_outcomes_become_events_once(clips, upload, resources: dict, instance: DagsterInstance,
                                         receiver: Receiver, register: Callable, tmp_path: Path) -> None:
    _, secret = register(receiver.url, org_id="org-demo")
    other_org, _ = register(receiver.url, org_id="org-other")
    first = _tick(instance, resources, None)  # the sensor starts: from the first endpoint's creation on
    good = upload(clips((1.0, 1.0), size="160x120")[0])
    # As the web UI runs it: no Heimdex tags on the run, the org comes from the catalog.
    assert materialize([probe_metadata, scene_sidecar], partition_key=good, instance=instance,
                       resources=resources).success
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 2000)
    bad = upload(corrupt)
    # As the API runs it: tagged with its org and job type.
    failed = materialize([probe_metadata], partition_key=bad, instance=instance, resources=resources,
                         tags=run_tags("org-demo", "sidecar", origin="api"), raise_on_error=False)
    assert not failed.success

    result = _tick(instance, resources, first.cursor)
    got = receiver.events()
    # In order per video; the two videos' deliveries go at once.
    assert [e["type"] for e in got if e["asset_id"] == good] == ["job.succeeded", "asset.ready"]
    assert [e["type"] for e in got if e["asset_id"] == bad] == ["job.failed", "asset.failed"]
    got.sort(key=lambda e: (e["asset_id"] != good, e["type"].startswith("asset")))
    assert all(e["org_id"] == "org-demo" for e in got), "the other org's endpoint got nothing"
    assert all(verify(secret, r.headers[SIGNATURE_HEADER], r.body) for r in receiver.received)
    assert len({e["id"] for e in got}) == 4 and got[0]["job_id"] == got[1]["job_id"] != got[2]["job_id"]
    assert got[0]["data"] == {"job_type": None, "job_name": "__ephemeral_asset_job__", "status": "succeeded", "error": None}
    error = got[2]["data"]["error"]
    assert got[2]["data"]["job_type"] == "sidecar" and got[2]["data"]["status"] == "failed"
    assert error["code"] == "step_failure" and error["message"].startswith("probe_metadata:")
    assert "run outcomes read, 4 events recorded; deliveries: 4 delivered" in result.skip_reason.skip_message

    # The same outcomes read again (a daemon that died before saving its cursor) record nothing more.
    again = _tick(instance, resources, first.cursor)
    assert "0 events recorded" in again.skip_reason.skip_message and len(receiver.received) == 4
    assert json.loads(again.cursor) == json.loads(result.cursor)
    assert "0 run outcomes read" in _tick(instance, resources, result.cursor).skip_reason.skip_message
    assert other_org


def test_an_endpoint_gets_only_what_happened_after_it_was_made(clips, upload, resources: dict,
                                                               instance: DagsterInstance, receiver: Receiver,
                                                               register: Callable) -> None:
    cursor = _tick(instance, resources, None).cursor  # no endpoint yet: the sensor starts from now
    asset_id = upload(clips((1.0, 1.0), size="160x120")[0])
    assert materialize([probe_metadata], partition_key=asset_id, instance=instance, resources=resources).success
    register(receiver.url, org_id="org-demo", events=("job.succeeded",))
    _tick(instance, resources, cursor)
    assert receiver.received == []


def test_a_failed_qc_check_sends_asset_qc_failed_with_its_description(clips, upload, resources: dict,
                                                                      instance: DagsterInstance, receiver: Receiver,
                                                                      register: Callable) -> None:
    register(receiver.url, org_id="org-demo", events=("asset.qc_failed",))
    cursor = _tick(instance, resources, None).cursor
    asset_id = upload(clips((1.0, 1.0), size="160x120")[0])  # no audio stream
    # The QC checks do not block: the run succeeds, and says what failed.
    assert materialize([probe_metadata, media_qc, *QC_CHECKS], partition_key=asset_id, instance=instance,
                       resources=resources).success
    _tick(instance, resources, cursor)
    [event] = receiver.events()
    assert (event["type"], event["asset_id"], event["data"]["status"]) == ("asset.qc_failed", asset_id, "succeeded")
    assert event["data"]["checks"] == [{"asset": "media_qc", "check": "audio_is_heard",
                                        "description": "no audio stream"}]
