"""Identical reads at the same time, made once (heimdex_api/api/shared_reads.py), and answers that never
predate what the caller has seen: a deletion on one worker is seen by the next read on any other."""

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from heimdex_api.api.shared_reads import SharedReads
from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import NotFound


def test_reads_asked_while_one_runs_share_the_next_one() -> None:
    async def scenario() -> None:
        reads, state, release = SharedReads(), {"value": "before", "calls": 0}, asyncio.Event()

        async def work() -> str:
            state["calls"] += 1
            seen = state["value"]  # what the read sees is what was there when it started
            await release.wait()
            return seen

        first = asyncio.create_task(reads.read("k", work))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert state["calls"] == 1
        state["value"] = "after"  # changed while the first read runs (a deletion answered meanwhile)
        later = [asyncio.create_task(reads.read("k", work)) for _ in range(10)]
        other = asyncio.create_task(reads.read("other key", work))
        await asyncio.sleep(0.01)
        assert state["calls"] == 2  # the other key's read ran alongside; the ten wait for the first to end
        release.set()
        assert await first == "before"
        # The ten shared one read, which started after each of them asked: none got the first's answer.
        assert await asyncio.gather(*later) == ["after"] * 10
        assert await other == "after" and state["calls"] == 3

    asyncio.run(scenario())


def test_an_error_is_every_sharers_answer_and_a_caller_gone_leaves_the_read_to_the_others() -> None:
    async def scenario() -> None:
        reads, release = SharedReads(), asyncio.Event()

        async def missing() -> str:
            await release.wait()
            raise NotFound("no such asset", code="asset_not_found")

        callers = [asyncio.create_task(reads.read("k", missing)) for _ in range(3)]
        await asyncio.sleep(0)
        callers[0].cancel()  # its client went away
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*callers, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert all(isinstance(result, NotFound) for result in results[1:])

        async def found() -> str:
            return "found"

        assert await reads.read("k", found) == "found"  # nothing of the failed read is kept

    asyncio.run(scenario())


@pytest.mark.parametrize("reader", ["asset", "job"])
def test_a_deletion_on_one_worker_is_seen_by_another(make_client, settings: ApiSettings, auth: dict[str, str],
                                                     org: str, asset: tuple[str, Path], client: TestClient,
                                                     reader: str) -> None:
    """Two apps over one catalog, storage and Dagster instance, as two worker processes are: the one that
    did not answer the DELETE has read (and kept) the finished job and the asset, yet answers 404 after it."""
    asset_id, path = asset
    other: TestClient = make_client(settings)
    job = client.post(f"/v1/assets/{asset_id}/sidecar", headers=auth,
                      json={"org_id": org, "source_uri": path.as_uri()}).json()
    location = {"asset": f"/v1/assets/{asset_id}", "job": job["location"]}[reader]
    for _ in range(2):  # the second answer of a finished job comes from the worker's memory
        assert other.get(location, headers=auth).status_code == 200
    assert client.delete(f"/v1/assets/{asset_id}", headers=auth).status_code == 204
    answer = other.get(location, headers=auth)
    assert (answer.status_code, answer.json()["error"]) == (404, f"{reader}_not_found")


def test_a_new_run_changes_the_asset_answer(client: TestClient, auth: dict[str, str], org: str,
                                           asset: tuple[str, Path]) -> None:
    asset_id, path = asset
    before = client.get(f"/v1/assets/{asset_id}", headers=auth).json()
    assert before["status"] == "ready" and {thumb["height"] for thumb in before["thumbnails"]} != {64}
    job = client.post(f"/v1/assets/{asset_id}/thumbnails", headers=auth,
                      json={"org_id": org, "source_uri": path.as_uri(), "policy": {"max_height": 64}}).json()
    assert client.get(job["location"], headers=auth).json()["status"] == "succeeded"
    after = client.get(f"/v1/assets/{asset_id}", headers=auth).json()
    assert after["sidecar"]["etag"] != before["sidecar"]["etag"]
    assert {thumb["height"] for thumb in after["thumbnails"]} == {64}
