"""Scene detection: Heimdex's detector (the default), PySceneDetect's; ContentDetector decoding every frame
only where a cut can be.

Heimdex's detector and the other PySceneDetect detectors (and ContentDetector with edges
weighted) are fed every frame (`frame_detectors`, which says why). ContentDetector scores every frame against the one
before and cuts where the score reaches its threshold, subject to its minimum scene length.
Here:

1. A first pass decodes only the reference frames (I, P and reference B frames: a third to
   a half of an H.264 stream; the decoder spends nothing on the others) and scores each
   against the one before. Two adjacent frames get their exact score there.
2. Across a gap of skipped frames a cut shows at about its own score: encoders put a
   reference frame at a cut, and on PySceneDetect's media the score across a gap holding a
   cut was never below 0.98 of the cut's. A gap scoring at least half the threshold gets a
   second look: a second decoder, in a thread beside the first pass, decodes it whole from
   the keyframe before it and scores every frame in it.
3. ContentDetector's minimum-length filter runs over every frame's timestamp with those
   scores, so the cuts are those of ContentDetector fed every frame
   (`tests/media/test_scenes.py` compares the two at several thresholds).

When the second look would cover a large share of the frames (motion everywhere), or the
stream does not let both looks account for every frame exactly once, one pass scoring every
frame is made instead. Frames are timed by their presentation timestamps, so
variable-frame-rate and delayed-start videos get true times.

The two looks decode fast (`decoding`: H.264's loop filter skipped, swscale's scaling),
which PySceneDetect does not do: a frame's content score moves from PySceneDetect's own by
0.2 on average and up to 7.6 on its test media (`benchmarks/loop_filter.py`), so a cut
scoring near the threshold can come out the other way. Both looks and the one-pass
fallback decode alike, so the cuts are exactly those of ContentDetector fed every frame of
that decode; the detectors fed every frame get PySceneDetect's frames and scores.
"""

import queue
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from scenedetect.common import FrameTimecode
from scenedetect.detector import FlashFilter
from scenedetect.detectors import ContentDetector

from heimdex_pipeline.media.decoding import Timeline, VideoStream
from heimdex_pipeline.media.detector import (
    ContentParams,
    DetectorParams,
    HeimdexParams,
    Scene,
    SceneDetection,
    SceneTransition,
)
from heimdex_pipeline.media.errors import UnreadableMediaError
from heimdex_pipeline.media.frame_detectors import (
    Clock,
    content_detector,
    detect_every_frame,
    detect_shots,
    flash_filter_mode,
)
from heimdex_pipeline.media.frame_taps import FrameTap
from heimdex_pipeline.media.limits import MediaLimits, current_limits
from heimdex_pipeline.media.progress import Progress, Report
from heimdex_pipeline.media.tools import require_file

# A gap between two decoded reference frames is looked at again when its score reaches this
# share of the threshold (a cut across a gap was measured at 0.98 of its own score or more).
GAP_SHARE = 0.5
# A second look over more than this share of the frames costs more than decoding them all.
# The share is judged on the frames seen so far, once a quarter of the video is behind, so
# that a video with motion everywhere is handed to the full pass early.
FULL_PASS_SHARE = 0.25


def _threshold_scorer(params: ContentParams, share: float = 1.0) -> ContentDetector:
    """ContentDetector with its length filter off: it answers, frame by frame, score >= share x threshold."""
    return content_detector(params, params.threshold * share, min_scene_len=0)


# The scorers ignore timecodes once the length filter is off; one stands in for every frame.
_ANY_TIME = FrameTimecode(0, fps=Fraction(25))


def _above(scorer: ContentDetector, image: np.ndarray) -> bool:
    return bool(scorer.process_frame(_ANY_TIME, image))


@dataclass
class _Scores:
    """Each frame's PTS in display order, whether its score reached the threshold, and the work it took."""

    time_base: Fraction
    pts: list[int]
    above: list[bool]
    frames_decoded: int = 0


