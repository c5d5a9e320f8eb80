"""Scene detection on clips with known cuts and on PySceneDetect's real media and goldens."""

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
import scenedetect
from scenedetect import ContentDetector

from heimdex_pipeline.media.errors import UnreadableMediaError
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.detector import ContentParams
from heimdex_pipeline.media.scenes import detect_scenes
from heimdex_pipeline.media.tools import FFMPEG

# Files with a golden of their own, and the media README's frame lists for the others
# (issue-134-rotate.mp4 is goldeneye rotated, with the same cuts).
README_CUTS = {"issue-195-aspect-ratio.mp4": [70, 170, 301, 421, 484]}
GOLDEN_OF = {"issue-134-rotate.mp4": "goldeneye-vfr-drop3.mp4"}
# x264 with three non-reference B frames between reference frames and no keyframe at a cut:
# most cuts fall on frames that the first, reference-only pass does not decode.
CUTS_ON_SKIPPED_FRAMES = ("-x264-params", "scenecut=0:b-adapt=0:bframes=3:b-pyramid=none")
REAL_FILES = ["testvideo.mp4", "goldeneye-vfr-drop3.mp4", "fades.mp4", "counter.mp4", "issue-134-rotate.mp4",
              "issue-195-aspect-ratio.mp4"]
# Every video of the real media, and thresholds from one that finds dissolves to PySceneDetect's default (27)
# and one above it.
ALL_REAL_FILES = [*REAL_FILES, "issue-236-split-copy.mkv", "delayed_start.mp4"]
THRESHOLDS = (15.0, 21.0, 27.0, 35.0)
# Where the cuts are not PySceneDetect's own: (times in s it finds and Heimdex does not, times Heimdex finds
# and it does not). Heimdex decodes with H.264's loop filter skipped and scales with swscale straight to the
# working width; PySceneDetect decodes whole frames and resizes them with OpenCV. Frame scores differ by
# 0.2 on average and up to 7.6 (frame 150 of issue-134-rotate.mp4: 15.6 against 8.8), which decides a cut
# whose score lies near the threshold, in a dissolve or a fade. (PyAV with the loop filter, packed BGR and
# OpenCV's resize gives PySceneDetect's scores exactly, on every file but the rotated one.)
NOT_PYSCENEDETECTS = {
    ("testvideo.mp4", 21.0): ([7.140467, 23.056367], [23.023]),  # a dissolve missed, a fade's cut a frame early
    ("issue-134-rotate.mp4", 15.0): ([], [6.25625]),
    ("issue-236-split-copy.mkv", 35.0): ([], [0.792]),
}


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
    cuts = [scene.start_s for scene in detect_scenes(path, probe, ContentParams()).scenes[1:]]
    assert len(cuts) == len(expected), (cuts, expected)
    for found, want in zip(cuts, expected, strict=True):
        assert abs(found - want) <= 1 / rate, (found, want)


@pytest.mark.parametrize("threshold", THRESHOLDS)
@pytest.mark.parametrize("name", ALL_REAL_FILES)
def test_cuts_are_those_of_pyscenedetect_itself(media_dir: Path, name: str, threshold: float) -> None:
    """Against `scenedetect.detect` with the same ContentDetector threshold: no code shared but the detector's.

    Cuts are compared by their presentation time to the microsecond (PySceneDetect's frame numbers count
    a variable-frame-rate video's frames otherwise). About 40 s of CPU for the 32 cases.
    """
    path = media_dir / name
    scenes = scenedetect.detect(str(path), ContentDetector(threshold=threshold))
    theirs = {round(start.seconds, 6) for start, _ in scenes[1:]}
    detection = detect_scenes(path, probe_video(path), ContentParams(threshold=threshold))
    ours = {round(scene.start_s, 6) for scene in detection.scenes[1:]}
    assert (sorted(theirs - ours), sorted(ours - theirs)) == NOT_PYSCENEDETECTS.get((name, threshold), ([], [])), \
        f"PySceneDetect: {sorted(theirs)}, Heimdex: {sorted(ours)}"


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


