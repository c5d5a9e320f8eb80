"""What makes a video's derived files sound: plain checks that return the problems they find.

The Dagster asset checks (`heimdex_pipeline.assets.checks`) report these; an empty list is a pass.
"""

import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from heimdex_pipeline.media.qc import QcReport
from heimdex_pipeline.media.storyboard import SPRITE_NAME, Storyboard, parse_vtt
from heimdex_pipeline.outputs.sidecar import SidecarScene, ThumbnailEntry

# The problems a check lists at most: a broken sidecar can have thousands, and the first few say enough.
MAX_PROBLEMS = 10
# Times in the sidecar are rounded to microseconds.
TIME_EPSILON_S = 1e-6


def _first(problems: list[str]) -> list[str]:
    if len(problems) > MAX_PROBLEMS:
        return [*problems[:MAX_PROBLEMS], f"and {len(problems) - MAX_PROBLEMS} more"]
    return problems


@lru_cache(maxsize=16)
def _validator(schema_json: str) -> Draft202012Validator:
    """A validator of the schema given as JSON text, checked against its meta-schema first (`SchemaError`).

    Kept by the schema's text: checking a schema costs about ten times validating a sidecar with it,
    and every video's check reads the same published schema.
    """
    schema = json.loads(schema_json)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_problems(document: Any, schema: dict[str, Any]) -> list[str]:
    """Where `document` breaks the JSON Schema `schema`, each with the JSON path of the value at fault."""
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
    except SchemaError as exc:
        return [f"the schema itself is invalid: {exc.message}"]
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    return _first([f"{error.json_path}: {error.message}" for error in errors])


def scene_coverage_problems(scenes: Sequence[SidecarScene], duration_s: float, fps: float | None) -> list[str]:
    """How the scenes fail to cover `[0, duration_s)` in order, without gap or overlap.

    `duration_s` is the probe's: the end of the last frame, where the last scene ends too when every
    frame was decoded. One frame (`fps`, 25 when unknown) is allowed, for a last frame lost to a
    damaged packet; a file that holds less than its index announces falls short by more.
    """
    if not scenes:
        return ["no scene"]
    problems = []
    if abs(scenes[0].start_s) > TIME_EPSILON_S or scenes[0].start_frame != 0:
        problems.append(f"the first scene starts at {scenes[0].start_s} s (frame {scenes[0].start_frame}), not 0")
    for position, scene in enumerate(scenes):
        if scene.index != position:
            problems.append(f"scene {position} has index {scene.index}")
        if scene.end_s <= scene.start_s or scene.end_frame <= scene.start_frame:
            problems.append(f"scene {position} is empty or reversed: [{scene.start_s}, {scene.end_s}) s, "
                            f"frames [{scene.start_frame}, {scene.end_frame})")
    for before, after in zip(scenes, scenes[1:], strict=False):
        if after.start_s - before.end_s > TIME_EPSILON_S:
            problems.append(f"a gap between scenes {before.index} and {after.index}: {before.end_s} to {after.start_s} s")
        elif before.end_s - after.start_s > TIME_EPSILON_S:
            problems.append(f"scenes {before.index} and {after.index} overlap: {after.start_s} to {before.end_s} s")
        if after.start_frame != before.end_frame:
            problems.append(f"scene {after.index} starts at frame {after.start_frame}, "
                            f"scene {before.index} ends at {before.end_frame}")
    one_frame = 1 / (fps or 25)
    if abs(scenes[-1].end_s - duration_s) > one_frame + TIME_EPSILON_S:
        problems.append(f"the last scene ends at {scenes[-1].end_s} s; the video lasts {duration_s} s")
    return _first(problems)


