"""Technical QC against media with known answers: a sine's loudness, silences, black and frozen frames at
known places, interlaced against progressive pictures, and the audio layouts a file may carry."""

import subprocess
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest

from heimdex_pipeline.core.settings import get_settings
from heimdex_pipeline.media.detector import ContentParams, DetectorParams, HeimdexParams
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.qc import QcReport, measure_qc, thresholds_from
from heimdex_pipeline.media.scenes import detect_scenes
from heimdex_pipeline.media.shared_frames import scene_pass_tap
from heimdex_pipeline.media.tools import FFMPEG

RATE = 25
FRAME = 1 / RATE
# A 1 kHz sine of amplitude 0.1: -20 dBFS peak. BS.1770-4 reads a full-scale 1 kHz sine in one
# channel as -3.01 LUFS; channels add by power, L, R and C weighing 1, the surrounds 1.41, LFE 0.
LEVEL_DBFS = -20.0
SINE = "0.1*sin(2*PI*1000*t)"


def _bs1770_sine(weights: float) -> float:
    return LEVEL_DBFS - 3.01 + 10 * np.log10(weights)


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _clip(out: Path, seconds: float, audio: str | None = None, layout: str = "stereo", sample_rate: int = 48000,
          audio_seconds: float | None = None, video_filter: str = "null") -> Path:
    """A 160x120 clip of `seconds` (lossless H.264: a frozen frame decodes identical), with an audio stream
    of `audio` (an aevalsrc expression of t) in `layout` when given, as PCM."""
    inputs = ["-f", "lavfi", "-i", f"testsrc=size=160x120:rate={RATE}:duration={seconds}"]
    maps = ["-map", "[v]"]
    if audio is not None:
        # Commas in the expression escaped: in a lavfi input they would separate filters.
        channels = "|".join([audio.replace(",", r"\,")] * len(_LAYOUT_CHANNELS[layout]))
        inputs += ["-f", "lavfi", "-i", f"aevalsrc={channels}:s={sample_rate}:c={layout}:d={audio_seconds or seconds}"]
        maps += ["-map", "1:a", "-c:a", "pcm_s24le"]
    _ffmpeg(*inputs, "-filter_complex", f"[0:v]{video_filter},format=yuv420p[v]", *maps, "-c:v", "libx264",
            "-preset", "ultrafast", "-qp", "0", str(out))
    return out


_LAYOUT_CHANNELS = {"mono": ["FC"], "stereo": ["FL", "FR"], "5.1": ["FL", "FR", "FC", "LFE", "BL", "BR"]}


def _qc(path: Path, via: str = "ffmpeg", detector: DetectorParams | None = None) -> QcReport:
    """The QC of a clip: by its own ffmpeg pass, or ("scene_pass") from the frames the scene pass kept (the
    default detector's, or `detector`'s)."""
    probe = probe_video(path)
    if via == "ffmpeg":
        return measure_qc(path, probe)
    tap = scene_pass_tap(probe, 160, thresholds_from(get_settings()).black_pixel_threshold)
    detection = detect_scenes(path, probe, detector or HeimdexParams(), tap=tap)
    report = measure_qc(path, probe, pictures=tap.shared(detection.frame_count).pictures)
    assert report.pictures is not None and report.pictures.source == "scene_pass"
    assert report.measured_by["black"].library == "heimdex"
    return report


@pytest.fixture(scope="session")
def qc_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qc")


@pytest.fixture(scope="session")
def marked_clip(qc_clips: Path) -> Path:
    """6 s: black frames 25-49 and 135-149 (the end), frames 75-124 frozen on frame 74; audio silent in
    [1, 3.5) s and from 5.5 s."""
    freeze = "split[a][b];[a][b]freezeframes=first=75:last=124:replace=74"
    black = "drawbox=enable='between(n,25,49)+gte(n,135)':color=black:t=fill"
    silent = f"{SINE}*(1-between(t,1,3.5))*lt(t,5.5)"
    return _clip(qc_clips / "marked.mov", 6, silent, "mono", video_filter=f"{black},{freeze}")


