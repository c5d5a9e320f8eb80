"""Hostile files at the media layer: playlists that name another org's file, enormous frames,
long videos, tools that never finish, and messages that would name server paths."""

import dataclasses
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from heimdex_pipeline.media import probe as probe_module
from heimdex_pipeline.media import thumbnails as thumbnails_module
from heimdex_pipeline.media.detector import ContentParams, DetectorParams, HeimdexParams
from heimdex_pipeline.media.errors import (
    MediaLimitError,
    MediaTimeoutError,
    UnreadableMediaError,
    UnsupportedFormatError,
)
from heimdex_pipeline.media.limits import current_limits
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import detect_scenes
from heimdex_pipeline.media.thumbnails import ThumbnailPolicy, extract_thumbnails, plan_thumbnails
from heimdex_pipeline.media.tools import FFMPEG
from tests.media.hostile import KINDS, NOT_A_FORMAT, huge_mjpeg, playlists, understate_avi_size
from tests.media.synthetic import make_clip


@pytest.fixture(scope="module")
def other_org_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another org's video, at its path on the server."""
    path = tmp_path_factory.mktemp("org-a") / "uploads" / "org-a" / "up_secret" / "secret.mp4"
    path.parent.mkdir(parents=True)
    make_clip(path, (1.0, 1.0), size="160x120")
    return path


