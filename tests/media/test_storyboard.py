"""Storyboards: the plan's spans and geometry, the sprite by either path, and the track a WebVTT parser reads."""

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import webvtt

from heimdex_pipeline.media import storyboard as storyboard_module
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.storyboard import (
    SPRITE_NAME,
    VTT_NAME,
    Cue,
    decodes_through,
    make_storyboard,
    parse_vtt,
    plan_storyboard,
    render_vtt,
    vtt_time,
)
from heimdex_pipeline.media.tools import FFMPEG
from heimdex_pipeline.outputs.validation import storyboard_problems


def _probe(duration_s: float, width: int = 1280, height: int = 720) -> dict:
    return {"duration_s": duration_s, "width": width, "height": height, "display_width": width,
            "display_height": height, "fps": 30.0}


def _cues(path: Path) -> list[tuple[int, int, str]]:
    """The track as a real WebVTT parser reads it: (start ms, end ms, text) per cue."""
    return [(c.start_time.in_milliseconds(), c.end_time.in_milliseconds(), c.text)
            for c in webvtt.read(str(path)).captions]


def _assert_sound(out: Path, duration_s: float, tiles: int) -> None:
    """The track covers [0, duration] with contiguous cues, each a rectangle inside the decoded sprite."""
    sprite = cv2.imread(str(out / SPRITE_NAME))
    cues = _cues(out / VTT_NAME)
    assert len(cues) == tiles
    assert cues[0][0] == 0 and cues[-1][1] == round(duration_s * 1000)
    assert all(before[1] == after[0] for before, after in zip(cues, cues[1:], strict=False))
    assert all(start < end for start, end, _ in cues)
    for _, _, text in cues:
        name, _, rectangle = text.partition("#xywh=")
        x, y, w, h = map(int, rectangle.split(","))
        assert name == SPRITE_NAME and x >= 0 and y >= 0 and x + w <= sprite.shape[1] and y + h <= sprite.shape[0]


@pytest.mark.parametrize(("duration_s", "tiles", "rows"), [(5.0, 50, 5), (899.9, 50, 5), (900.0, 100, 10),
                                                           (7200.0, 100, 10)])
def test_fifty_tiles_below_fifteen_minutes_and_a_hundred_from_there(duration_s: float, tiles: int, rows: int) -> None:
    board = plan_storyboard(_probe(duration_s), 160)
    assert len(board.tiles) == tiles and (board.columns, board.rows) == (10, rows)
    assert (board.tile_width, board.tile_height) == (160, 90)
    assert (board.sprite_width, board.sprite_height) == (1600, 90 * rows)
    assert board.tiles[0].start_s == 0 and board.tiles[-1].end_s == board.duration_s == duration_s
    assert all(a.end_s == b.start_s for a, b in zip(board.tiles, board.tiles[1:], strict=False))


@pytest.mark.parametrize(("size", "tile"), [((100, 16000), (4, 640)), ((16000, 100), (320, 2)),
                                            ((1080, 1920), (160, 284))])
def test_extreme_shapes_keep_the_sprite_within_jpeg(size: tuple[int, int], tile: tuple[int, int]) -> None:
    board = plan_storyboard(_probe(1200.0, *size), 160)
    assert (board.tile_width, board.tile_height) == tile
    assert max(board.sprite_width, board.sprite_height) <= 6400


def test_spans_are_equal_to_the_millisecond_and_the_geometry_is_a_grid() -> None:
    board = plan_storyboard(_probe(10.007, 640, 480), 200)
    lengths = {round((tile.end_s - tile.start_s) * 1000) for tile in board.tiles}
    assert lengths <= {200, 201} and (board.tile_width, board.tile_height) == (200, 150)
    document = board.model_dump(mode="json")
    assert document["tiles"][13] == {"index": 13, "start_s": 2.602, "end_s": 2.802, "x": 600, "y": 150,
                                     "w": 200, "h": 150}
    assert (document["sprite_width"], document["sprite_height"], document["rows"]) == (2000, 750, 5)


