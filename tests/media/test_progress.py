"""Progress of media work: throttled reports that never go back, and real scene detection and thumbnails
reporting their frames and tiles."""

import time
from pathlib import Path

import pytest

from heimdex_pipeline.media.detector import ContentParams
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.progress import Progress
from heimdex_pipeline.media.scenes import detect_scenes
from heimdex_pipeline.media.thumbnails import ThumbnailPolicy, extract_thumbnails, plan_thumbnails


def test_reports_are_spaced_never_go_back_and_end_at_the_total() -> None:
    now = [0.0]
    reports: list[tuple[int, int]] = []
    progress = Progress(100, lambda done, total: reports.append((done, total)), interval_s=1.0, clock=lambda: now[0])
    for done, at in ((10, 0.0), (20, 0.5), (15, 1.2), (150, 1.5), (40, 2.3)):
        now[0] = at
        progress.update(done)
    progress.finish()
    # At 0.0 s, then at 1.2 s (still 20: a smaller count does not go back), at 2.3 s short of the total
    # (only the end reaches it), and the end.
    assert reports == [(10, 100), (20, 100), (99, 100), (100, 100)]


@pytest.mark.parametrize("every_frame", [True, False], ids=["one-pass", "two-looks"])
def test_scene_detection_reports_its_frames_at_least_every_two_seconds(clips, every_frame: bool) -> None:
    path, _ = clips((20.0, 20.0), size="640x360")
    probe = probe_video(path)
    seen: list[tuple[float, int, int]] = []
    started = time.monotonic()
    detect_scenes(path, probe, ContentParams(), every_frame=every_frame,
                  progress=lambda done, total: seen.append((time.monotonic(), done, total)))
    ended = time.monotonic()
    assert seen[-1][1:] == (1000, 1000)
    assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen)
    times = [started, *(at for at, _, _ in seen), ended]
    assert max(later - earlier for earlier, later in zip(times, times[1:])) <= 2.0


def test_thumbnails_report_each_tile(clips, tmp_path: Path) -> None:
    path, _ = clips((1.0, 1.0, 1.0))
    probe = probe_video(path)
    slots = plan_thumbnails([], probe["duration_s"], ThumbnailPolicy(interval_s=0.5, max_count=5))
    seen: list[tuple[int, int]] = []
    extract_thumbnails(path, probe, slots, tmp_path, 64, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (5, 5) and all(total == 5 for _, total in seen)
