"""Heimdex's shot detector on small generated edits whose every frame is known (`benchmarks.shot_edits`):
each kind of transition found with its kind and span, hard cuts to the frame, flashes and strobes no cut."""

from pathlib import Path

import av
import numpy as np
import pytest

from benchmarks.shot_edits import Edit, Join, Shot, build, truth
from heimdex_pipeline.media import shot_detector
from heimdex_pipeline.media.detector import ContentParams, HeimdexParams
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import detect_scenes

W, H, RATE = 320, 180, 25
BARS = f"lavfi:smptehdbars=s={W}x{H}:r={RATE}"
PATTERN = f"lavfi:testsrc2=s={W}x{H}:r={RATE}"
# Each kind with a length of 12 frames (a fade: 6 out, 6 in, here with 3 blank frames between).
JOINS = {
    "hard": Join("hard"),
    "fade-black": Join("fade-black", 12, hold=3),
    "fade-white": Join("fade-white", 12),
    "dissolve": Join("dissolve", 12),
    "wipe": Join("wipe", 12, style="wipeleft"),
}


def _edit(tmp_path: Path, name: str, shots: tuple[Shot, ...], joins: tuple[Join, ...]) -> tuple[Path, Edit]:
    edit = Edit(name, W, H, RATE, shots, joins)
    return build(edit, tmp_path, tmp_path), edit


@pytest.mark.parametrize("kind", list(JOINS))
def test_each_transition_is_found_with_its_kind_and_span(tmp_path: Path, kind: str) -> None:
    path, edit = _edit(tmp_path, kind, (Shot(BARS, 50), Shot(PATTERN, 50)), (JOINS[kind],))
    (expected,) = truth(edit).transitions
    scenes = detect_scenes(path, probe_video(path)).scenes
    assert len(scenes) == 2, scenes
    transition = scenes[1].transition
    assert transition is not None and transition.kind == kind
    if kind == "hard":
        assert scenes[1].start_frame == transition.start_frame == transition.end_frame == expected.first
    else:
        assert expected.first <= scenes[1].start_frame <= expected.last
        assert abs(transition.start_frame - expected.first) <= 2 and abs(transition.end_frame - expected.last) <= 2
    assert transition.start_s == scenes[1].start_s if kind == "hard" else transition.start_s < scenes[1].start_s
    assert transition.end_s == pytest.approx((transition.end_frame + 1) / RATE)


def test_hard_cuts_are_exact_to_the_frame(tmp_path: Path) -> None:
    shots = (Shot(BARS, 31), Shot(PATTERN, 17), Shot(f"lavfi:rgbtestsrc=s={W}x{H}:r={RATE}", 23), Shot(BARS, 40))
    path, edit = _edit(tmp_path, "cuts", shots, (Join("hard"),) * 3)
    scenes = detect_scenes(path, probe_video(path)).scenes
    assert [scene.start_frame for scene in scenes[1:]] == [t.first for t in truth(edit).transitions] == [31, 48, 71]
    assert {scene.transition.kind for scene in scenes[1:]} == {"hard"}


def test_a_flash_or_a_strobe_inside_a_shot_is_no_cut(tmp_path: Path) -> None:
    # A camera flash of one frame, one of three fading frames, and a strobe of four flashes two frames apart.
    flashes = ((15, 1), (30, 3), (50, 1), (52, 1), (54, 1), (56, 1))
    path, _ = _edit(tmp_path, "flashes", (Shot(PATTERN, 80, flashes=flashes), Shot(BARS, 20)), (Join("hard"),))
    probe = probe_video(path)
    assert [scene.start_frame for scene in detect_scenes(path, probe).scenes] == [0, 80]
    # ContentDetector cuts at them: the clip does hold flashes a detector can fall for.
    assert len(detect_scenes(path, probe, ContentParams(min_scene_len_frames=1)).scenes) > 2


