"""What scene detection is asked and what it answers: the detector and its parameters, scenes and result.

One model per PySceneDetect detector, told apart by `kind`; its defaults are those of
PySceneDetect's classes, but for ThresholdDetector's `add_final_scene`, which its command line
always sets. The bounds keep a hostile job body from asking for work without end.

Kept apart from `scenes` so that the Dagster definitions and the API (which show and validate
the detector) load without PyAV, OpenCV or PySceneDetect.
"""

from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from heimdex_pipeline.core.json_numbers import integral_numbers

# PySceneDetect's SceneManager downscales to at least this width before detecting.
DETECTION_WIDTH = 256

MinSceneLen = Annotated[int, Field(
    ge=0, le=100_000,
    description="Frames that must pass after a cut before the next one (PySceneDetect's `min_scene_len`).")]


# The schema's way of saying that not every weight may be 0 (the score divides by their sum).
_SOME_WEIGHT = {"not": {"required": ["delta_hue", "delta_sat", "delta_lum"],
                        "properties": {name: {"const": 0} for name in ("delta_hue", "delta_sat", "delta_lum",
                                                                       "delta_edges")}}}


class Weights(BaseModel):
    """How much each component counts in a frame's content score (ContentDetector's `Components`); not all 0."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, json_schema_extra=_SOME_WEIGHT)

    delta_hue: float = Field(default=1.0, ge=0, le=100)
    delta_sat: float = Field(default=1.0, ge=0, le=100)
    delta_lum: float = Field(default=1.0, ge=0, le=100)
    delta_edges: float = Field(default=0.0, ge=0, le=100, description="Above 0, every frame is decoded")

    @model_validator(mode="after")
    def _some_weight(self) -> "Weights":
        if not any(self.components()):
            raise ValueError("at least one weight must be above 0")
        return self

    def components(self) -> tuple[float, float, float, float]:
        """The weights in ContentDetector's order."""
        return self.delta_hue, self.delta_sat, self.delta_lum, self.delta_edges


def _kind_required(schema: dict[str, Any]) -> None:
    # `kind` has a default in Python (ContentParams() is the content detector), but a body must name it.
    schema["required"] = ["kind", *schema.get("required", [])]


class _Detector(BaseModel):
    # Strict: "0.3" or true for a number is an error, as in every request body of the API.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, json_schema_extra=_kind_required)

    # PySceneDetect's class, named in the sidecar and the code version.
    detector_class: ClassVar[str]

    _integral_numbers = model_validator(mode="before")(integral_numbers)

    def describe(self) -> dict[str, Any]:
        """The detector block of the sidecar: name, version and parameters."""
        return {
            "name": self.detector_class,
            "library": "PySceneDetect",
            "version": version("scenedetect"),
            "parameters": {**self.model_dump(mode="json"), "detection_width": DETECTION_WIDTH},
        }

    def code_version(self) -> str:
        """A stable one-line name of the detector, its version and every parameter."""
        described = self.describe()
        parameters = _flatten(described["parameters"])
        return f"{described['name']}-{described['version']};" + ",".join(
            f"{key}={value}" for key, value in sorted(parameters.items()))


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class _ContentScored(_Detector):
    """A detector scoring frames as ContentDetector does: its weights and edge kernel."""

    weights: Weights = Weights()
    kernel_size: Literal[3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31] | None = Field(
        default=None,
        description="Odd size of the kernel that widens edges; null: from the resolution, as PySceneDetect does")


class ContentParams(_ContentScored):
    """`ContentDetector` (`detect-content`): a cut where a frame's HSV change from the last reaches `threshold`."""

    detector_class: ClassVar[str] = "ContentDetector"
    kind: Literal["content"] = "content"
    threshold: float = Field(default=27.0, gt=0, le=255)
    min_scene_len_frames: MinSceneLen = 15
    filter_mode: Literal["merge", "suppress"] = Field(
        default="merge", description="What a cut within min_scene_len_frames of the last does: merge, or is dropped")


class AdaptiveParams(_ContentScored):
    """`AdaptiveDetector` (`detect-adaptive`): a cut where a frame's content score stands out from its neighbours'."""

    detector_class: ClassVar[str] = "AdaptiveDetector"
    kind: Literal["adaptive"] = "adaptive"
    adaptive_threshold: float = Field(default=3.0, gt=0, le=255, description="Ratio of the score to its window's mean")
    min_scene_len_frames: MinSceneLen = 15
    window_width: int = Field(default=2, ge=1, le=60, description="Frames on each side averaged")
    min_content_val: float = Field(default=15.0, ge=0, le=255, description="Least content score of a cut")


class HashParams(_Detector):
    """`HashDetector` (`detect-hash`): a cut where the perceptual hashes of two frames differ by `threshold` or more."""

    detector_class: ClassVar[str] = "HashDetector"
    kind: Literal["hash"] = "hash"
    threshold: float = Field(default=0.35, ge=0, le=1, description="Share of the hash's bits that differ")
    min_scene_len_frames: MinSceneLen = 15
    size: int = Field(default=8, ge=2, le=64, description="Side of the hash, in DCT coefficients")
    lowpass: int = Field(default=2, ge=1, le=16, description="The DCT is taken over size x lowpass pixels a side")


