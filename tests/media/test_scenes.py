"""Scene detection on clips with known cuts and on PySceneDetect's real media and goldens."""

import json
from fractions import Fraction
from pathlib import Path

import pytest

from heimdex_pipeline.media.errors import UnreadableMediaError
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import detect_scenes

# Files with a golden of their own, and the media README's frame lists for the others
# (issue-134-rotate.mp4 is goldeneye rotated, with the same cuts).
README_CUTS = {"issue-195-aspect-ratio.mp4": [70, 170, 301, 421, 484]}
GOLDEN_OF = {"issue-134-rotate.mp4": "goldeneye-vfr-drop3.mp4"}
REAL_FILES = ["testvideo.mp4", "goldeneye-vfr-drop3.mp4", "fades.mp4", "counter.mp4", "issue-134-rotate.mp4",
              "issue-195-aspect-ratio.mp4"]


def _golden_seconds(media_dir: Path, name: str, rate: Fraction) -> list[float]:
    """The expected cut frames as seconds at the file's nominal rate (frame numbers differ by decoder)."""
    if name in README_CUTS:
        frames = README_CUTS[name]
    else:
        golden = media_dir / "goldens" / f"{GOLDEN_OF.get(name, name)}.ContentDetector.default.json"
        frames = json.loads(golden.read_text())["cuts"]
    return [float(frame / rate) for frame in frames]


@pytest.mark.parametrize("name", REAL_FILES)
def test_cuts_match_pyscenedetect_goldens(media_dir: Path, name: str) -> None:
    path = media_dir / name
    probe = probe_video(path)
    rate = Fraction(probe["nominal_fps"])
    expected = _golden_seconds(media_dir, name, rate)
    cuts = [scene.start_s for scene in detect_scenes(path, probe).scenes[1:]]
    assert len(cuts) == len(expected), (cuts, expected)
    for found, want in zip(cuts, expected, strict=True):
        assert abs(found - want) <= 1 / rate, (found, want)


def test_media_readme_cut_times_for_variable_frame_rate(media_dir: Path) -> None:
    path = media_dir / "goldeneye-vfr-drop3.mp4"
    cuts = [scene.start_s for scene in detect_scenes(path, probe_video(path)).scenes[1:]]
    assert cuts == pytest.approx([3.754, 8.759], abs=1 / 24)


def test_known_cut_points_of_a_generated_clip(clips) -> None:
    path, cut_times = clips((2.0, 1.5, 3.0, 2.4, 1.0))
    scenes = detect_scenes(path, probe_video(path)).scenes
    assert [scene.start_s for scene in scenes[1:]] == pytest.approx(cut_times, abs=1 / 25)
    assert scenes[0].start_s == 0.0 and scenes[-1].end_s == pytest.approx(9.9, abs=1 / 25)
    for before, after in zip(scenes, scenes[1:], strict=False):
        assert before.end_s == after.start_s and before.end_frame == after.start_frame


def test_a_clip_without_cut_is_one_scene_covering_it(clips) -> None:
    path, _ = clips((4.0,))
    detection = detect_scenes(path, probe_video(path))
    assert len(detection.scenes) == 1
    scene = detection.scenes[0]
    assert (scene.start_s, scene.start_frame) == (0.0, 0)
    assert scene.end_s == pytest.approx(4.0, abs=1e-6) and scene.end_frame == detection.frames_decoded == 100


def test_delayed_start_times_count_from_the_first_frame(media_dir: Path) -> None:
    path = media_dir / "delayed_start.mp4"
    probe = probe_video(path)
    assert probe["video_start_s"] == pytest.approx(1.075)
    (scene,) = detect_scenes(path, probe).scenes
    assert scene.start_s == 0.0 and scene.end_s == pytest.approx(probe["duration_s"], abs=0.05)


def test_detector_is_described_for_the_sidecar(clips) -> None:
    path, _ = clips((4.0,))
    detector = detect_scenes(path, probe_video(path)).detector
    assert detector["name"] == "ContentDetector" and detector["parameters"]["threshold"] == 27.0


def test_truncated_video_decodes_what_is_there_or_fails_clearly(clips, tmp_path: Path) -> None:
    path, _ = clips((2.0, 2.0))
    probe = probe_video(path)
    broken = tmp_path / "garbage.mp4"
    broken.write_bytes(b"\x00" * 4096)
    with pytest.raises(UnreadableMediaError):
        detect_scenes(broken, probe)
