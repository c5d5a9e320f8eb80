"""Each PySceneDetect detector in Heimdex against `scenedetect detect-<name> list-scenes` on the same file.

Boundaries must agree within one frame. The command line runs at the minimum scene length Heimdex
uses (15 frames, where the CLI's own default is 0.6 s); ThresholdDetector's `--min-out-length 0`
is Heimdex's default (the CLI's is 0.1 s).
"""

import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from heimdex_pipeline.core.settings import PipelineSettings
from heimdex_pipeline.media.detector import (
    AdaptiveParams,
    ContentParams,
    DetectorParams,
    HashParams,
    HeimdexParams,
    HistogramParams,
    ThresholdParams,
    Weights,
)
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import detect_scenes
from heimdex_pipeline.media.tools import FFMPEG
from tests.media.scenedetect_cli import cut_times, list_scenes

# Cuts, a fade and a dissolve at 720p (the first 8 s of testvideo.mp4), a variable frame rate, fades alone.
FILES = ["testvideo-8s.mp4", "goldeneye-vfr-drop3.mp4", "fades.mp4"]
DEFAULTS = [
    (ContentParams(), ["detect-content"]),
    (AdaptiveParams(), ["detect-adaptive"]),
    (HashParams(), ["detect-hash"]),
    (HistogramParams(), ["detect-hist"]),
    (ThresholdParams(), ["detect-threshold", "--min-out-length", "0"]),
]
# Every parameter that changes the cuts, away from its default, on a file where it finds some.
OTHERS = [
    ("testvideo-8s.mp4", ContentParams(threshold=20, weights=Weights(delta_hue=0, delta_sat=0)),
     ["detect-content", "--threshold", "20", "--luma-only"]),
    ("testvideo-8s.mp4", ContentParams(weights=Weights(delta_edges=1)),
     ["detect-content", "--weights", "1", "1", "1", "1"]),
    ("goldeneye-vfr-drop3.mp4", AdaptiveParams(adaptive_threshold=2.0, window_width=3, min_content_val=10),
     ["detect-adaptive", "--threshold", "2", "--frame-window", "3", "--min-content-val", "10"]),
    ("goldeneye-vfr-drop3.mp4", HashParams(threshold=0.25, size=16, lowpass=3),
     ["detect-hash", "--threshold", "0.25", "--size", "16", "--lowpass", "3"]),
    ("goldeneye-vfr-drop3.mp4", HistogramParams(threshold=0.1, bins=64),
     ["detect-hist", "--threshold", "0.1", "--bins", "64"]),
    ("fades.mp4", ThresholdParams(threshold=30, min_out_length_frames=5),
     ["detect-threshold", "--threshold", "30", "--min-out-length", "5"]),
]