class HistogramParams(_Detector):
    """`HistogramDetector` (`detect-hist`): a cut where two frames' luma histograms correlate below 1 - `threshold`."""

    detector_class: ClassVar[str] = "HistogramDetector"
    kind: Literal["histogram"] = "histogram"
    threshold: float = Field(default=0.2, ge=0, le=1)
    min_scene_len_frames: MinSceneLen = 15
    bins: int = Field(default=128, ge=1, le=256)


class ThresholdParams(_Detector):
    """`ThresholdDetector` (`detect-threshold`): fades, where the mean brightness crosses `threshold`."""

    detector_class: ClassVar[str] = "ThresholdDetector"
    kind: Literal["threshold"] = "threshold"
    threshold: int = Field(default=12, ge=0, le=255, description="Mean 8-bit pixel value a fade crosses")
    min_scene_len_frames: MinSceneLen = 15
    method: Literal["floor", "ceiling"] = Field(
        default="floor", description="floor: faded out below the threshold (black); ceiling: at or above it (white)")
    fade_bias: float = Field(
        default=0.0, ge=-1, le=1,
        description="Where the cut goes in the fade: -1 where it went out, 0 the middle, 1 where it came back")
    add_final_scene: bool = Field(default=True, description="A video ending faded out gets a cut where it went out "
                                                            "(the CLI always does)")
    min_out_length_frames: int = Field(default=0, ge=0, le=100_000, description="Least frames faded out for a cut")


class HeimdexParams(_Detector):
    """Heimdex's own detector (`shot_detector`): hard cuts, fades, dissolves and wipes, each boundary with its kind
    and span; flashes and strobes inside a shot are no cut."""

    detector_class: ClassVar[str] = "HeimdexShotDetector"
    library: ClassVar[str] = "Heimdex"
    # Bumped when the same parameters would find other boundaries.
    detector_version: ClassVar[str] = "1"
    kind: Literal["heimdex"] = "heimdex"
    min_scene_len_frames: MinSceneLen = 10
    cut_ratio: float = Field(default=3.0, gt=1, le=100,
                             description="A hard cut's change over its neighbours' mean change")
    min_change: float = Field(default=6.0, gt=0, le=255,
                              description="Least change of a hard cut: mean absolute difference of the thumbnails, 0-255")
    window_frames: int = Field(default=3, ge=1, le=60, description="Neighbours on each side a cut's change is held to")
    flash_frames: int = Field(default=4, ge=1, le=30,
                              description="A picture seen again within this many frames of a change makes it a flash")
    flash_return: float = Field(default=0.3, gt=0, le=1,
                                description="Seen again: nearer than this share of the change's own size")
    min_gradual: float = Field(default=16.0, gt=0, le=255,
                               description="Least difference between the two sides of a dissolve or wipe, 0-255")
    blend_residual: float = Field(default=0.16, gt=0, le=1,
                                  description="Most a dissolve's or wipe's middle frame may differ from the blend, "
                                              "as a share of the two sides' difference")
    wipe_residual: float = Field(default=0.25, gt=0, le=2,
                                 description="Most a wipe's middle frame may differ from the nearer side, plus how far "
                                             "its split is from whole columns or rows")
    min_straight: float = Field(default=0.5, gt=0, le=1,
                                description="Least ratio of a dissolve's or wipe's two sides' difference to the sum of "
                                            "its frames' changes (motion goes there and back)")
    fade_std: float = Field(default=6.0, ge=0, le=128, description="Most luma deviation of a faded-out frame")
    fade_black: float = Field(default=40.0, ge=0, le=255, description="Most mean luma of a frame faded to black")
    fade_white: float = Field(default=215.0, ge=0, le=255, description="Least mean luma of a frame faded to white")

    def describe(self) -> dict[str, Any]:
        """The detector block of the sidecar: name, version and parameters."""
        return {**super().describe(), "library": self.library, "version": self.detector_version}


DetectorParams = Annotated[HeimdexParams | ContentParams | AdaptiveParams | HashParams | HistogramParams
                           | ThresholdParams, Field(discriminator="kind")]


@dataclass(frozen=True)
class SceneTransition:
    """How a scene begins (the sidecar's `transition`): kind, first and last frames that change, and their
    times (`end_s` when the last one ends)."""

    kind: str
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Scene:
    """One shot: `[start_s, end_s)` in seconds from the first frame; `end_frame` is exclusive. `transition`:
    the boundary it begins with, when the detector tells (Heimdex's)."""

    index: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    transition: SceneTransition | None = None


@dataclass
class SceneDetection:
    """The scenes of a video, how many frames it has, and how many were decoded to find them."""

    scenes: list[Scene]
    frame_count: int
    # Frames decoded and scored to find the scenes (those of a second look count twice).
    frames_decoded: int
    detector: dict[str, Any] = field(default_factory=dict)
