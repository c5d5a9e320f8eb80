"""Storyboard: a JPEG sprite of evenly spaced frames, and the WebVTT track whose cues point into it.

A video is cut into 50 equal spans (100 from 15 minutes on); each span's tile is the frame shown
at its middle. Players take the track as a thumbnail track (Mux style): a cue's text is
`storyboard.jpg#xywh=x,y,w,h`, the tile's rectangle in the sprite. The same geometry is kept as a
JSON document (`Storyboard`).

The frames come, first, from the scene pass, which decodes frames anyway: its tap (`tile_tap`) keeps
for each tile the frame shown at the middle of its span when the pass decoded it, else the last
decoded before (or the first after), at most half a span from it (a frame of the tile's own span), and the scene step saves them (`frame_taps.SharedFrames`). Without
them (a storyboard made alone, a scene pass with other settings), two ways, whichever costs less: a
short or small video is decoded through once by a single ffmpeg that picks, scales and tiles the
frames itself; a longer one is read by seeking, one ffmpeg per tile (`extract_thumbnails`), so its
cost follows the tile count, not the duration.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ffmpeg
import webvtt
from pydantic import BaseModel, Field
from webvtt.errors import MalformedFileError

from heimdex_pipeline.media.limits import Deadline, MediaLimits, current_limits
from heimdex_pipeline.media.progress import Progress, Report
from heimdex_pipeline.media.thumbnails import ThumbnailSlot, extract_thumbnails, output_size
from heimdex_pipeline.media.tools import (
    FFMPEG,
    FORMAT_OPTIONS,
    decoder_options,
    failure,
    input_url,
    require_file,
    run_tool,
    source_name,
)

if TYPE_CHECKING:  # OpenCV and NumPy load in the steps that decode, not with the definitions
    from heimdex_pipeline.media.frame_taps import TileTap, Tiles

SPRITE_NAME, VTT_NAME, DOCUMENT_NAME = "storyboard.jpg", "storyboard.vtt", "storyboard.json"
COLUMNS = 10
LONG_VIDEO_S = 15 * 60.0
# Frames x pixels up to which one pass decoding everything costs less than a seek per tile: a
# minute of 720p30. Decoding through takes 0.04 to 0.08 s per second of 720p30 on 2 cores; 50 seeks
# take some 3 s when each span holds a keyframe, and up to 12 s when the spans are shorter than the
# keyframe interval (x264's 250 frames) and each seek decodes from the keyframe before
# (docs/benchmarks.md, "Storyboard").
DECODE_THROUGH_MAX_PIXELS = 60 * 30 * 1280 * 720


def tile_count(duration_s: float) -> int:
    """How many tiles a video gets: 50, or 100 from 15 minutes on."""
    return 100 if duration_s >= LONG_VIDEO_S else 50


class StoryboardTile(BaseModel):
    """One span of the video, `[start_s, end_s)` from its first frame, and its frame's rectangle in the sprite."""

    index: int = Field(ge=0)
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)


class Storyboard(BaseModel):
    """The storyboard's geometry, as `storyboard.json` holds it: tiles of `tile_width` x `tile_height`,
    `columns` to a row of the sprite; times in seconds (whole milliseconds), sizes in pixels."""

    sprite: str = Field(default=SPRITE_NAME, description="The sprite's file name, beside the track and this document")
    sprite_width: int = Field(gt=0)
    sprite_height: int = Field(gt=0)
    tile_width: int = Field(gt=0)
    tile_height: int = Field(gt=0)
    columns: int = Field(gt=0)
    rows: int = Field(gt=0)
    duration_s: float = Field(ge=0)
    tiles: list[StoryboardTile]

    def takes(self, tiles: "Tiles | None") -> bool:
        """Whether the scene pass's `tiles` are this storyboard's: its tile count, size and duration."""
        return tiles is not None and tiles.fits(len(self.tiles), self.tile_width, self.tile_height,
                                                round(self.duration_s * 1000))

    def slots(self) -> list[ThumbnailSlot]:
        """Each tile's middle, inside its span: where `extract_thumbnails` takes its frame."""
        return [ThumbnailSlot((t.start_s + t.end_s) / 2, t.start_s, t.end_s) for t in self.tiles]