def test_cuts_on_frames_the_first_pass_skips_are_found_by_the_second_look(clips) -> None:
    path, cut_times = clips((2.0, 1.5, 3.0, 2.4, 1.0), extra_args=CUTS_ON_SKIPPED_FRAMES)
    probe = probe_video(path)
    detection = detect_scenes(path, probe, ContentParams())
    assert [scene.start_s for scene in detection.scenes[1:]] == pytest.approx(cut_times, abs=1e-6)
    assert detection.frames_decoded < detection.frame_count / 2
    assert detection.scenes == detect_scenes(path, probe, ContentParams(), every_frame=True).scenes


@pytest.mark.parametrize("threshold", [27.0, 24.0, 21.0, 15.0])
def test_same_scenes_as_scoring_every_frame(media_dir: Path, threshold: float) -> None:
    # testvideo.mp4 has up to eight B frames in a row and fast motion: the lower thresholds
    # put cuts inside the gaps between reference frames, and minimum-length merges around them.
    path = media_dir / "testvideo.mp4"
    probe = probe_video(path)
    params = ContentParams(threshold=threshold)
    detection = detect_scenes(path, probe, params)
    assert detection.frames_decoded < 0.6 * detection.frame_count
    assert detection.scenes == detect_scenes(path, probe, params, every_frame=True).scenes


def test_motion_everywhere_falls_back_to_one_full_pass(tmp_path: Path) -> None:
    # Grain that changes every frame puts every gap between reference frames under suspicion.
    path = tmp_path / "grainy.mp4"
    segments = [f"{source}=size=320x240:rate=25:duration=2,noise=alls=35:allf=t" for source in ("testsrc2", "smptehdbars")]
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", segments[0], "-f", "lavfi",
                    "-i", segments[1], "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0", "-c:v", "libx264",
                    "-preset", "veryfast", "-x264-params", "b-adapt=0:bframes=3", str(path)], check=True)
    probe = probe_video(path)
    detection = detect_scenes(path, probe, ContentParams())
    assert [scene.start_s for scene in detection.scenes[1:]] == pytest.approx([2.0], abs=1e-6)
    assert detection.frames_decoded > detection.frame_count  # the first pass, given up, then every frame
    assert detection.scenes == detect_scenes(path, probe, ContentParams(), every_frame=True).scenes


def test_a_clip_without_cut_is_one_scene_covering_it(clips) -> None:
    path, _ = clips((4.0,))
    detection = detect_scenes(path, probe_video(path))
    assert len(detection.scenes) == 1
    scene = detection.scenes[0]
    assert (scene.start_s, scene.start_frame) == (0.0, 0)
    assert scene.end_s == pytest.approx(4.0, abs=1e-6) and scene.end_frame == detection.frame_count == 100


def test_delayed_start_times_count_from_the_first_frame(media_dir: Path) -> None:
    path = media_dir / "delayed_start.mp4"
    probe = probe_video(path)
    assert probe["video_start_s"] == pytest.approx(1.075)
    (scene,) = detect_scenes(path, probe).scenes
    assert scene.start_s == 0.0 and scene.end_s == pytest.approx(probe["duration_s"], abs=0.05)


def test_detector_is_described_for_the_sidecar(clips) -> None:
    path, _ = clips((4.0,))
    detector = detect_scenes(path, probe_video(path), ContentParams()).detector
    assert detector["name"] == "ContentDetector" and detector["parameters"]["threshold"] == 27.0


def test_truncated_video_decodes_what_is_there_or_fails_clearly(clips, tmp_path: Path) -> None:
    path, _ = clips((2.0, 2.0))
    probe = probe_video(path)
    broken = tmp_path / "garbage.mp4"
    broken.write_bytes(b"\x00" * 4096)
    with pytest.raises(UnreadableMediaError):
        detect_scenes(broken, probe)