@pytest.fixture(scope="module")
def crafted(other_org_video: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return playlists(other_org_video, tmp_path_factory.mktemp("org-b") / "uploads" / "org-b" / "up_attack")


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report's file: one 16000x16000 MJPEG frame, 1.5 MB on disk, 384 MB decoded."""
    return huge_mjpeg(tmp_path_factory.mktemp("huge") / "huge.avi", 16000)


def assert_no_server_path(message: str) -> None:
    """The message names no file by a path under the server's folders (pytest's are in the temp dir)."""
    assert tempfile.gettempdir() not in message and "file:/" not in message, message


def _assert_refused(error: pytest.ExceptionInfo, kind: str, path: Path) -> None:
    expected = UnreadableMediaError if kind in NOT_A_FORMAT else UnsupportedFormatError
    assert isinstance(error.value, expected), error.value
    assert path.name in str(error.value)
    assert_no_server_path(str(error.value))


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_probe_refuses_playlists_and_manifests(crafted: dict[str, Path], kind: str) -> None:
    with pytest.raises(UnreadableMediaError) as error:
        probe_video(crafted[kind])
    _assert_refused(error, kind, crafted[kind])


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_scene_decoder_refuses_playlists_and_manifests(crafted: dict[str, Path], other_org_video: Path,
                                                           kind: str) -> None:
    # The probe of a real video, then a playlist in its place: the decoder must not follow it.
    with pytest.raises(UnreadableMediaError) as error:
        detect_scenes(crafted[kind], probe_video(other_org_video))
    assert_no_server_path(str(error.value))


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_thumbnail_extractor_refuses_playlists_and_manifests(crafted: dict[str, Path], other_org_video: Path,
                                                                 tmp_path: Path, kind: str) -> None:
    probe = probe_video(other_org_video)
    slots = plan_thumbnails([], probe["duration_s"], ThumbnailPolicy(interval_s=0.5, max_count=4))
    with pytest.raises(UnreadableMediaError) as error:
        extract_thumbnails(crafted[kind], probe, slots, tmp_path / "out", 120)
    _assert_refused(error, kind, crafted[kind])
    assert not list((tmp_path / "out").glob("*.jpg"))


CONTAINERS = {  # file name: encoder arguments, one clip per demuxer of the whitelist
    "clip.mov": ["-c:v", "libx264"],
    "clip.3gp": ["-c:v", "mpeg4"],
    "clip.mkv": ["-c:v", "libx264"],
    "clip.webm": ["-c:v", "libvpx"],
    "clip.avi": ["-c:v", "mjpeg"],
    "clip.ts": ["-c:v", "libx264"],
    "clip.m2ts": ["-c:v", "libx264"],
    "clip.mpg": ["-c:v", "mpeg2video"],
    "clip.flv": ["-c:v", "flv"],
    "clip.wmv": ["-c:v", "wmv2"],
    "clip.ogv": ["-c:v", "libtheora"],
    "clip.mxf": ["-c:v", "mpeg2video"],
    "clip.dv": ["-c:v", "dvvideo", "-s", "720x576", "-r", "25", "-pix_fmt", "yuv420p"],
}


@pytest.mark.parametrize("name", list(CONTAINERS))
def test_every_container_of_the_whitelist_still_probes_and_decodes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=25:duration=1", *CONTAINERS[name], str(path)], check=True)
    probe = probe_video(path)
    assert probe["duration_s"] == pytest.approx(1.0, abs=0.1)
    assert detect_scenes(path, probe).frame_count >= 20


def test_the_real_media_all_probe(media_dir: Path) -> None:
    videos = sorted(p for p in media_dir.iterdir() if p.suffix in {".mp4", ".mkv"})
    assert len(videos) == 8
    for path in videos:
        assert probe_video(path)["duration_s"] > 0, path


def test_huge_frames_are_refused_from_the_probe(huge: Path, tmp_path: Path) -> None:
    with pytest.raises(MediaLimitError, match="huge.avi has 16000x16000 frames, more than the limit"):
        probe_video(huge)
    # The decoders refuse such a probe too, before opening the file.
    probe = {"streams": [{"codec_type": "video", "width": 16000, "height": 16000}], "duration_s": 1.0,
             "width": 16000, "height": 16000}
    with pytest.raises(MediaLimitError):
        detect_scenes(huge, probe)
    with pytest.raises(MediaLimitError):
        extract_thumbnails(huge, probe, [], tmp_path, 120)


def _peak_rss_mb(code: str) -> tuple[float, str]:
    """Run `code` in a fresh interpreter; its peak resident memory in MB, and what it printed.

    The peak is VmHWM, the high-water mark of the interpreter's own memory: `ru_maxrss` would also
    hold the pytest process's pages from before the exec (Linux keeps it across execve).
    """
    script = (f"{code}\nimport re\nwith open('/proc/self/status') as status:\n"
              "    print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status.read()).group(1)) / 1024)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    *printed, peak = done.stdout.strip().splitlines()
    return float(peak), "\n".join(printed)


def test_decoders_refuse_frames_a_lying_header_understates(huge: Path, other_org_video: Path, tmp_path: Path) -> None:
    liar = understate_avi_size(huge, tmp_path / "liar.avi", 160, 120)
    # ffprobe's own decoder refuses the frame it looks at to find the streams.
    with pytest.raises(MediaLimitError, match="liar.avi has 16000x16000 frames"):
        probe_video(liar)
    # The decoders, handed a probe that believes the header, refuse the frame themselves.
    probe = {**probe_video(other_org_video), "video_stream_index": 0, "duration_s": 1.0}
    with pytest.raises(MediaLimitError, match="liar.avi: a frame is invalid or above the limit"):
        detect_scenes(liar, probe)
    slots = plan_thumbnails([], probe["duration_s"], ThumbnailPolicy(interval_s=1))
    with pytest.raises(MediaLimitError, match="liar.avi has 16000x16000 frames"):
        extract_thumbnails(liar, probe, slots, tmp_path / "out", 120)
    # Refused before the frame is allocated: far below the 384 MB one frame would take.
    peak, printed = _peak_rss_mb(
        "from pathlib import Path\n"
        "from heimdex_pipeline.media.scenes import detect_scenes\n"
        f"probe = {probe!r}\n"
        "try:\n"
        f"    detect_scenes(Path({str(liar)!r}), probe)\n"
        "except Exception as error:\n"
        "    print(type(error).__name__)")
    assert printed == "MediaLimitError" and peak < 300, (printed, peak)


def test_the_duration_limit(clips) -> None:
    path, _ = clips((2.0, 2.0))
    limits = dataclasses.replace(current_limits(), max_duration_s=3.0)
    with pytest.raises(MediaLimitError, match=r"lasts 4 s, more than the limit of 3 s"):
        probe_video(path, limits)
    with pytest.raises(MediaLimitError):
        detect_scenes(path, probe_video(path), limits=limits)


def _hanging_tool(tmp_path: Path, name: str) -> tuple[str, Path]:
    """A stand-in for a tool stuck on a hostile file: it records its pid and sleeps."""
    pid_file = tmp_path / f"{name}.pid"
    script = tmp_path / name
    script.write_text(f'#!/bin/sh\necho $$ > "{pid_file}"\nexec sleep 300\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return os.fspath(script), pid_file


def _assert_gone(pid_file: Path) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_hanging_ffprobe_is_killed_at_its_deadline(clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = clips((2.0,))
    tool, pid_file = _hanging_tool(tmp_path, "ffprobe")
    monkeypatch.setattr(probe_module, "FFPROBE", tool)
    started = time.monotonic()
    with pytest.raises(MediaTimeoutError, match=f"ffprobe on {path.name} took longer than its limit of 1 s"):
        probe_video(path, dataclasses.replace(current_limits(), timeout_s=1.0))
    assert time.monotonic() - started < 30
    _assert_gone(pid_file)


def test_a_hanging_ffmpeg_is_killed_at_its_deadline(clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = clips((2.0,))
    probe = probe_video(path)
    tool, pid_file = _hanging_tool(tmp_path, "ffmpeg")
    monkeypatch.setattr(thumbnails_module, "FFMPEG", tool)
    limits = dataclasses.replace(current_limits(), timeout_s=1.0, timeout_ratio=0.0)
    slots = plan_thumbnails([], probe["duration_s"], ThumbnailPolicy(interval_s=1, max_count=1))
    with pytest.raises(MediaTimeoutError):
        extract_thumbnails(path, probe, slots, tmp_path / "out", 120, limits)
    _assert_gone(pid_file)


@pytest.mark.parametrize(("params", "every_frame"), [(ContentParams(), True), (ContentParams(), False),
                                                    (HeimdexParams(), False)], ids=["one pass", "two looks", "heimdex"])
def test_decoding_stops_at_its_deadline(media_dir: Path, params: DetectorParams, every_frame: bool) -> None:
    # The deadline passes during the decoding whatever the machine's speed: the first progress report (at the
    # first frame) waits past it. A decoder that checked it only before it began would go on to the end.
    path = media_dir / "testvideo.mp4"
    probe = probe_video(path)
    limits = dataclasses.replace(current_limits(), timeout_s=0.1, timeout_ratio=0.0)
    reports: list[tuple[int, int]] = []

    def report(done: int, total: int) -> None:
        if not reports:
            time.sleep(0.2)
        reports.append((done, total))

    with pytest.raises(MediaTimeoutError, match="decoding testvideo.mp4 took longer than its limit"):
        detect_scenes(path, probe, params, limits=limits, every_frame=every_frame, progress=report)
    assert reports and all(done < total for done, total in reports), "the decoding went on to the end"


def test_the_decoding_deadline_grows_with_duration_and_frame_size() -> None:
    limits = dataclasses.replace(current_limits(), timeout_s=120.0, timeout_ratio=2.0)
    hd = {"duration_s": 7200.0, "width": 1920, "height": 1080}
    assert limits.decoding_deadline(hd).seconds == 120 + 7200 * 2
    assert limits.decoding_deadline({**hd, "width": 3840, "height": 2160}).seconds == 120 + 7200 * 2 * 4
    assert limits.decoding_deadline({**hd, "width": 320, "height": 240, "duration_s": 1.0}).seconds == 122


def test_messages_name_files_not_server_paths(tmp_path: Path) -> None:
    text = tmp_path / "deep" / "folder" / "notes.mp4"
    text.parent.mkdir(parents=True)
    text.write_text("not a video\n" * 40)
    for call in (lambda: probe_video(text), lambda: probe_video(tmp_path / "gone.mp4")):
        with pytest.raises(Exception) as error:
            call()
        assert_no_server_path(str(error.value))

