"""A video's scene list in the forms editors read: PySceneDetect's CSV, a CMX 3600 EDL, an OpenTimelineIO timeline.

Times are the sidecar's. Frames are counted at the video's nominal rate, as PySceneDetect
counts them: a scene starting at `start_s` starts at frame `round(start_s x rate)`, so a
variable-frame-rate video's frame numbers are its times at that rate, not its decoded frames.
"""

import csv
import io
from fractions import Fraction

import opentimelineio as otio

from heimdex_pipeline.outputs.sidecar import Sidecar

# The CMX 3600 reel: PySceneDetect's `save-edl` default, for a single source.
REEL = "AX"
CSV_HEADER = ["Scene Number", "Start Frame", "Start Timecode", "Start Time (seconds)", "End Frame", "End Timecode",
              "End Time (seconds)", "Length (frames)", "Length (timecode)", "Length (seconds)"]


def frame_rate(sidecar: Sidecar) -> Fraction:
    """The video's nominal rate (its stream's), else its average, else 25."""
    probe = sidecar.probe.model_dump()
    if probe.get("nominal_fps"):
        return Fraction(probe["nominal_fps"])
    return Fraction(probe.get("fps") or 25).limit_denominator(1001)


def _frames(sidecar: Sidecar) -> list[tuple[int, int]]:
    """Each scene's first frame and the frame after its last, at the nominal rate."""
    rate = frame_rate(sidecar)
    return [(round(Fraction(scene.start_s) * rate), round(Fraction(scene.end_s) * rate)) for scene in sidecar.scenes]


def _timecode(seconds: float) -> str:
    """`HH:MM:SS.nnn`, as PySceneDetect writes a time."""
    milliseconds = round(seconds * 1000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{milliseconds // 1000:02d}.{milliseconds % 1000:03d}"


def scenes_csv(sidecar: Sidecar) -> str:
    """`scenedetect list-scenes`'s CSV: the cut list first, then a header and one row per scene."""
    rate = frame_rate(sidecar)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    cuts = [_timecode(scene.start_s) for scene in sidecar.scenes[1:]]
    # PySceneDetect writes a blank line for the list when there is no cut.
    writer.writerow(["Timecode List:", *cuts] if cuts else [])
    writer.writerow(CSV_HEADER)
    for scene, (first, stop) in zip(sidecar.scenes, _frames(sidecar), strict=True):
        length_s = float((stop - first) / rate)
        writer.writerow([scene.index + 1, first + 1, _timecode(scene.start_s), f"{scene.start_s:.3f}", stop,
                         _timecode(scene.end_s), f"{scene.end_s:.3f}", stop - first, _timecode(length_s),
                         f"{length_s:.3f}"])
    return out.getvalue()


def scenes_timeline(sidecar: Sidecar) -> otio.schema.Timeline:
    """One video track of the source cut at every scene: a clip per scene, named `Scene N`."""
    rate = float(frame_rate(sidecar))
    frames = _frames(sidecar)
    source = otio.schema.ExternalReference(
        target_url=sidecar.source.uri,
        available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                otio.opentime.RationalTime(frames[-1][1], rate)))
    source.name = REEL
    track = otio.schema.Track(name="Video 1", kind=otio.schema.TrackKind.Video)
    for scene, (first, stop) in zip(sidecar.scenes, frames, strict=True):
        track.append(otio.schema.Clip(
            name=f"Scene {scene.index + 1}", media_reference=source.clone(),
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(first, rate),
                                                 otio.opentime.RationalTime(stop - first, rate)),
            metadata={"heimdex": {"asset_id": sidecar.asset_id, "scene_index": scene.index,
                                  "start_s": scene.start_s, "end_s": scene.end_s}}))
    timeline = otio.schema.Timeline(name=sidecar.source.filename,
                                    global_start_time=otio.opentime.RationalTime(0, rate))
    timeline.tracks.append(track)
    return timeline


def scenes_otio(sidecar: Sidecar) -> str:
    """The timeline as an `.otio` (OpenTimelineIO JSON) document."""
    return otio.adapters.write_to_string(scenes_timeline(sidecar), "otio_json")


def _smpte(frame: int, base: int) -> str:
    """`HH:MM:SS:FF` of a frame, non-drop-frame at `base` frames a second."""
    seconds, frames = divmod(frame, base)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}"


def scenes_edl(sidecar: Sidecar) -> str:
    """A CMX 3600 EDL: one cut event per scene, source and record alike (the scenes follow each other from 0).

    Timecodes are non-drop-frame at the rate rounded to whole frames (29.97 counts as 30), so an event's
    frames are the scene's frames, as in PySceneDetect's `save-edl`.
    """
    base = max(1, round(frame_rate(sidecar)))
    lines = [f"TITLE: {_edl_text(sidecar.source.filename)}", "FCM: NON-DROP FRAME", ""]
    for scene, (first, stop) in zip(sidecar.scenes, _frames(sidecar), strict=True):
        times = " ".join(_smpte(frame, base) for frame in (first, stop, first, stop))
        lines.append(f"{scene.index + 1:03d}  {REEL:<8} V     C        {times}")
        lines.append(f"* FROM CLIP NAME: {_edl_text(sidecar.source.filename)}")
    return "\n".join(lines) + "\n"


def _edl_text(text: str) -> str:
    """A file name on one line of an EDL: no line breaks, printable ASCII."""
    return "".join(char if " " <= char <= "~" else "_" for char in text)
