"""A job request on an asset the org does not hold answers alike whether the asset is unknown or another org's."""

import statistics
import time
from pathlib import Path
from uuid import uuid4

from fastapi.testclient import TestClient

from tests.api.support import bearer, commit, make_token, place

UNKNOWN = "v_" + "5" * 32


def _victims_asset(client: TestClient, clip: Path) -> tuple[str, Path, str, dict[str, str]]:
    """Another org's committed clip (its asset id and path), and an intruding org with its token."""
    victim, intruder = f"org-a{uuid4().hex[:8]}", f"org-b{uuid4().hex[:8]}"
    victim_auth = bearer(make_token(victim))
    upload_id, path = place(client, victim_auth, victim, clip)
    return commit(client, victim_auth, victim, upload_id, path).json()["asset_id"], path, intruder, \
        bearer(make_token(intruder))


def test_unknown_and_foreign_assets_answer_alike(client: TestClient, clip: Path) -> None:
    foreign, path, intruder, intruder_auth = _victims_asset(client, clip)
    # The intruder holds the same file in its own uploads (its own asset id differs: ids are per org).
    _, own_copy = place(client, intruder_auth, intruder, clip)
    for kind in ("sidecar", "thumbnails"):
        for source_uri in (own_copy.as_uri(), path.as_uri(), own_copy.with_name("none.mp4").as_uri()):
            answers = [client.post(f"/v1/assets/{asset_id}/{kind}", headers=intruder_auth,
                                   json={"org_id": intruder, "source_uri": source_uri})
                       for asset_id in (foreign, UNKNOWN)]
            assert [(a.status_code, a.json()) for a in answers] == \
                [(404, {"error": "asset_not_found", "detail": "no such asset"})] * 2, source_uri


def test_unknown_and_foreign_assets_take_the_same_work(client: TestClient, clip: Path, testvideo: Path) -> None:
    # Answering a foreign asset before reading the caller's file would make it measurably faster.
    foreign, _, intruder, intruder_auth = _victims_asset(client, clip)
    _, big = place(client, intruder_auth, intruder, testvideo)
    seconds: dict[str, list[float]] = {foreign: [], UNKNOWN: []}
    for _ in range(5):
        for asset_id in seconds:
            started = time.perf_counter()
            answer = client.post(f"/v1/assets/{asset_id}/sidecar", headers=intruder_auth,
                                 json={"org_id": intruder, "source_uri": big.as_uri()})
            seconds[asset_id].append(time.perf_counter() - started)
            assert answer.status_code == 404
    ratio = statistics.median(seconds[foreign]) / statistics.median(seconds[UNKNOWN])
    assert 0.4 < ratio < 2.5, seconds