def _score_every_frame(video: VideoStream, params: ContentParams, progress: Progress) -> _Scores:
    scorer = _threshold_scorer(params)
    with video.open() as decoder:
        scores = _Scores(decoder.time_base, [], [])
        for pts, image in decoder.frames_from_start(Timeline(), reference_only=False):
            scores.pts.append(pts)
            scores.above.append(_above(scorer, image))
            progress.update(len(scores.pts))
    scores.frames_decoded = len(scores.pts)
    return scores


class _SecondLook:
    """Scores every frame of the suspect gaps on a decoder of its own, in a thread beside the first pass.

    A first pass over reference frames leaves a core partly idle (each P frame waits for
    the one before); the second look uses it. Gaps come in display order; the decoder goes
    on from one to the next, and seeks only where a keyframe lies between them.
    """

    def __init__(self, video: VideoStream, timeline: Timeline, params: ContentParams) -> None:
        self._video, self._timeline, self._params = video, timeline, params
        self._gaps: queue.Queue[tuple[int, int] | None] = queue.Queue()
        self._cancelled = threading.Event()
        # For each gap, every frame in it as (pts, score reached the threshold); the first
        # frame's flag is meaningless, it was scored against the frame before the gap.
        self._found: dict[tuple[int, int], list[tuple[int, bool]]] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="scenes-second-look", daemon=True)
        self._thread.start()

    def add(self, first: int, last: int) -> None:
        """Look at every frame from PTS `first` to `last`."""
        self._gaps.put((first, last))

    def close(self, cancel: bool = False, progress: Progress | None = None) -> None:
        """No more gaps: wait until those added are looked at, or only the current frame if cancelled,
        telling `progress` meanwhile that the work goes on."""
        if cancel:
            self._cancelled.set()
        self._gaps.put(None)
        while self._thread.is_alive():
            self._thread.join(timeout=0.25)
            if progress is not None:
                progress.still_working()

    def found(self) -> dict[tuple[int, int], list[tuple[int, bool]]]:
        """What was found in each gap, once closed; the thread's error if it failed."""
        if self._error is not None:
            raise self._error
        return self._found

    def _run(self) -> None:
        try:
            with self._video.open() as decoder:
                while (gap := self._gaps.get()) is not None and not self._cancelled.is_set():
                    first, last = gap
                    keyframe = self._timeline.keyframe_before(first)
                    if decoder.position is None or decoder.position >= first or keyframe > decoder.position:
                        decoder.seek(keyframe)
                    scorer = _threshold_scorer(self._params)
                    frames = self._found[gap] = []
                    for pts, image in decoder.span(first, last):
                        if self._cancelled.is_set():
                            return
                        frames.append((pts, _above(scorer, image)))
        except BaseException as error:  # handed to the caller by found()
            self._error = error


@dataclass
class _FirstPass:
    """What the reference frames tell: exact flags where two decoded frames are adjacent, gaps elsewhere."""

    timeline: Timeline = field(default_factory=Timeline)
    decoded: list[int] = field(default_factory=list)
    # Adjacent decoded frames scored against each other, and those of them that reached the threshold.
    adjacent: list[tuple[int, int]] = field(default_factory=list)
    above: list[int] = field(default_factory=list)
    # Frames (counted at the time) inside the gaps handed to the second look.
    looked_at: int = 0


