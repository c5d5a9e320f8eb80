"""Videos whose timestamps are not a plain 0, 1/fps, 2/fps, ...: phones, screen recorders, cut copies
and broadcast streams. Each goes through the real ingest (probe, scenes, thumbnails, storyboard and
every check on a real Dagster instance) and must succeed with the scenes ending where the last frame
ends, which is the probe's duration, and each thumbnail one of its scene's own frames.

Most clips carry a band along their top whose grey level counts the frames (7 levels a frame), so
that a thumbnail tells which frame it shows; B-frames everywhere, and no keyframe at the cuts, so
that thumbnails are taken between keyframes.
"""

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, materialize
from dagster._core.event_api import PartitionKeyFilter

from heimdex_pipeline.assets import VIDEO_CHECKS, media_qc, probe_metadata, scene_sidecar, storyboard, thumbnails
from heimdex_pipeline.assets.checks import VIDEO_CHECK_KEYS
from heimdex_pipeline.media import storyboard as storyboard_module
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.storyboard import SPRITE_NAME, make_storyboard
from heimdex_pipeline.media.tools import FFMPEG

ASSETS = [probe_metadata, scene_sidecar, thumbnails, storyboard, media_qc]
# The frame count as a grey level in the top eighth of the picture (chroma neutral there).
BAND = ("geq=lum='if(lt(Y,H/8),mod(N*7,200)+20,lum(X,Y))'"
        ":cb='if(lt(Y,H/8),128,cb(X,Y))':cr='if(lt(Y,H/8),128,cr(X,Y))'")
SEGMENTS = ["-t", "2", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
            "-t", "1.5", "-f", "lavfi", "-i", "mandelbrot=size=320x240:rate=25",
            "-t", "1", "-f", "lavfi", "-i", "smptehdbars=size=320x240:rate=25"]
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-sc_threshold", "0", "-pix_fmt", "yuv420p"]


@pytest.fixture
def backend() -> str:
    """Timestamps are the files': SQLite only, to stay within the time budget."""
    return "sqlite"


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _banded(out: Path, *output_args: str) -> Path:
    """Three segments (2, 1.5 and 1 s at 25 fps: cuts at frames 50 and 88), banded, H.264 with B-frames."""
    _ffmpeg(*SEGMENTS, "-filter_complex", f"[0:v][1:v][2:v]concat=n=3:v=1,{BAND},format=yuv420p[v]",
            "-map", "[v]", *X264, *output_args, str(out))
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Make each kind of video once for the module; by name."""
    folder = tmp_path_factory.mktemp("timing")
    made: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind in made:
            return made[kind]
        out = folder / kind
        if kind == "vfr.mp4":
            # The recipe: 2 s at 30 fps then 2 s at 7 fps; the MP4 muxer gives the last frame no duration.
            _ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:d=2", "-f", "lavfi",
                    "-i", "testsrc2=size=320x240:rate=7:d=2", "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]",
                    "-map", "[v]", "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out))
        elif kind == "vfr_banded.mp4":
            _ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:d=2", "-f", "lavfi",
                    "-i", "testsrc2=size=320x240:rate=7:d=2", "-filter_complex",
                    f"[0:v][1:v]concat=n=2:v=1,{BAND},format=yuv420p[v]", "-map", "[v]", "-fps_mode", "vfr",
                    *X264, str(out))
        elif kind == "edit_list.mp4":
            # A stream copy cut at 1.3 s: the packets from the keyframe at 0 are kept, and an edit list hides them.
            _ffmpeg("-ss", "1.3", "-i", str(_banded(folder / "whole.mp4")), "-c", "copy", str(out))
        elif kind == "late_start.mp4":
            # The video stream starts 0.5 s into the file (an empty edit).
            _ffmpeg("-itsoffset", "0.5", "-i", str(_banded(folder / "whole.mp4")), "-c", "copy", str(out))
        elif kind == "broadcast.ts":
            # MPEG-TS: no index, timestamps from 1.48 s (the muxer's delay), one keyframe.
            _banded(out, "-f", "mpegts")
        elif kind == "negative_ts.mp4":
            # Timestamps moved half a second below zero: the MP4 keeps them in an edit list that hides them.
            _banded(out, "-output_ts_offset", "-0.5", "-avoid_negative_ts", "disabled")
        elif kind == "last_frame_cut.mp4":
            # 2 s, then a single frame of something else: the last scene is one frame long.
            _ffmpeg("-t", "2", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi",
                    "-i", "smptehdbars=size=320x240:rate=25,trim=end_frame=1", "-filter_complex",
                    f"[0:v][1:v]concat=n=2:v=1,{BAND},format=yuv420p[v]", "-map", "[v]", *X264, str(out))
        elif kind == "clip41.mp4":
            # The clip: its last scene is frame 299 of 300.
            _ffmpeg("-f", "lavfi", "-t", "5", "-i", "testsrc2=s=1280x720:r=30", "-f", "lavfi", "-t", "5",
                    "-i", "cellauto=s=1280x720:r=30:rule=71:random_seed=41", "-filter_complex",
                    "[0:v][1:v]concat=n=2:v=1:a=0,hue=h=697,format=yuv420p[o]", "-map", "[o]", "-c:v", "libx264",
                    "-preset", "veryfast", "-g", "60", str(out))
        made[kind] = out
        return out

    return make


def _decoded(path: Path) -> list[tuple[float, np.ndarray]]:
    """Every frame PyAV shows, in display order: its time from the first one, and its picture (BGR)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(frame.pts * stream.time_base, frame.to_ndarray(format="bgr24"))
                  for frame in container.decode(stream)]
    first = frames[0][0]
    return [(float(pts - first), image) for pts, image in frames]


