"""Thumbnail planning by policy, and extraction by seeking."""

import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import Scene, detect_scenes
from heimdex_pipeline.media.thumbnails import ThumbnailPolicy, extract_thumbnails, plan_thumbnails


def _scenes(*bounds: float) -> list[Scene]:
    return [Scene(i, a, b, i * 10, i * 10 + 10) for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))]


def test_one_thumbnail_per_scene_at_its_middle() -> None:
    slots = plan_thumbnails(_scenes(0, 2, 6, 7), 7.0, ThumbnailPolicy())
    assert [s.target_s for s in slots] == [1.0, 4.0, 6.5]


def test_interval_policy_and_max_count() -> None:
    slots = plan_thumbnails(_scenes(0, 100), 100.0, ThumbnailPolicy(interval_s=10, max_count=50))
    assert [s.target_s for s in slots] == [5.0 + 10 * i for i in range(10)]
    capped = plan_thumbnails(_scenes(0, 100), 100.0, ThumbnailPolicy(interval_s=1, max_count=5))
    assert len(capped) == 5 and capped[0].target_s < 20 and capped[-1].target_s > 80


def test_many_scenes_are_spread_down_to_max_count() -> None:
    scenes = _scenes(*range(0, 61))
    slots = plan_thumbnails(scenes, 60.0, ThumbnailPolicy(max_count=6))
    assert len(slots) == 6 and slots[0].target_s < 10 and slots[-1].target_s > 50


@pytest.mark.parametrize("policy", [dict(interval_s=-1), dict(interval_s=float("nan")), dict(max_count=0),
                                    dict(max_count=51), dict(max_height=63)])
def test_policy_bounds_of_the_contract(policy: dict) -> None:
    with pytest.raises(ValueError):
        ThumbnailPolicy(**policy)


def test_thumbnails_match_the_scenes(clips, tmp_path: Path) -> None:
    path, _ = clips((2.0, 1.5, 3.0, 2.4, 1.0))
    probe = probe_video(path)
    scenes = detect_scenes(path, probe).scenes
    thumbs = extract_thumbnails(path, probe, plan_thumbnails(scenes, probe["duration_s"], ThumbnailPolicy()), tmp_path, 120)
    assert len(thumbs) == len(scenes) == 5
    for thumb, scene in zip(thumbs, scenes, strict=True):
        image = cv2.imread(str(thumb.path))
        assert image.shape[:2] == (thumb.height, thumb.width) == (120, 160)
        assert scene.start_s * 1000 <= thumb.ts_ms < scene.end_s * 1000


def test_rotated_and_anamorphic_thumbnails_have_display_shape(media_dir: Path, tmp_path: Path) -> None:
    for name, shape in [("issue-134-rotate.mp4", (360, 152)), ("issue-195-aspect-ratio.mp4", (360, 640))]:
        path = media_dir / name
        probe = probe_video(path)
        slots = plan_thumbnails([], probe["duration_s"], ThumbnailPolicy(interval_s=5, max_count=2))
        (first, *_) = extract_thumbnails(path, probe, slots, tmp_path / name, 360)
        assert cv2.imread(str(first.path)).shape[:2] == shape


def _plan_in_a_child(duration_s: float, interval_s: float, max_count: int) -> tuple[int, float]:
    """Plan in a fresh interpreter held to 1 GiB of memory and 60 s: the slot count and the seconds it took."""
    code = ("import resource, time\n"
            "resource.setrlimit(resource.RLIMIT_DATA, (2**30, 2**30))\n"
            "from heimdex_pipeline.media.thumbnails import ThumbnailPolicy, plan_thumbnails\n"
            "started = time.perf_counter()\n"
            f"slots = plan_thumbnails([], {duration_s!r}, ThumbnailPolicy(interval_s={interval_s!r}, "
            f"max_count={max_count}))\n"
            "print(len(slots), time.perf_counter() - started)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-500:]
    count, seconds = done.stdout.split()
    return int(count), float(seconds)


@pytest.mark.parametrize("interval_s", [1e-7, 5e-324])
def test_tiny_intervals_plan_instantly_from_max_count(interval_s: float) -> None:
    # 1e-7 took 2.2 GB; 5e-324 (duration / interval is inf) never finished.
    count, seconds = _plan_in_a_child(7200.0, interval_s, 50)
    assert count == 50 and seconds < 0.5
    slots = plan_thumbnails([], 10.0, ThumbnailPolicy(interval_s=interval_s, max_count=5))
    assert [round(s.target_s) for s in slots] == [1, 3, 5, 7, 9]
    assert all(s.window_start_s <= s.target_s <= s.window_end_s for s in slots)


def test_interval_edges_are_those_of_the_windows() -> None:
    # The last window shorter than half an interval is skipped; a shorter video has one window.
    assert [s.target_s for s in plan_thumbnails([], 10.4, ThumbnailPolicy(interval_s=1, max_count=50))][-1] == 9.5
    assert [s.target_s for s in plan_thumbnails([], 10.6, ThumbnailPolicy(interval_s=1, max_count=50))][-1] == 10.3
    for interval_s in (60.0, float("inf")):
        (only,) = plan_thumbnails([], 3.0, ThumbnailPolicy(interval_s=interval_s))
        assert (only.window_start_s, only.target_s, only.window_end_s) == (0.0, 1.5, 3.0)
    assert plan_thumbnails([], 0.0, ThumbnailPolicy(interval_s=1)) == []