def _score_reference_frames(video: VideoStream, params: ContentParams, expected_frames: float,
                            progress: Progress) -> tuple[_Scores | None, int]:
    """Scores from the reference frames and a second look at the suspect gaps, None if that cannot be
    exact; and how many frames the first pass decoded. Progress counts the frames the first pass
    went past (decoded or not)."""
    first_pass = _FirstPass()
    timeline = first_pass.timeline
    second_look = _SecondLook(video, timeline, params)
    gap: tuple[int, int] | None = None
    screen = _threshold_scorer(params, GAP_SHARE)
    previous = np.empty(0)
    try:
        with video.open() as decoder:
            time_base = decoder.time_base
            for pts, image in decoder.frames_from_start(timeline, reference_only=True):
                if _above(screen, image) and first_pass.decoded:
                    before = first_pass.decoded[-1]
                    skipped = timeline.count_between(before, pts)
                    if skipped == 0:
                        first_pass.adjacent.append((before, pts))
                        exact = _threshold_scorer(params)
                        _above(exact, previous)
                        if _above(exact, image):
                            first_pass.above.append(pts)
                    else:
                        first_pass.looked_at += skipped + 1
                        if gap is not None and gap[1] == before:
                            gap = (gap[0], pts)  # touching gaps are looked at in one go
                        else:
                            if gap is not None:
                                second_look.add(*gap)
                            gap = (before, pts)
                        if first_pass.looked_at > FULL_PASS_SHARE * max(len(timeline.pts), expected_frames / 4):
                            second_look.close(cancel=True)
                            return None, len(first_pass.decoded)
                first_pass.decoded.append(pts)
                previous = image
                progress.update(len(timeline.pts))
        if gap is not None:
            second_look.add(*gap)
        # Frames before the first decoded one and after the last (rare) are looked at too.
        if first_pass.decoded and timeline.pts[0] < first_pass.decoded[0]:
            second_look.add(timeline.pts[0], first_pass.decoded[0])
        if first_pass.decoded and first_pass.decoded[-1] < timeline.pts[-1]:
            second_look.add(first_pass.decoded[-1], timeline.pts[-1])
    except BaseException:
        second_look.close(cancel=True)
        raise
    second_look.close(progress=progress)
    return _combine(first_pass, time_base, second_look.found()), len(first_pass.decoded)


def _combine(first_pass: _FirstPass, time_base: Fraction,
             found: dict[tuple[int, int], list[tuple[int, bool]]]) -> _Scores | None:
    """Every frame's flag from both looks; None unless they account for every frame exactly once."""
    timeline, decoded = first_pass.timeline, first_pass.decoded
    pts = timeline.pts
    index = {value: position for position, value in enumerate(pts)}
    if not decoded or not timeline.complete or len(index) != len(pts) or not all(p in index for p in decoded):
        return None
    if any(index[last] - index[first] != 1 for first, last in first_pass.adjacent):
        return None  # a packet came late: two frames taken for adjacent were not
    scores = _Scores(time_base, pts, [False] * len(pts),
                     frames_decoded=len(decoded) + sum(len(frames) for frames in found.values()))
    for value in first_pass.above:
        scores.above[index[value]] = True
    for (first, last), frames in found.items():
        if [value for value, _ in frames] != pts[index[first]:index[last] + 1]:
            return None  # the decoder did not give back every frame of the gap
        for value, flag in frames[1:]:
            scores.above[index[value]] = flag
    return scores


def _expected_frames(probe: dict[str, Any]) -> float:
    """The frame count the probe announces, or its duration times its rate."""
    return probe.get("frame_count") or probe["duration_s"] * (probe.get("fps") or 25)