def test_the_track_reads_back_as_written() -> None:
    board = plan_storyboard(_probe(3725.5), 160)
    track = render_vtt(board)
    assert track.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:37.255\nstoryboard.jpg#xywh=0,0,160,90\n")
    assert vtt_time(3725.5) == "01:02:05.500"
    cues = parse_vtt(track)
    assert [(c.start_s, c.end_s) for c in cues] == [(t.start_s, t.end_s) for t in board.tiles]
    assert parse_vtt("WEBVTT\n\nNOTE made by hand\n\n00:00:01.500 --> 00:00:02.000\na") == [
        Cue(1.5, 2.0, "a")]
    with pytest.raises(ValueError, match="Invalid format"):
        parse_vtt("00:00:00.000 --> 00:00:01.000\nno header")
    # What is no cue reads as none, as a player skips it; the check then finds the video uncovered.
    assert parse_vtt("WEBVTT\n\njust text\n\nNOTE no cue either") == []


def test_a_short_clip_is_one_cheap_ffmpeg_pass(clips, tmp_path: Path) -> None:
    path, cuts = clips((2.0, 1.5, 3.0))
    probe = probe_video(path)
    assert decodes_through(probe)
    seen: list[tuple[int, int]] = []
    board = make_storyboard(path, probe, tmp_path, 160, progress=lambda done, total: seen.append((done, total)))
    _assert_sound(tmp_path, probe["duration_s"], 50)
    assert cv2.imread(str(tmp_path / SPRITE_NAME)).shape[:2] == (600, 1600)
    assert seen[-1] == (50, 50)
    sprite = tmp_path / SPRITE_NAME
    assert storyboard_problems(board.model_dump(), (tmp_path / VTT_NAME).read_text(), sprite.read_bytes(),
                               probe["duration_s"], probe["fps"]) == []


def test_seeking_gives_the_frames_of_the_one_pass(clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both paths take each span's middle frame: their tiles look alike, away from the cuts."""
    path, cuts = clips((2.0, 1.5, 3.0))
    probe = probe_video(path)
    through = make_storyboard(path, probe, tmp_path / "through", 64)
    monkeypatch.setattr(storyboard_module, "DECODE_THROUGH_MAX_PIXELS", 0)
    seeking = make_storyboard(path, probe, tmp_path / "seeking", 64)
    assert through == seeking
    _assert_sound(tmp_path / "seeking", probe["duration_s"], 50)
    one, other = (cv2.imread(str(tmp_path / name / SPRITE_NAME)).astype(np.int16) for name in ("through", "seeking"))
    for tile in through.tiles:
        if any(tile.start_s <= cut <= tile.end_s for cut in cuts):
            continue
        cell = np.s_[tile.y:tile.y + tile.h, tile.x:tile.x + tile.w]
        assert np.abs(one[cell] - other[cell]).mean() < 12, tile


@pytest.mark.parametrize(("name", "size"), [("issue-134-rotate.mp4", (160, 376)),
                                            ("issue-195-aspect-ratio.mp4", (160, 90)),
                                            ("delayed_start.mp4", (160, 106))])
def test_real_media_keep_their_display_shape(media_dir: Path, tmp_path: Path, name: str, size: tuple) -> None:
    probe = probe_video(media_dir / name)
    board = make_storyboard(media_dir / name, probe, tmp_path, 160)
    assert (board.tile_width, board.tile_height) == size
    _assert_sound(tmp_path, probe["duration_s"], 50)


def test_a_long_video_gets_a_hundred_tiles(tmp_path: Path) -> None:
    # Fifteen minutes at one tiny frame a second: seconds to encode and to decode through.
    path = tmp_path / "long.mp4"
    subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=1:duration=900", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    probe = probe_video(path)
    board = make_storyboard(path, probe, tmp_path / "out", 160)
    # Tiles are never larger than the video.
    assert len(board.tiles) == 100 and (board.sprite_width, board.sprite_height) == (640, 480)
    _assert_sound(tmp_path / "out", probe["duration_s"], 100)