def test_heimdex_is_the_default_and_named_with_its_parameters(tmp_path: Path) -> None:
    path, _ = _edit(tmp_path, "named", (Shot(BARS, 20), Shot(PATTERN, 20)), (Join("hard"),))
    detector = detect_scenes(path, probe_video(path)).detector
    assert detector["name"] == "HeimdexShotDetector" and detector["library"] == "Heimdex"
    assert detector["parameters"] == {**HeimdexParams().model_dump(), "detection_width": 256}
    assert HeimdexParams().code_version() != HeimdexParams(cut_ratio=4).code_version()
    assert HeimdexParams().code_version().startswith("HeimdexShotDetector-1;")


def _frames(path: Path) -> list[np.ndarray]:
    """The edit's frames at the detection width, as `detect_scenes` feeds the detector."""
    with av.open(str(path)) as container:
        return [frame.reformat(256, 144).to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def test_features_taken_a_batch_at_a_time_equal_those_taken_frame_by_frame(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every kind of transition, over several batches and across their edges (a batch is 64 frames); the
    # dissolve and the wipe into the moving pattern, as in the test above.
    shots = tuple(Shot(BARS if index % 2 else PATTERN, 40 + 3 * index) for index in range(7))
    joins = tuple(JOINS[kind] for kind in ("hard", "fade-black", "fade-white", "dissolve", "hard", "wipe"))
    path, edit = _edit(tmp_path, "batches", shots, joins)
    frames = _frames(path)
    assert len(frames) > 3 * shot_detector.BATCH and len(frames) % shot_detector.BATCH

    def detector(batch: int) -> shot_detector.ShotDetector:
        monkeypatch.setattr(shot_detector, "BATCH", batch)
        found = shot_detector.ShotDetector(HeimdexParams(), RATE)
        for frame in frames:
            found.add(frame)
        found.transitions()
        return found

    batched, one_by_one = detector(shot_detector.BATCH), detector(1)
    assert [t.kind for t in batched.transitions()] == [t.kind for t in truth(edit).transitions]
    assert batched.transitions() == one_by_one.transitions()
    # Each frame's change and gradual features (the detector's whole memory of the pictures) alike.
    assert list(batched._change) == list(one_by_one._change) and len(batched._change) == len(frames)
    for h in batched._scales:
        assert len(batched._gradual[h]) == 5 * (len(frames) - 2 * h)
        np.testing.assert_array_equal(np.asarray(batched._gradual[h]), np.asarray(one_by_one._gradual[h]))


def test_a_dissolves_middle_frame_is_an_even_blend_of_its_sides(tmp_path: Path) -> None:
    # Two still pictures dissolved into each other: the frame in the middle lies halfway,
    # an exact blend, at every window wide enough to see both sides whole.
    still = f"lavfi:rgbtestsrc=s={W}x{H}:r={RATE}"
    path, edit = _edit(tmp_path, "blend", (Shot(BARS, 40), Shot(still, 40)), (JOINS["dissolve"],))
    (dissolve,) = truth(edit).transitions
    found = shot_detector.ShotDetector(HeimdexParams(), RATE)
    for frame in _frames(path):
        found.add(frame)
    found.transitions()  # takes the features of the frames after the last whole batch
    middle = (dissolve.first + dissolve.last) / 2
    around = sorted({int(np.floor(middle)), int(np.ceil(middle))})  # the middle frame, or the two about it
    wide = [h for h in found._scales if middle - h < dissolve.first and middle + h > dissolve.last]
    assert wide
    for h in wide:
        rows = np.asarray(found._gradual[h]).reshape(-1, 5)  # row r: frame r + h between frames r and r + 2h
        shares = [rows[frame - h][1] for frame in around]
        assert sum(shares) / len(shares) == pytest.approx(0.5, abs=0.03), (h, shares)
        assert all(rows[frame - h][2] < 0.05 for frame in around), (h, rows[around[0] - h])  # the fit's residual