def _band(image: np.ndarray) -> float:
    """The band's grey level: the middle of the top eighth, away from its edges."""
    height = image.shape[0]
    return float(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[height // 32:3 * height // 32].mean())


def _ingest(path: Path, upload, resources: dict, instance: DagsterInstance, derived_root: Path,
            detector: dict | None = None) -> dict:
    """Run the whole ingest with its checks (the scenes by `detector`, else the default); every check passes.
    The sidecar, the probe and the storyboard."""
    asset_id = upload(path)
    config = {"ops": {"scene_sidecar": {"config": {"detector": detector}}}} if detector else None
    result = materialize([*ASSETS, *VIDEO_CHECKS], partition_key=asset_id, instance=instance, resources=resources,
                         raise_on_error=False, run_config=config)
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        VIDEO_CHECK_KEYS, partition_filter=PartitionKeyFilter(key=asset_id))
    outcomes = {key.name: (record.event.asset_check_evaluation.passed, record.event.asset_check_evaluation.description)
                for key, record in records.items() if record.event and record.event.asset_check_evaluation}
    failures = [event.event_specific_data.error.message for event in result.all_events if event.is_step_failure]
    assert result.success, (failures, outcomes)
    assert len(outcomes) == len(VIDEO_CHECK_KEYS), outcomes
    # The clips have no audio, which the QC tells; a frame of another timing makes it see no black or freeze.
    assert outcomes.pop("audio_is_heard") == (False, "no audio stream")
    assert all(passed for passed, _ in outcomes.values()), outcomes
    org = derived_root / "org-demo"
    return {"sidecar": json.loads((org / "sidecars" / f"{asset_id}.vna.json").read_text()),
            "storyboard": json.loads((org / "storyboards" / asset_id / "storyboard.json").read_text()),
            "sprite": cv2.imread(str(org / "storyboards" / asset_id / "storyboard.jpg")), "org": org}


def _frames_agree(ingested: dict, frames: list[tuple[float, np.ndarray]], banded: bool) -> None:
    """The scenes hold every frame and end at the probe's duration; each thumbnail is a frame of its scene
    (for a banded clip, the very frame its time names); the storyboard's last tile shows the last span's frame."""
    sidecar = ingested["sidecar"]
    probe, scenes = sidecar["probe"], sidecar["scenes"]
    times = [time for time, _ in frames]
    assert scenes[-1]["end_frame"] == len(frames)
    assert scenes[-1]["end_s"] == probe["duration_s"]
    assert probe["duration_s"] == pytest.approx(times[-1] + probe["last_frame_duration_s"], abs=2e-6)
    for scene in scenes:
        assert scene["start_s"] == pytest.approx(times[scene["start_frame"]], abs=1e-6)
    assert len(sidecar["thumbnails"]) == len(scenes)
    for entry, scene in zip(sidecar["thumbnails"], scenes, strict=True):
        shown = min(range(len(times)), key=lambda i: abs(times[i] - entry["ts_ms"] / 1000))
        assert abs(times[shown] * 1000 - entry["ts_ms"]) <= 0.5, (entry, times[shown])
        assert scene["start_frame"] <= shown < scene["end_frame"], (entry, scene)
        if banded:
            thumb = cv2.imread(str(ingested["org"] / entry["storage_key"]))
            assert abs(_band(thumb) - _band(frames[shown][1])) < 3, (entry, _band(thumb), _band(frames[shown][1]))
    board = ingested["storyboard"]
    assert board["duration_s"] == pytest.approx(probe["duration_s"], abs=0.0005)
    if banded:
        last = board["tiles"][-1]
        middle = (last["start_s"] + last["end_s"]) / 2
        # The frame shown at the middle; one that starts right there is a tie with the one before (ffmpeg's
        # fps filter rounds it to the next span). In an ingest the tile is the scene pass's when it decoded a
        # frame within half a span of the middle: that one, which may be another than the frame shown.
        shown = {max(i for i, time in enumerate(times) if time <= middle + 1e-6),
                 max(i for i, time in enumerate(times) if time < middle - 1e-6),
                 *(i for i, time in enumerate(times) if abs(time - middle) <= (last["end_s"] - last["start_s"]) / 2 + 1e-6)}
        tile = ingested["sprite"][last["y"]:last["y"] + last["h"], last["x"]:last["x"] + last["w"]]
        assert min(abs(_band(tile) - _band(frames[i][1])) for i in shown) < 4, (_band(tile), shown)


def test_a_variable_frame_rate_video_ends_where_its_last_frame_does(videos, upload, resources, instance,
                                                                    derived_root: Path) -> None:
    """The issue's VFR clip: ffprobe announces 3.638 s for the stream (its decoding timestamps) and 3.858 s for
    the container; the frames end at 3.858 s (the last one, at 3.857143 s, given no duration, lasts to the
    container's end)."""
    path = videos("vfr.mp4")
    ingested = _ingest(path, upload, resources, instance, derived_root)
    assert ingested["sidecar"]["probe"]["duration_s"] == pytest.approx(3.858, abs=1e-6)
    _frames_agree(ingested, _decoded(path), banded=False)


@pytest.mark.parametrize("kind", ["vfr_banded.mp4", "edit_list.mp4", "late_start.mp4", "broadcast.ts",
                                  "negative_ts.mp4"])
def test_timestamps_of_real_world_files(videos, upload, resources, instance, derived_root: Path, kind: str) -> None:
    path = videos(kind)
    frames = _decoded(path)
    ingested = _ingest(path, upload, resources, instance, derived_root)
    _frames_agree(ingested, frames, banded=True)
    probe = ingested["sidecar"]["probe"]
    if kind != "vfr_banded.mp4":
        # 25 fps: the video lasts as many 40 ms as it shows frames.
        assert probe["duration_s"] == pytest.approx(len(frames) * 0.04, abs=1e-6)
    if kind == "late_start.mp4":
        assert probe["video_start_s"] == pytest.approx(0.5)
    if kind == "broadcast.ts":
        assert probe["video_start_s"] > 1


@pytest.mark.parametrize("kind", ["last_frame_cut.mp4", "clip41.mp4"])
def test_a_last_scene_of_one_frame_gets_that_frame(videos, upload, resources, instance, derived_root: Path,
                                                   kind: str) -> None:
    """The last scene is one frame: its thumbnail's slot, the scene's middle, has no frame starting there,
    and ffmpeg wrote nothing ("no thumbnail written", a failure without retry); now it gets the frame."""
    path = videos(kind)
    frames = _decoded(path)
    # Issue 41's clip ends in a one-frame scene as ContentDetector cuts it (Heimdex's detector puts none there).
    ingested = _ingest(path, upload, resources, instance, derived_root,
                       detector={"kind": "content"} if kind == "clip41.mp4" else None)
    last = ingested["sidecar"]["scenes"][-1]
    if kind == "last_frame_cut.mp4":
        assert (last["start_frame"], last["end_frame"]) == (50, 51)
    _frames_agree(ingested, frames, banded=kind == "last_frame_cut.mp4")
    assert ingested["sidecar"]["thumbnails"][-1]["ts_ms"] == round(frames[last["start_frame"]][0] * 1000)


@pytest.mark.parametrize("kind", ["vfr_banded.mp4", "broadcast.ts", "last_frame_cut.mp4"])
def test_storyboard_tiles_by_seeking_show_the_frame_at_their_middle(videos, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """A long video's storyboard is made by seeking, a tile per span (forced here on a short one): each tile,
    the last ones included, is the frame shown at its span's middle. The only keyframe (at 0) is taken for
    the first span, as a keyframe inside a span is. Exact seeks gave the first frame after the middle
    instead (at 7 fps, a frame up to 143 ms later), and nothing at all in MPEG-TS."""
    path = videos(kind)
    frames = _decoded(path)
    times = [time for time, _ in frames]
    monkeypatch.setattr(storyboard_module, "DECODE_THROUGH_MAX_PIXELS", 0)
    board = make_storyboard(path, probe_video(path), tmp_path, 160)
    sprite = cv2.imread(str(tmp_path / SPRITE_NAME))
    for tile in board.tiles:
        middle = (tile.start_s + tile.end_s) / 2
        expected = 0 if tile.start_s == 0 else max(i for i, time in enumerate(times) if time <= middle + 1e-6)
        cell = sprite[tile.y:tile.y + tile.h, tile.x:tile.x + tile.w]
        assert abs(_band(cell) - _band(frames[expected][1])) < 4, (tile, _band(cell), _band(frames[expected][1]))
