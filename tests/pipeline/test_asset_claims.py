"""A video's claim in the catalog (`heimdex_pipeline.catalog.claims`): one holder at a time across
processes, on SQLite and PostgreSQL; a dead holder's claim taken over after its lease; a live one renewed."""

import multiprocessing
import time
from pathlib import Path

import pytest

from heimdex_pipeline.catalog.claims import AssetBusyError, asset_claim, new_holder, release_claims, try_claim

ASSET = "v_" + "a" * 32


def _hold_in_turn(catalog_url: str, log: str, rounds: int) -> None:
    """Take the claim `rounds` times, writing when each holding began and ended."""
    for _ in range(rounds):
        with asset_claim(catalog_url, ASSET, "test", wait_s=60, lease_s=30):
            began = time.monotonic()
            time.sleep(0.02)
            ended = time.monotonic()
        with open(log, "a") as out:
            out.write(f"{began} {ended}\n")


def test_processes_hold_a_videos_claim_one_at_a_time(catalog_url: str, tmp_path: Path) -> None:
    # Four processes take the claim 10 times each; no two holdings overlap (CLOCK_MONOTONIC is
    # one clock for the whole machine, so the processes' times compare).
    log = tmp_path / "holdings.txt"
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_hold_in_turn, args=(catalog_url, str(log), 10)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    holdings = sorted(tuple(map(float, line.split())) for line in log.read_text().splitlines())
    assert len(holdings) == 40
    assert all(earlier[1] <= later[0] for earlier, later in zip(holdings, holdings[1:])), holdings


def test_a_held_claim_makes_others_wait_then_refuses(catalog_url: str) -> None:
    with asset_claim(catalog_url, ASSET, "delete", wait_s=1, lease_s=30):
        started = time.monotonic()
        with pytest.raises(AssetBusyError) as busy:
            with asset_claim(catalog_url, ASSET, "commit", wait_s=0.5, lease_s=30):
                pass
        assert 0.3 < time.monotonic() - started < 5 and busy.value.holder.startswith("delete:")
    # Given back at the end of the block: the next takes it at once.
    with asset_claim(catalog_url, ASSET, "commit", wait_s=0, lease_s=30):
        assert try_claim(catalog_url, "v_" + "b" * 32, new_holder("job"), 30) is None


def test_a_dead_holders_claim_is_taken_over_after_its_lease_and_a_live_one_is_renewed(catalog_url: str) -> None:
    # A holder that died (nothing renews or releases its claim) blocks only until its lease ends.
    dead = new_holder("commit")
    assert try_claim(catalog_url, ASSET, dead, lease_s=1) is None
    assert try_claim(catalog_url, ASSET, dead, lease_s=1) is None  # its own claim, taken again
    assert try_claim(catalog_url, ASSET, new_holder("delete"), lease_s=30) == dead
    with asset_claim(catalog_url, ASSET, "delete", wait_s=10, lease_s=1):
        # Held for three leases: renewed all along, never taken over.
        for _ in range(6):
            time.sleep(0.5)
            assert try_claim(catalog_url, ASSET, new_holder("commit"), lease_s=30) is not None
    release_claims(catalog_url, "delete:")
    assert try_claim(catalog_url, ASSET, new_holder("job"), lease_s=30) is None