def image_size(data: bytes) -> tuple[int, int] | None:
    """The (width, height) of an encoded image, or None when it does not decode."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    return None if image is None else (image.shape[1], image.shape[0])


def thumbnail_problems(entries: Sequence[ThumbnailEntry], read: Callable[[ThumbnailEntry], bytes | None]) -> list[str]:
    """Which listed thumbnails are missing, undecodable or of another size than the list claims.

    `read` returns a thumbnail's bytes, or None when the file does not exist.
    """
    problems = []
    for entry in entries:
        data = read(entry)
        if data is None:
            problems.append(f"{entry.storage_key} is missing")
            continue
        size = image_size(data)
        if size is None:
            problems.append(f"{entry.storage_key} is not an image")
        elif size != (entry.width, entry.height):
            problems.append(f"{entry.storage_key} is {size[0]}x{size[1]}, listed as {entry.width}x{entry.height}")
    indexes = [entry.idx for entry in entries]
    if len(set(indexes)) != len(indexes):
        problems.append("two thumbnails share an idx")
    return _first(problems)


def storyboard_problems(document: Any, vtt: str, sprite: bytes | None, duration_s: float,
                        fps: float | None) -> list[str]:
    """How a storyboard's track, geometry and sprite disagree.

    `document` (the storyboard's JSON) is a `Storyboard`; the track parses as WebVTT; its cues
    follow each other from 0 to the probe's duration (within a frame, `fps`, 25 when unknown)
    without gap or overlap, one per tile, each pointing at its tile's rectangle, inside the
    sprite; `sprite` (None when missing) decodes to the size the document gives.
    """
    try:
        board = Storyboard.model_validate(document)
    except ValidationError as exc:
        return [f"the storyboard geometry breaks its model ({exc.error_count()} errors)"]
    problems = []
    width, height = board.sprite_width, board.sprite_height
    size = image_size(sprite) if sprite is not None else None
    if sprite is None:
        problems.append("the sprite is missing")
    elif size is None:
        problems.append("the sprite is not an image")
    elif size != (width, height):
        problems.append(f"the sprite is {size[0]}x{size[1]}, the storyboard says {width}x{height}")
    try:
        cues = parse_vtt(vtt)
    except ValueError as exc:
        return _first([*problems, f"the track is not WebVTT: {exc}"])
    tiles = board.tiles
    if not cues or len(cues) != len(tiles):
        problems.append(f"the track has {len(cues)} cues for {len(tiles)} tiles")
    one_frame = 1 / (fps or 25)
    if cues and abs(cues[0].start_s) > TIME_EPSILON_S:
        problems.append(f"the first cue starts at {cues[0].start_s} s, not 0")
    if cues and abs(cues[-1].end_s - duration_s) > one_frame + TIME_EPSILON_S:
        problems.append(f"the last cue ends at {cues[-1].end_s} s; the video lasts {duration_s} s")
    for position, (before, after) in enumerate(zip(cues, cues[1:], strict=False)):
        if abs(after.start_s - before.end_s) > TIME_EPSILON_S:
            problems.append(f"cues {position} and {position + 1} leave a gap or overlap: {before.end_s} to {after.start_s} s")
    for position, (cue, tile) in enumerate(zip(cues, tiles, strict=False)):
        rectangle = (tile.x, tile.y, tile.w, tile.h)
        target = f"{SPRITE_NAME}#xywh={','.join(map(str, rectangle))}"
        if cue.end_s <= cue.start_s:
            problems.append(f"cue {position} is empty or reversed: {cue.start_s} to {cue.end_s} s")
        if cue.text != target:
            problems.append(f"cue {position} points at {cue.text!r}, its tile at {target!r}")
        if abs(cue.start_s - tile.start_s) > TIME_EPSILON_S or abs(cue.end_s - tile.end_s) > TIME_EPSILON_S:
            problems.append(f"cue {position} is {cue.start_s} to {cue.end_s} s, its tile {tile.start_s} to {tile.end_s} s")
        x, y, w, h = rectangle
        if x + w > width or y + h > height:
            problems.append(f"tile {position} ({x},{y},{w},{h}) lies outside the {width}x{height} sprite")
    return _first(problems)


# A silence that reaches this close to both ends of the audio covers all of it.
SILENCE_EDGE_S = 0.05


def audio_problems(report: QcReport) -> list[str]:
    """Why the video's audio is missing or silent throughout (nothing when it is there and heard)."""
    if report.audio is None:
        return ["no audio stream"]
    if report.loudness is None:
        return [f"the audio is silent throughout: {report.loudness_unavailable}"]
    end = min(report.duration_s, report.audio.duration_s or report.duration_s)
    if any(s.start_s <= SILENCE_EDGE_S and s.end_s >= end - SILENCE_EDGE_S for s in report.silence):
        return [f"the audio is silent throughout (below {report.thresholds.silence_db:g} dBFS)"]
    return []


def loudness_problems(report: QcReport, target_lufs: float | None, tolerance_lu: float | None) -> list[str]:
    """Whether the integrated loudness is within `target_lufs` ± `tolerance_lu` (nothing when no target is set)."""
    if target_lufs is None or tolerance_lu is None:
        return []
    if report.loudness is None:
        return [f"no loudness to hold against the target of {target_lufs:g} LUFS: {report.loudness_unavailable}"]
    off = report.loudness.integrated_lufs - target_lufs
    if abs(off) > tolerance_lu:
        return [f"integrated loudness {report.loudness.integrated_lufs:g} LUFS is {abs(off):.1f} LU "
                f"{'above' if off > 0 else 'below'} the target of {target_lufs:g} ± {tolerance_lu:g} LUFS"]
    return []


def stretch_problems(report: QcReport, max_stretch_s: float, edge_s: float) -> list[str]:
    """Black or frozen stretches longer than `max_stretch_s` that neither begin within `edge_s` of the start
    nor end within `edge_s` of the end (a fade, a slate, a still end card)."""
    problems = []
    for kind, segments in (("black", report.black), ("frozen", report.freeze)):
        for s in segments:
            inside = s.start_s > edge_s and s.end_s < report.duration_s - edge_s
            if inside and s.duration_s > max_stretch_s:
                problems.append(f"{kind} for {s.duration_s:.2f} s from {s.start_s:.3f} s (frames "
                                f"{s.start_frame}–{s.end_frame}), longer than {max_stretch_s:g} s")
    return _first(problems)
