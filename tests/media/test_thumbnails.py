"""Thumbnail planning by policy, and extraction by seeking."""

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


@pytest.mark.parametrize("policy", [dict(interval_s=-1), dict(max_count=0), dict(max_count=51), dict(max_height=63)])
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
