"""Fault 5: the derived filesystem full (a small tmpfs made by the test).

The write fails with a message that says the disk is full, leaves no half-written sidecar or
thumbnail set and no temporary file, keeps the earlier outputs, and is retried with the
assets' backoff: once space is freed, the retry succeeds.
"""

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, materialize

from heimdex_pipeline.assets import probe_metadata, scene_sidecar, storyboard, thumbnails
from heimdex_pipeline.storage.local import swap_dir
from tests.faults.support_io import error_text, small_tmpfs

ASSETS = [probe_metadata, scene_sidecar, thumbnails, storyboard]
POLICY = {"ops": {"thumbnails": {"config": {"interval_s": 0.5, "max_count": 12, "max_height": 240}}}}


@pytest.fixture
def backend() -> str:
    """The fault is the filesystem's: SQLite only, to stay within the time budget."""
    return "sqlite"


@pytest.fixture
def derived_root(tmp_path: Path) -> Iterator[Path]:
    """The derived folder on a 4 MiB tmpfs of its own."""
    with small_tmpfs(tmp_path / "derived", "4m") as root:
        (root / "uploads").mkdir()
        yield root


def _fill(root: Path) -> Path:
    """Write a file until the filesystem is full; answer it (delete it to free the space)."""
    filler = root / "filler.bin"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "filler.bin"}


def _failure_message(instance: DagsterInstance, run_id: str) -> str:
    (failure,) = instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
    return error_text(failure.dagster_event.step_failure_data.error)


def _retries(instance: DagsterInstance, run_id: str) -> int:
    return len(instance.all_logs(run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY))


def test_full_disk_fails_clearly_keeps_earlier_outputs_and_passes_once_freed(
        clips, upload, resources, instance: DagsterInstance, derived_root: Path) -> None:
    path, _ = clips((2.0, 1.5, 3.0))
    asset_id = upload(path)
    assert materialize(ASSETS, partition_key=asset_id, instance=instance, resources=resources).success
    before = _snapshot(derived_root)
    filler = _fill(derived_root)

    # Full: each write fails, is retried with backoff, and fails for good saying why.
    for assets, config in (([thumbnails], POLICY), ([scene_sidecar], None), ([storyboard], None)):
        result = materialize(assets, partition_key=asset_id, instance=instance, resources=resources,
                             run_config=config, raise_on_error=False)
        assert not result.success
        assert "the derived filesystem is full" in _failure_message(instance, result.run_id)
        assert _retries(instance, result.run_id) == 3
        # The sidecar, the thumbnail set, the storyboard and the probe are those of before; no temporary file remains.
        assert _snapshot(derived_root) == before
        assert [p.name for p in derived_root.rglob(".*")] == []

    # Freed while the step waits for its retry: the retry succeeds.
    earlier = {run.run_id for run in instance.get_runs()}

    def free_after_first_failure() -> None:
        for _ in range(1200):
            runs = [run for run in instance.get_runs(limit=1) if run.run_id not in earlier]
            if runs and _retries(instance, runs[0].run_id):
                break
            threading.Event().wait(0.05)
        filler.unlink()

    helper = threading.Thread(target=free_after_first_failure)
    helper.start()
    try:
        result = materialize([thumbnails], partition_key=asset_id, instance=instance, resources=resources,
                             run_config=POLICY)
    finally:
        helper.join()
    assert len(instance.get_runs()) == len(earlier) + 1
    assert result.success and _retries(instance, result.run_id) >= 1
    thumbs = sorted((derived_root / "org-demo" / "thumbnails" / asset_id).iterdir())
    assert len(thumbs) == 12
    assert [p.name for p in derived_root.rglob(".*")] == []


def test_failed_swap_puts_the_earlier_set_back(tmp_path: Path) -> None:
    """A swap whose new folder cannot be moved in leaves the earlier set in place, and nothing hidden."""
    final = tmp_path / "thumbnails"
    final.mkdir()
    (final / "0000.jpg").write_bytes(b"earlier")
    with pytest.raises(FileNotFoundError):
        swap_dir(tmp_path / ".thumbnails.gone.tmp", final)
    assert (final / "0000.jpg").read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["thumbnails"]
