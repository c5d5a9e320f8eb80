"""The detectors fed every frame of a decode: PySceneDetect's, built from their parameters, and Heimdex's.

Heimdex's own (`shot_detector`) takes the fast decode's frames: it looks for gradual
transitions over many frames, so every frame is decoded (no second look at gaps).

Every detector but ContentDetector goes this way (and ContentDetector with edges weighted):
- AdaptiveDetector divides each frame's score by its neighbours' mean, so a low score counts
  as much as a high one, and every frame must be scored;
- ThresholdDetector reads each frame's own brightness: a fade to black between two
  reference frames that are both bright would go unseen;
- HashDetector and HistogramDetector compare adjacent frames as ContentDetector does, but the
  property the two-pass path stands on (a cut across a gap of skipped frames scores about its
  own score) was measured for ContentDetector's HSV score alone.
"""

from bisect import bisect_left
from dataclasses import dataclass
from fractions import Fraction

from scenedetect.common import FrameTimecode, Timecode
from scenedetect.detector import FlashFilter, SceneDetector
from scenedetect.detectors import (
    AdaptiveDetector,
    ContentDetector,
    HashDetector,
    HistogramDetector,
    ThresholdDetector,
)

from heimdex_pipeline.media.decoding import Timeline, VideoStream
from heimdex_pipeline.media.detector import (
    AdaptiveParams,
    ContentParams,
    DetectorParams,
    HashParams,
    HeimdexParams,
    HistogramParams,
    SceneTransition,
    ThresholdParams,
)
from heimdex_pipeline.media.progress import Progress
from heimdex_pipeline.media.shot_detector import ShotDetector


@dataclass(frozen=True)
class Clock:
    """Timecodes of frames as PySceneDetect takes them: by PTS, counted from the first frame, at the nominal rate."""

    rate: Fraction
    start_s: Fraction

    def timecode(self, pts: int, time_base: Fraction) -> FrameTimecode:
        """The frame at `pts` (in `time_base` units) as a FrameTimecode from the video's first frame."""
        seconds = Fraction(pts) * time_base - self.start_s
        return FrameTimecode(Timecode(pts=max(0, round(seconds / time_base)), time_base=time_base), fps=self.rate)


def content_detector(params: ContentParams, threshold: float, min_scene_len: int,
                     filter_mode: FlashFilter.Mode = FlashFilter.Mode.MERGE) -> ContentDetector:
    """ContentDetector scoring frames with the parameters' weights and kernel, cutting at `threshold`."""
    return ContentDetector(threshold=threshold, min_scene_len=min_scene_len,
                           weights=ContentDetector.Components(*params.weights.components()),
                           kernel_size=params.kernel_size, filter_mode=filter_mode)


def flash_filter_mode(params: ContentParams) -> FlashFilter.Mode:
    """What ContentDetector does with a cut within the minimum length of the last."""
    return FlashFilter.Mode[params.filter_mode.upper()]


def build_detector(params: DetectorParams) -> SceneDetector:
    """The PySceneDetect detector the parameters describe."""
    match params:
        case ContentParams():
            return content_detector(params, params.threshold, params.min_scene_len_frames, flash_filter_mode(params))
        case AdaptiveParams():
            return AdaptiveDetector(adaptive_threshold=params.adaptive_threshold,
                                    min_scene_len=params.min_scene_len_frames, window_width=params.window_width,
                                    min_content_val=params.min_content_val,
                                    weights=ContentDetector.Components(*params.weights.components()),
                                    kernel_size=params.kernel_size)
        case HashParams():
            return HashDetector(threshold=params.threshold, size=params.size, lowpass=params.lowpass,
                                min_scene_len=params.min_scene_len_frames)
        case HistogramParams():
            return HistogramDetector(threshold=params.threshold, bins=params.bins,
                                     min_scene_len=params.min_scene_len_frames)
        case ThresholdParams():
            return ThresholdDetector(threshold=params.threshold, min_scene_len=params.min_scene_len_frames,
                                     fade_bias=params.fade_bias, add_final_scene=params.add_final_scene,
                                     method=ThresholdDetector.Method[params.method.upper()],
                                     min_out_length=params.min_out_length_frames)
    raise TypeError(f"no detector for {type(params).__name__}")


def detect_shots(video: VideoStream, params: HeimdexParams, clock: Clock, progress: Progress,
                 last_frame_s: float) -> tuple[list[float], dict[int, SceneTransition]]:
    """Every frame's time in seconds, and Heimdex's transitions by the frame (an index into them) each
    new shot begins at; the last frame lasts `last_frame_s`."""
    detector = ShotDetector(params, float(clock.rate))
    times: list[float] = []
    with video.open() as decoder:
        for pts, image in decoder.frames_from_start(Timeline(), reference_only=False):
            times.append(clock.timecode(pts, decoder.time_base).seconds)
            detector.add(image)
            progress.update(len(times))
    ends = [*times[1:], (times[-1] + last_frame_s) if times else 0.0]
    return times, {t.cut: SceneTransition(t.kind, t.first, t.last, round(times[t.first], 6), round(ends[t.last], 6))
                   for t in detector.transitions()}


def detect_every_frame(video: VideoStream, params: DetectorParams, clock: Clock,
                       progress: Progress) -> tuple[list[float], list[int]]:
    """Every frame's time in seconds, and the frames (indices into them) the detector cut at."""
    detector = build_detector(params)
    times: list[float] = []
    cuts: list[FrameTimecode] = []
    last: FrameTimecode | None = None
    with video.open() as decoder:
        for pts, image in decoder.frames_from_start(Timeline(), reference_only=False):
            last = clock.timecode(pts, decoder.time_base)
            times.append(last.seconds)
            cuts.extend(detector.process_frame(last, image))
            progress.update(len(times))
    if last is not None:
        cuts.extend(detector.post_process(last))
    return times, [_nearest(times, cut.seconds) for cut in cuts]


def _nearest(times: list[float], seconds: float) -> int:
    """The frame shown nearest `seconds` (ThresholdDetector places a cut by frame number, not by PTS)."""
    after = bisect_left(times, seconds)
    if after == 0:
        return 0
    if after == len(times) or seconds - times[after - 1] < times[after] - seconds:
        return after - 1
    return after
