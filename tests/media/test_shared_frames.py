"""What the scene pass keeps of its frames for the storyboard: each tile's frame within half a span of its
middle, and the same storyboard as the storyboard's own decode gives."""

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from heimdex_pipeline.media.detector import ContentParams
from heimdex_pipeline.media.frame_taps import SharedFrames
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import detect_scenes
from heimdex_pipeline.media.shared_frames import scene_pass_tap
from heimdex_pipeline.media.storyboard import SPRITE_NAME, VTT_NAME, make_storyboard
from heimdex_pipeline.media.tools import FFMPEG

RATE = 25
# Frame n is a flat grey of FIRST_LEVEL + LEVEL_STEP x n: a tile's mean says which frame it shows.
FIRST_LEVEL, LEVEL_STEP = 30, 2


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s at 25 fps (100 frames) of greys, x264's default GOP with B-frames: the scene pass's first look
    decodes only the frames others are predicted from."""
    out = tmp_path_factory.mktemp("numbered") / "numbered.mp4"
    subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"color=c=black:size=320x180:rate={RATE}:duration=4,"
                    f"geq=lum='{FIRST_LEVEL}+{LEVEL_STEP}*N':cb=128:cr=128,format=yuv420p",
                    "-c:v", "libx264", "-preset", "medium", "-crf", "1", str(out)], check=True)
    return out


def _shown(sprite: np.ndarray, board) -> list[float]:
    """The time of the frame each tile shows, read from its grey (limited-range luma, expanded in RGB)."""
    lumas = [float(sprite[t.y:t.y + t.h, t.x:t.x + t.w].mean()) * 219 / 255 + 16 for t in board.tiles]
    return [round((luma - FIRST_LEVEL) / LEVEL_STEP) / RATE for luma in lumas]


def test_tiles_from_the_scene_pass_lie_within_half_a_span_of_their_middles(numbered: Path, tmp_path: Path) -> None:
    probe = probe_video(numbered)
    tap = scene_pass_tap(probe, 160, 0.1)
    # ContentDetector's two looks: the pass that skips frames, where a tile's frame may be off its middle.
    detection = detect_scenes(numbered, probe, ContentParams(), tap=tap)
    assert detection.frames_decoded < detection.frame_count == 100  # frames were skipped
    shared = SharedFrames.from_bytes(tap.shared(detection.frame_count).to_bytes())
    assert shared.tiles is not None
    board = make_storyboard(numbered, probe, tmp_path / "shared", 160, tiles=shared.tiles)
    assert board.takes(shared.tiles)
    shown = _shown(cv2.imread(str(tmp_path / "shared" / SPRITE_NAME)), board)
    for tile, seconds, kept in zip(board.tiles, shown, shared.tiles.seconds.tolist(), strict=True):
        middle, span = (tile.start_s + tile.end_s) / 2, tile.end_s - tile.start_s
        assert abs(seconds - middle) <= span / 2 + 1e-6, (tile, seconds)
        assert seconds == pytest.approx(kept, abs=1e-6)  # the frame the tap says it kept

    # Without the scene pass's tiles (a storyboard made alone): the same geometry and track, each tile a
    # frame of its own span too.
    alone = make_storyboard(numbered, probe, tmp_path / "alone", 160)
    assert alone == board
    assert (tmp_path / "alone" / VTT_NAME).read_text() == (tmp_path / "shared" / VTT_NAME).read_text()
    for tile, seconds in zip(alone.tiles, _shown(cv2.imread(str(tmp_path / "alone" / SPRITE_NAME)), alone),
                             strict=True):
        assert tile.start_s - 1e-6 <= seconds < tile.end_s, (tile, seconds)


def test_tiles_made_for_another_plan_are_not_used(numbered: Path, tmp_path: Path) -> None:
    probe = probe_video(numbered)
    tap = scene_pass_tap(probe, 160, 0.1)
    detection = detect_scenes(numbered, probe, tap=tap)
    tiles = tap.shared(detection.frame_count).tiles
    board = make_storyboard(numbered, probe, tmp_path, 96, tiles=tiles)
    assert not board.takes(tiles) and board.tile_width == 96
    assert cv2.imread(str(tmp_path / SPRITE_NAME)).shape[1] == 960