@pytest.fixture(scope="module")
def media(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared media, and the first 8 s of testvideo.mp4 beside them (its packets copied, not re-encoded)."""
    folder = tmp_path_factory.mktemp("media")
    for name in FILES[1:]:
        (folder / name).symlink_to(media_dir / name)
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-i", str(media_dir / "testvideo.mp4"), "-t", "8",
                    "-c", "copy", "-an", str(folder / FILES[0])], check=True)
    return folder


def _assert_within_a_frame(path: Path, params: DetectorParams, detect: list[str], min_scene_len: int = 15) -> None:
    probe = probe_video(path)
    frame = 1 / Fraction(probe["nominal_fps"])
    theirs = cut_times(list_scenes(path, *detect, min_scene_len=min_scene_len))
    ours = [scene.start_s for scene in detect_scenes(path, probe, params).scenes[1:]]
    assert len(ours) == len(theirs) and all(abs(a - b) <= frame + 1e-6 for a, b in zip(ours, theirs, strict=True)), \
        f"scenedetect {' '.join(detect)}: {theirs}; Heimdex: {ours}"


@pytest.mark.parametrize(("params", "detect"), DEFAULTS, ids=[params.kind for params, _ in DEFAULTS])
@pytest.mark.parametrize("name", FILES)
def test_each_detector_cuts_where_the_scenedetect_command_does(media: Path, name: str, params: DetectorParams,
                                                               detect: list[str]) -> None:
    _assert_within_a_frame(media / name, params, detect)


@pytest.mark.parametrize(("name", "params", "detect"), OTHERS,
                         ids=[f"{params.kind}-{index}" for index, (_, params, _) in enumerate(OTHERS)])
def test_parameters_reach_the_detector_as_the_command_line_gives_them(media: Path, name: str, params: DetectorParams,
                                                                      detect: list[str]) -> None:
    _assert_within_a_frame(media / name, params, detect)


def test_the_minimum_scene_length_spaces_the_cuts(media: Path) -> None:
    _assert_within_a_frame(media / FILES[0], HistogramParams(min_scene_len_frames=60), ["detect-hist"],
                           min_scene_len=60)


@pytest.mark.parametrize("body", [
    {"kind": "content", "threshold": 0},
    {"kind": "content", "threshold": 1e9},
    {"kind": "content", "kernel_size": 4},
    {"kind": "content", "weights": {"delta_hue": 0, "delta_sat": 0, "delta_lum": 0}},
    {"kind": "adaptive", "window_width": 10_000},
    {"kind": "hash", "size": 100_000},
    {"kind": "hash", "threshold": "0.3"},
    {"kind": "histogram", "bins": 0},
    {"kind": "threshold", "fade_bias": 2},
    {"kind": "threshold", "threshold": 12.5},
    {"kind": "threshold", "min_scene_len_frames": -1},
    {"kind": "content", "min_scene_len_frames": 10**9},
    {"kind": "content", "nonsense": 1},
    {"kind": "transnet"},
    {"threshold": 27},
    {"kind": "heimdex", "cut_ratio": 1},
    {"kind": "heimdex", "window_frames": 0},
    {"kind": "heimdex", "flash_frames": 10**6},
    {"kind": "heimdex", "blend_residual": "0.2"},
])
def test_out_of_bounds_or_unknown_parameters_are_refused(body: dict) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(DetectorParams).validate_python(body)


def test_the_description_names_the_detector_and_every_parameter() -> None:
    params = HashParams(threshold=0.3)
    described = params.describe()
    assert described["name"] == "HashDetector" and described["library"] == "PySceneDetect"
    assert described["parameters"] == {"kind": "hash", "threshold": 0.3, "min_scene_len_frames": 15, "size": 8,
                                       "lowpass": 2, "detection_width": 256}
    assert params.code_version().startswith("HashDetector-") and "threshold=0.3" in params.code_version()
    assert ContentParams().code_version() != ContentParams(threshold=26).code_version()
    assert "weights.delta_edges=0.0" in ContentParams().code_version()


def test_the_deployment_chooses_its_detector_in_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMDEX_SCENE_DETECTOR", '{"kind": "adaptive", "adaptive_threshold": 2.5}')
    assert PipelineSettings().scene_detector == AdaptiveParams(adaptive_threshold=2.5)
    monkeypatch.setenv("HEIMDEX_SCENE_DETECTOR", '{"kind": "adaptive", "adaptive_threshold": -1}')
    with pytest.raises(ValidationError, match="adaptive_threshold"):
        PipelineSettings()
    monkeypatch.setenv("HEIMDEX_SCENE_DETECTOR", '{"kind": "heimdex", "min_change": 8}')
    assert PipelineSettings().scene_detector == HeimdexParams(min_change=8)
    monkeypatch.delenv("HEIMDEX_SCENE_DETECTOR")
    assert PipelineSettings().scene_detector == HeimdexParams()


def test_the_settings_the_detector_replaced_are_refused_not_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HEIMDEX_SCENE_THRESHOLD", "HEIMDEX_SCENE_MIN_SCENE_LEN_FRAMES"):
        monkeypatch.setenv(name, "30")
        with pytest.raises(ValidationError, match="replaced by HEIMDEX_SCENE_DETECTOR"):
            PipelineSettings()
        monkeypatch.delenv(name)
    assert "scene_threshold" not in PipelineSettings().model_dump()
