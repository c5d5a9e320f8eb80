"""The plain checks behind the asset checks, on scenes and images made to break them one way at a time."""

import cv2
import numpy as np
import pytest

from heimdex_pipeline.outputs.sidecar import SidecarScene, ThumbnailEntry, sidecar_json_schema
from heimdex_pipeline.outputs.validation import (
    MAX_PROBLEMS,
    image_size,
    scene_coverage_problems,
    schema_problems,
    thumbnail_problems,
)


def _scenes(*bounds: tuple[float, float, int, int]) -> list[SidecarScene]:
    return [SidecarScene(index=i, start_s=a, end_s=b, start_frame=f, end_frame=g) for i, (a, b, f, g) in enumerate(bounds)]


def test_contiguous_scenes_covering_the_duration_pass() -> None:
    assert scene_coverage_problems(_scenes((0, 2, 0, 50), (2, 4.96, 50, 124)), 5.0, 25.0) == []


@pytest.mark.parametrize(("scenes", "problem"), [
    (_scenes((0.5, 2, 12, 50), (2, 5, 50, 125)), "the first scene starts at 0.5 s (frame 12), not 0"),
    (_scenes((0, 2, 0, 50), (2.5, 5, 62, 125)), "a gap between scenes 0 and 1: 2.0 to 2.5 s"),
    (_scenes((0, 3, 0, 75), (2, 5, 75, 125)), "scenes 0 and 1 overlap: 2.0 to 3.0 s"),
    (_scenes((0, 2, 0, 50), (2, 5, 49, 125)), "scene 1 starts at frame 49, scene 0 ends at 50"),
    (_scenes((0, 2, 0, 50), (2, 2, 50, 50), (2, 5, 50, 125)), "scene 1 is empty or reversed: [2.0, 2.0) s, frames [50, 50)"),
    (_scenes((0, 2, 0, 50), (2, 4.5, 50, 112)), "the last scene ends at 4.5 s; the video lasts 5.0 s"),
])
def test_each_way_scenes_can_miss_the_video_is_named(scenes: list[SidecarScene], problem: str) -> None:
    assert problem in scene_coverage_problems(scenes, 5.0, 25.0)


def test_scenes_out_of_order_are_named_by_their_index() -> None:
    scenes = _scenes((0, 2, 0, 50), (2, 5, 50, 125))
    scenes.reverse()
    problems = scene_coverage_problems(scenes, 5.0, 25.0)
    assert "scene 0 has index 1" in problems and "scene 1 has index 0" in problems


def test_a_long_list_of_problems_is_cut_short() -> None:
    gaps = _scenes(*((i, i + 0.5, i * 25, i * 25 + 12) for i in range(40)))
    problems = scene_coverage_problems(gaps, 40.0, 25.0)
    assert len(problems) == MAX_PROBLEMS + 1 and problems[-1].startswith("and ")


def test_thumbnails_are_checked_against_their_listed_size() -> None:
    ok, jpeg = cv2.imencode(".jpg", np.zeros((90, 160, 3), dtype=np.uint8))
    assert ok and image_size(jpeg.tobytes()) == (160, 90)
    files = {"a.jpg": jpeg.tobytes(), "b.jpg": jpeg.tobytes(), "c.jpg": b"\xff\xd8 not really"}
    entries = [ThumbnailEntry(idx=0, storage_key="a.jpg", width=160, height=90, ts_ms=0),
               ThumbnailEntry(idx=1, storage_key="b.jpg", width=320, height=180, ts_ms=10),
               ThumbnailEntry(idx=2, storage_key="c.jpg", width=160, height=90, ts_ms=20),
               ThumbnailEntry(idx=2, storage_key="d.jpg", width=160, height=90, ts_ms=30)]
    assert thumbnail_problems(entries, lambda entry: files.get(entry.storage_key)) == [
        "b.jpg is 160x90, listed as 320x180", "c.jpg is not an image", "d.jpg is missing", "two thumbnails share an idx"]


def test_a_schema_is_checked_before_it_judges_and_each_document_against_its_own_schema() -> None:
    schema = sidecar_json_schema()
    assert schema_problems({"schema_version": "1.0"}, schema)[0] == "$: 'asset_id' is a required property"
    # A tampered schema is named as such, every time it is read, and never judges a document.
    broken = {**schema, "type": 5}
    for _ in range(2):
        assert schema_problems({}, broken) == ["the schema itself is invalid: 5 is not valid under any of the given schemas"]
    # The same schema under another key order is the same schema; another schema judges by its own rules.
    assert schema_problems({"schema_version": "1.0"}, dict(reversed(schema.items()))) == schema_problems(
        {"schema_version": "1.0"}, schema)
    assert schema_problems({"a": 1}, {"type": "object", "required": ["b"]}) == ["$: 'b' is a required property"]