@pytest.fixture(scope="session", params=["ffmpeg", "scene_pass"])
def marked(marked_clip: Path, request: pytest.FixtureRequest) -> QcReport:
    """The marked clip's QC, by QC's own pass and from the scene pass's frames: the same truths hold."""
    return _qc(marked_clip, request.param)


@pytest.mark.parametrize(("layout", "weights"), [("mono", 1.0), ("stereo", 2.0), ("5.1", 3 + 2 * 1.41)])
def test_a_sine_reads_as_bs1770_gives_it(qc_clips: Path, layout: str, weights: float) -> None:
    report = _qc(_clip(qc_clips / f"sine-{layout}.mov", 3, SINE, layout))
    assert report.audio is not None and report.audio.channels == len(_LAYOUT_CHANNELS[layout])
    assert report.loudness is not None
    assert report.loudness.integrated_lufs == pytest.approx(_bs1770_sine(weights), abs=0.3)
    assert report.loudness.true_peak_dbtp == pytest.approx(LEVEL_DBFS, abs=0.3)
    assert report.silence == []
    assert report.loudness.measured_by.filter == "ebur128" and report.loudness.measured_by.version


def test_a_96_khz_stream_is_measured_alike(qc_clips: Path) -> None:
    report = _qc(_clip(qc_clips / "sine-96k.mov", 3, SINE, "stereo", sample_rate=96000))
    assert report.audio is not None and report.audio.sample_rate == 96000
    assert report.loudness is not None
    assert report.loudness.integrated_lufs == pytest.approx(_bs1770_sine(2.0), abs=0.3)
    assert report.loudness.true_peak_dbtp == pytest.approx(LEVEL_DBFS, abs=0.3)


def test_silences_fall_where_they_were_put(marked: QcReport) -> None:
    # The one at the end (0.5 s) is shorter than the 2 s minimum.
    assert [(s.start_s, s.end_s) for s in marked.silence] == [pytest.approx((1.0, 3.5), abs=0.01)]
    assert marked.loudness is not None  # a silence is no silent stream


def test_black_and_frozen_pictures_fall_on_their_frames(marked: QcReport) -> None:
    assert [(s.start_frame, s.end_frame) for s in marked.black] == [(25, 50), (135, 150)]
    assert [(s.start_s, s.end_s) for s in marked.black] == [pytest.approx((1.0, 2.0), abs=FRAME),
                                                            pytest.approx((5.4, 6.0), abs=FRAME)]
    # Frames 74 to 124 show one picture: 51 frames; the black run (25 frames) is shorter than 2 s.
    assert len(marked.freeze) == 1
    frozen = marked.freeze[0]
    assert abs(frozen.start_frame - 74) <= 1 and abs(frozen.end_frame - 125) <= 1
    assert frozen.start_s == pytest.approx(74 * FRAME, abs=FRAME) and frozen.end_s == pytest.approx(5.0, abs=FRAME)
    assert marked.thresholds.black_min_s == 0.5 and marked.measured_by["freeze"].filter == "freezedetect"


def test_pictures_with_skipped_frames_keep_their_bounds_within_the_frames_skipped(tmp_path: Path) -> None:
    """With B-frames and little motion (a small box moving on bars), the scene pass decodes only the frames
    others are predicted from: each bound is still within the frames skipped around it (one here), and the
    report says how many frames were measured. The black and frozen frames are the marked clip's."""
    coded = tmp_path / "b-frames.mp4"
    picture = (f"smptebars=size=320x240:rate={RATE}:duration=6[bars];color=c=white:size=16x16:rate={RATE}[box];"
               r"[bars][box]overlay=x='mod(n*8\,300)':y=100:shortest=1,"
               "drawbox=enable='between(n,25,49)+gte(n,135)':color=black:t=fill,"
               "split[a][b];[a][b]freezeframes=first=75:last=124:replace=74,format=yuv420p[v]")
    _ffmpeg("-filter_complex", picture, "-map", "[v]", "-c:v", "libx264", "-preset", "medium", "-crf", "12", str(coded))
    assert [(s.start_frame, s.end_frame) for s in _qc(coded).black] == [(25, 50), (135, 150)]
    # ContentDetector's two looks skip frames; Heimdex's detector decodes them all.
    report = _qc(coded, "scene_pass", ContentParams())
    assert report.pictures is not None and report.pictures.frames == 150
    assert report.pictures.frames_measured is not None and report.pictures.frames_measured < 150
    assert len(report.black) == 2 and len(report.freeze) == 1
    for found, truth in zip([*report.black, *report.freeze], [(25, 50), (135, 150), (74, 125)], strict=True):
        assert abs(found.start_frame - truth[0]) <= 1 and abs(found.end_frame - truth[1]) <= 1, (found, truth)