# A tile at most this many times as tall as wide: a crafted 100x16000 video would otherwise ask
# for a sprite 160,000 pixels tall, beyond what JPEG can hold, and fail the ingest.
MAX_TILE_ASPECT = 4


def tile_size(probe: dict[str, Any], width: int) -> tuple[int, int]:
    """A tile's size: `width` wide at the display aspect, even, never taller than the video (as thumbnails)
    nor than `MAX_TILE_ASPECT` widths (narrower then)."""
    return output_size(probe, min(round(width * probe["display_height"] / probe["display_width"]),
                                  MAX_TILE_ASPECT * width))


def plan_storyboard(probe: dict[str, Any], tile_width: int) -> Storyboard:
    """Equal spans in whole milliseconds that cover `[0, duration]` exactly, each with its cell of the sprite."""
    # At least a millisecond, so that a video too short to time still has a track of whole cues.
    duration_ms = max(1, round(probe["duration_s"] * 1000))
    count = tile_count(probe["duration_s"])
    width, height = tile_size(probe, tile_width)
    rows = -(-count // COLUMNS)
    bounds = [round(i * duration_ms / count) / 1000 for i in range(count + 1)]
    tiles = [StoryboardTile(index=i, start_s=bounds[i], end_s=bounds[i + 1], x=i % COLUMNS * width,
                            y=i // COLUMNS * height, w=width, h=height) for i in range(count)]
    return Storyboard(sprite_width=COLUMNS * width, sprite_height=rows * height, tile_width=width,
                      tile_height=height, columns=COLUMNS, rows=rows, duration_s=duration_ms / 1000, tiles=tiles)


def tile_tap(probe: dict[str, Any], tile_width: int) -> "TileTap":
    """The scene pass's tap keeping the frames of this video's storyboard (`plan_storyboard`)."""
    from heimdex_pipeline.media.frame_taps import TileTap

    board = plan_storyboard(probe, tile_width)
    return TileTap([(t.start_s + t.end_s) / 2 for t in board.tiles], board.duration_s / len(board.tiles),
                   [(t.x, t.y) for t in board.tiles], (board.tile_width, board.tile_height),
                   (board.sprite_width, board.sprite_height), probe.get("rotation") or 0,
                   round(board.duration_s * 1000))


def _tile_shared(tiles: "Tiles", sprite: Path) -> None:
    """The sprite the scene pass made of its tiles, written as it is."""
    sprite.write_bytes(tiles.sprite_jpeg)


def vtt_time(seconds: float) -> str:
    """`HH:MM:SS.mmm`, as WebVTT writes a cue's time."""
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def render_vtt(board: Storyboard, sprite: str = SPRITE_NAME) -> str:
    """The WebVTT track of a storyboard: one cue per tile, `<sprite>#xywh=x,y,w,h`."""
    cues = [f"{vtt_time(t.start_s)} --> {vtt_time(t.end_s)}\n{sprite}#xywh={t.x},{t.y},{t.w},{t.h}" for t in board.tiles]
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n"


@dataclass(frozen=True)
class Cue:
    """A cue of a WebVTT track: seconds, and its text."""

    start_s: float
    end_s: float
    text: str


def parse_vtt(text: str) -> list[Cue]:
    """The cues of a WebVTT track as a player reads them (webvtt-py); ValueError when it is none."""
    try:
        captions = webvtt.from_string(text).captions
    except MalformedFileError as exc:
        raise ValueError(str(exc)) from None
    return [Cue(c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000, c.text) for c in captions]


def decodes_through(probe: dict[str, Any]) -> bool:
    """Whether one pass decoding every frame costs less than a seek per tile (DECODE_THROUGH_MAX_PIXELS)."""
    frames = probe["duration_s"] * (probe.get("fps") or 30)
    return frames * probe["width"] * probe["height"] <= DECODE_THROUGH_MAX_PIXELS


# The sprite is composed by ffmpeg's tile filter on both paths: decoding through, the process that
# picks the frames tiles them too (one process in all, nothing decoded twice in Python); seeking, a
# second ffmpeg tiles the extracted JPEGs, so both sprites are encoded alike.
def _tile(frames: Any, board: Storyboard, sprite: Path, path: Path | str, deadline: Deadline) -> None:
    """Run ffmpeg: `frames` (an ffmpeg-python stream of tile-sized frames) tiled into the sprite JPEG."""
    stream = (
        frames.filter("tile", f"{board.columns}x{board.rows}")
        .output(str(sprite), vframes=1, format="image2", vcodec="mjpeg", **{"q:v": 3})
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
        .overwrite_output()
    )
    run_tool("ffmpeg", stream.compile(cmd=FFMPEG), path, deadline)


def _tile_through(path: Path | str, board: Storyboard, sprite: Path, limits: MediaLimits,
                  deadline: Deadline) -> None:
    """Decode once and keep, per span, the frame shown at its middle: fps=count/duration emits frame k
    at k spans, holding the last frame at or before k + 1/2 spans (its rounding is to the nearest)."""
    count, duration_ms = len(board.tiles), round(board.duration_s * 1000)
    frames = (
        ffmpeg.input(input_url(path), **FORMAT_OPTIONS, **decoder_options(limits)).video
        .filter("setpts", "PTS-STARTPTS")
        # The last frame held one span longer, so the last span's middle always has a frame.
        .filter("tpad", stop_mode="clone", stop_duration=f"{board.duration_s / count:.6f}")
        .filter("fps", fps=f"{count * 1000}/{duration_ms}")
        .filter("scale", board.tile_width, board.tile_height)
        .filter("setsar", 1)
    )
    _tile(frames, board, sprite, path, deadline)


def _tile_seeking(path: Path | str, probe: dict[str, Any], board: Storyboard, sprite: Path,
                  limits: MediaLimits, deadline: Deadline, progress: Report | None) -> None:
    """One JPEG per tile by seeking (`extract_thumbnails`), then tiled into the sprite."""
    with tempfile.TemporaryDirectory(prefix=".tiles-", dir=sprite.parent) as folder:
        extract_thumbnails(path, probe, board.slots(), Path(folder), board.tile_height, limits, progress)
        frames = ffmpeg.input(str(Path(folder) / "%04d.jpg"), format="image2", start_number=0, framerate=1)
        _tile(frames, board, sprite, path, deadline)


def make_storyboard(path: Path | str, probe: dict[str, Any], out_dir: Path, tile_width: int,
                    limits: MediaLimits | None = None, progress: Report | None = None,
                    tiles: "Tiles | None" = None) -> Storyboard:
    """Write `storyboard.jpg` and `storyboard.vtt` into `out_dir`; return the geometry (`storyboard.json`).

    `tiles`, the scene pass's (`tile_tap`), are used when they fit this storyboard's plan; else the
    video is decoded. The video must be within `limits` (by default the settings'); every ffmpeg run
    is stopped at the video's decoding deadline. `progress(tiles, of)` is told the tiles made so far.
    """
    limits = limits or current_limits()
    require_file(path)
    limits.check(probe, source_name(path))
    deadline = limits.decoding_deadline(probe)
    board = plan_storyboard(probe, tile_width)
    out_dir.mkdir(parents=True, exist_ok=True)
    sprite = out_dir / SPRITE_NAME
    if tiles is not None and board.takes(tiles):
        _tile_shared(tiles, sprite)
        Progress(len(board.tiles), progress).finish()
    elif decodes_through(probe):
        _tile_through(path, board, sprite, limits, deadline)
        Progress(len(board.tiles), progress).finish()
    else:
        _tile_seeking(path, probe, board, sprite, limits, deadline, progress)
    if not sprite.is_file():
        raise failure("ffmpeg", path, 0, b"no storyboard written")
    (out_dir / VTT_NAME).write_text(render_vtt(board), encoding="utf-8")
    return board
