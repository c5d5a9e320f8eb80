"""What scene detection is asked and what it answers: its parameters, scenes and result.

Kept apart from `scenes` so that the Dagster definitions (which show the detector in the assets'
code version) load without PyAV, OpenCV or PySceneDetect.
"""

from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from typing import Any

# PySceneDetect's SceneManager downscales to at least this width before detecting.
DETECTION_WIDTH = 256


@dataclass(frozen=True)
class DetectorParams:
    """ContentDetector's settings; its defaults are PySceneDetect's."""

    threshold: float = 27.0
    min_scene_len_frames: int = 15

    def describe(self) -> dict[str, Any]:
        """The detector block of the sidecar: name, version and parameters."""
        return {
            "name": "ContentDetector",
            "library": "PySceneDetect",
            "version": version("scenedetect"),
            "parameters": {**asdict(self), "detection_width": DETECTION_WIDTH},
        }


@dataclass(frozen=True)
class Scene:
    """One shot: `[start_s, end_s)` in seconds from the first frame; `end_frame` is exclusive."""

    index: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int


@dataclass
class SceneDetection:
    """The scenes of a video, how many frames it has, and how many were decoded to find them."""

    scenes: list[Scene]
    frame_count: int
    # Frames decoded and scored to find the scenes (those of a second look count twice).
    frames_decoded: int
    detector: dict[str, Any] = field(default_factory=dict)
