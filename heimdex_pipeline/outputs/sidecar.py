"""The scene sidecar document (`<asset_id>.vna.json`) and its JSON Schema.

Minor versions only add optional fields, so a reader of 1.0 that reads the fields it knows reads
any 1.x: 1.1 added each scene's `transition` (Heimdex's own detector tells how a scene begins)
and the detector's `library`.
"""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.1"
# Every version this code reads: its own and those before it of the same major version.
READABLE_VERSIONS = ("1.0", "1.1")


class SidecarSource(BaseModel):
    """The file the sidecar describes."""

    uri: str
    filename: str
    size_bytes: int = Field(ge=0)
    hash: str
    hash_quality: Literal["strong", "weak"]


class SidecarProbe(BaseModel):
    """The probe summary: the video stream's facts, and every stream."""

    model_config = ConfigDict(extra="allow")

    duration_s: float
    width: int
    height: int
    fps: float | None
    codec: str | None
    rotation: int
    streams: list[dict[str, Any]]


class SidecarTransition(BaseModel):
    """How a scene begins: the boundary with the scene before, its kind and the frames it spans.

    `start_frame` and `end_frame` are the first and last frames that belong to neither shot alone
    (a hard cut's are both the new scene's first frame); `start_s` is when the first is shown,
    `end_s` when the last one ends.
    """

    kind: Literal["hard", "fade-black", "fade-white", "dissolve", "wipe"]
    start_frame: int = Field(ge=0)
    end_frame: int = Field(ge=0)
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)


class SidecarScene(BaseModel):
    """One scene; times in seconds from the first frame's presentation timestamp, end exclusive."""

    index: int = Field(ge=0)
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    start_frame: int = Field(ge=0)
    end_frame: int = Field(ge=0)
    # Left out of the document when unknown, so a scene is written as version 1.0 wrote it.
    transition: SidecarTransition | None = Field(
        default=None, exclude_if=lambda value: value is None,
        description="Since 1.1: the boundary this scene begins with, from Heimdex's detector; absent on the first "
                    "scene and with PySceneDetect's detectors")


class SidecarDetector(BaseModel):
    """The scene detector that produced the scenes."""

    name: str
    version: str
    parameters: dict[str, Any]
    library: str | None = Field(default=None, exclude_if=lambda value: value is None,
                                description="Since 1.1: whose detector, `Heimdex` or `PySceneDetect` (whose version "
                                            "`version` is)")


class ThumbnailEntry(BaseModel):
    """A thumbnail as the asset answer lists it; `storage_key` is relative to the org folder."""

    idx: int = Field(ge=0)
    storage_key: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    ts_ms: int = Field(ge=0)


class Sidecar(BaseModel):
    """The scene sidecar of one video."""

    schema_version: Literal[READABLE_VERSIONS] = SCHEMA_VERSION  # type: ignore[valid-type]
    asset_id: str
    org_id: str
    source: SidecarSource
    probe: SidecarProbe
    scenes: list[SidecarScene] = Field(min_length=1)
    detector: SidecarDetector
    thumbnails: list[ThumbnailEntry] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def published_schema(model: type[BaseModel], name: str, version: str) -> dict[str, Any]:
    """The JSON Schema of a stored document's model, as published under `<derived>/schemas/`."""
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://heimdex.dev/schemas/{name}/{version}"
    return schema


def sidecar_json_schema() -> dict[str, Any]:
    """The JSON Schema of the sidecar, as written to `<derived>/schemas/sidecar.schema.json`."""
    return published_schema(Sidecar, "sidecar", SCHEMA_VERSION)