@pytest.mark.parametrize("via", ["ffmpeg", "scene_pass"])
@pytest.mark.parametrize("scan", ["progressive", "tff", "bff"])
def test_interlaced_pictures_are_told_from_progressive_ones(qc_clips: Path, scan: str, via: str) -> None:
    """4 s: beside the scene pass, idet measures a window of it, not every frame."""
    out = qc_clips / f"scan-{scan}.mp4"
    source = f"testsrc=size=160x120:rate={RATE * (1 if scan == 'progressive' else 2)}:duration=4"
    if scan == "progressive":
        _ffmpeg("-f", "lavfi", "-i", source, "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", str(out))
    else:
        # Two pictures a frame, one in each field, encoded as interlaced video: what a camera records.
        _ffmpeg("-f", "lavfi", "-i", source, "-vf", f"interlace=scan={scan},format=yuv420p", "-c:v", "libx264",
                "-preset", "ultrafast", "-flags", "+ildct+ilme", "-x264opts", f"{scan}=1", str(out))
    report = _qc(out, via)
    assert report.interlacing.scan == scan, report.interlacing.frames
    assert report.interlacing.sampled_windows == (1 if via == "scene_pass" else None)
    assert report.audio is None


def test_no_audio_stream_says_why_there_is_no_loudness(qc_clips: Path) -> None:
    report = _qc(_clip(qc_clips / "mute.mp4", 2))
    assert report.audio is None and report.loudness is None
    assert report.loudness_unavailable == "no audio stream"
    assert report.silence == [] and report.black == []


def test_audio_shorter_than_the_picture_is_silence_to_the_end(qc_clips: Path) -> None:
    report = _qc(_clip(qc_clips / "short-audio.mov", 5, SINE, "stereo", audio_seconds=2))
    assert report.audio is not None and report.audio.duration_s == pytest.approx(2.0, abs=0.03)
    assert report.loudness is not None
    assert [(s.start_s, s.end_s, s.no_audio) for s in report.silence] == [(pytest.approx(2.0, abs=0.03), 5.0, True)]


def test_a_silent_stream_has_no_loudness_and_says_why(qc_clips: Path) -> None:
    report = _qc(_clip(qc_clips / "silent.mov", 3, "0", "stereo"))
    assert report.loudness is None and "silent" in (report.loudness_unavailable or "")
    assert [(s.start_s, s.end_s) for s in report.silence] == [(0.0, pytest.approx(3.0, abs=0.01))]


@pytest.mark.parametrize("name", ["issue-195-aspect-ratio.mp4", "issue-236-split-copy.mkv"])
def test_loudness_of_real_media_agrees_with_pyloudnorm(media_dir: Path, tmp_path: Path, name: str) -> None:
    """ffmpeg's ebur128 against pyloudnorm, a second implementation of BS.1770-4, on the same samples."""
    source = media_dir / name
    report = _qc(source)
    pcm = tmp_path / "audio.f32"
    _ffmpeg("-i", str(source), "-map", "0:a:0", "-ar", "48000", "-f", "f32le", str(pcm))
    channels = report.audio.channels if report.audio else 0
    samples = np.fromfile(pcm, dtype="<f4").reshape(-1, channels)
    reference = pyloudnorm.Meter(48000).integrated_loudness(samples)
    assert report.loudness is not None
    assert report.loudness.integrated_lufs == pytest.approx(reference, abs=0.3)