def detect_scenes(path: Path | str, probe: dict[str, Any], params: DetectorParams = HeimdexParams(), *,
                  every_frame: bool = False, limits: MediaLimits | None = None,
                  progress: Report | None = None, tap: FrameTap | None = None) -> SceneDetection:
    """Detect the scenes of a video with the detector `params` describe; one scene covering it all when
    there is no cut.

    `every_frame` decodes and scores every frame in one pass: the same cuts, more slowly (only
    ContentDetector ever takes two). The video must be within `limits` (by default the settings'),
    and every pass over it ends by its decoding deadline (MediaTimeoutError). `progress(frames, of)`
    is told the frames gone through out of the probe's frame count, every second or so. `tap` is
    told every frame any pass decodes (`frame_taps`), by its time on the stream's timeline.
    """
    limits = limits or current_limits()
    require_file(path)
    limits.check(probe, path.name)
    two_looks = isinstance(params, ContentParams) and not params.weights.delta_edges
    # The two looks and Heimdex's detector decode fast (their cost is the point); PySceneDetect's detectors fed
    # every frame get PySceneDetect's frames.
    fast = two_looks or isinstance(params, HeimdexParams)
    video = VideoStream(path, probe.get("video_stream_index"), limits, limits.decoding_deadline(probe), fast=fast,
                        tap=tap)
    counted = Progress(round(_expected_frames(probe)), progress)
    clock = Clock(rate=Fraction(probe["nominal_fps"]) if probe.get("nominal_fps") else Fraction(25),
                  start_s=Fraction(probe.get("video_start_s") or 0).limit_denominator(1_000_000))
    transitions: dict[int, SceneTransition] = {}
    if isinstance(params, ContentParams) and two_looks:
        times, cut_frames, frames_decoded = _content_cuts(video, params, clock, counted, every_frame)
    elif isinstance(params, HeimdexParams):
        times, transitions = detect_shots(video, params, clock, counted, probe["last_frame_duration_s"])
        cut_frames, frames_decoded = list(transitions), len(times)
    else:
        times, cut_frames = detect_every_frame(video, params, clock, counted)
        frames_decoded = len(times)
    counted.finish()
    if not times:
        raise UnreadableMediaError(f"no frame of {path.name} could be decoded")
    return SceneDetection(
        scenes=_scenes_from_cuts(times, cut_frames, probe, transitions),
        frame_count=len(times),
        frames_decoded=frames_decoded,
        detector=params.describe(),
    )


def _content_cuts(video: VideoStream, params: ContentParams, clock: Clock, counted: Progress,
                  every_frame: bool) -> tuple[list[float], list[int], int]:
    """ContentDetector's cuts from the two looks (or one pass): every frame's time, the cut frames, and the
    frames decoded."""
    scores, first_pass_frames = None, 0
    if not every_frame:
        scores, first_pass_frames = _score_reference_frames(video, params, counted.total, counted)
    if scores is None:
        scores = _score_every_frame(video, params, counted)
        scores.frames_decoded += first_pass_frames
    # ContentDetector's own minimum-scene-length filter, over every frame in display order.
    length_filter = FlashFilter(mode=flash_filter_mode(params), length=params.min_scene_len_frames)
    times: list[float] = []
    frame_index: dict[float, int] = {}
    cuts: list[FrameTimecode] = []
    for pts, above in zip(scores.pts, scores.above, strict=True):
        timecode = clock.timecode(pts, scores.time_base)
        frame_index[timecode.seconds] = len(times)
        times.append(timecode.seconds)
        cuts.extend(length_filter.filter(timecode, above))
    return times, [frame_index[cut.seconds] for cut in cuts], scores.frames_decoded


def _scenes_from_cuts(times: list[float], cut_frames: list[int], probe: dict[str, Any],
                      transitions: dict[int, SceneTransition]) -> list[Scene]:
    """Scenes between consecutive cuts, each with the transition it begins with if known; the last one
    ends where the last frame ends, which lasts what the probe says the video's last frame lasts (so
    the scenes end at the probe's duration when every frame was decoded)."""
    end_of_video = times[-1] + probe["last_frame_duration_s"]
    bounds = [0, *sorted(set(f for f in cut_frames if 0 < f < len(times))), len(times)]
    scenes = []
    for index, (first, stop) in enumerate(zip(bounds, bounds[1:], strict=False)):
        end_s = times[stop] if stop < len(times) else end_of_video
        scenes.append(Scene(index=index, start_s=round(times[first], 6), end_s=round(end_s, 6),
                            start_frame=first, end_frame=stop, transition=transitions.get(first)))
    return scenes
