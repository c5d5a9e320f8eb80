"""Probe metadata through ffmpeg-python's ffprobe call, normalised."""

import os
import stat
from pathlib import Path

import pytest

from heimdex_pipeline.media import probe as probe_module
from heimdex_pipeline.media.errors import TransientMediaError, UnreadableMediaError
from heimdex_pipeline.media.probe import probe_video


def test_generated_clip(clips) -> None:
    path, _ = clips((2.0, 2.0))
    probe = probe_video(path)
    assert (probe["width"], probe["height"], probe["codec"], probe["rotation"]) == (320, 240, "h264", 0)
    assert probe["duration_s"] == pytest.approx(4.0, abs=0.05)
    assert probe["fps"] == 25.0 and not probe["variable_frame_rate"]
    assert [s["codec_type"] for s in probe["streams"]] == ["video"]


def test_rotation_non_square_pixels_vfr_and_delay(media_dir: Path) -> None:
    rotated = probe_video(media_dir / "issue-134-rotate.mp4")
    assert rotated["rotation"] == 90 and (rotated["display_width"], rotated["display_height"]) == (544, 1280)
    anamorphic = probe_video(media_dir / "issue-195-aspect-ratio.mp4")
    assert anamorphic["sample_aspect_ratio"] == "16:11" and anamorphic["display_width"] == 1024
    vfr = probe_video(media_dir / "goldeneye-vfr-drop3.mp4")
    assert vfr["variable_frame_rate"] and vfr["nominal_fps"] == "24000/1001"
    assert probe_video(media_dir / "delayed_start.mp4")["video_start_s"] == pytest.approx(1.075)
    assert probe_video(media_dir / "issue-236-split-copy.mkv")["container"].startswith("matroska")


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 50, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100])
def test_non_video_is_unreadable(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "movie.mp4"
    bad.write_bytes(content)
    with pytest.raises(UnreadableMediaError, match="ffprobe cannot read movie.mp4"):
        probe_video(bad)


def test_truncated_mp4_is_unreadable(clips, tmp_path: Path) -> None:
    path, _ = clips((2.0, 2.0))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(UnreadableMediaError):
        probe_video(truncated)


def test_missing_file_is_transient(tmp_path: Path) -> None:
    with pytest.raises(TransientMediaError, match="missing"):
        probe_video(tmp_path / "not-there.mp4")


def test_killed_ffprobe_is_transient(clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = clips((2.0,))
    # The real ffprobe, killed by a signal before it answers.
    killer = tmp_path / "ffprobe-killed"
    killer.write_text("#!/bin/sh\nkill -9 $$\n")
    killer.chmod(killer.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(probe_module, "FFPROBE", os.fspath(killer))
    with pytest.raises(TransientMediaError):
        probe_video(path)
