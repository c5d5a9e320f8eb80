"""Technical quality control of a video: loudness, silence, black and frozen pictures, interlacing.

On its own, everything is measured in one ffmpeg pass over the file, each measure by one of FFmpeg's
own filters, whose findings ffmpeg logs:

- loudness per EBU R128 / ITU-R BS.1770-4 (`ebur128`, true peak by 4x oversampling): integrated
  loudness (LUFS), loudness range (LU) and true peak (dBTP) of the first audio stream;
- silence (`silencedetect`): the audio below a level for at least a minimum length;
- black pictures (`blackdetect`) and frozen ones (`freezedetect`);
- interlacing (`idet`): each frame's lines compared with its fields', not the container's flag.

The picture is decoded once, with the loop filter skipped (what the scene pass does too: deblocking
changes neither a black frame nor a frozen one), and narrowed to at most 320 pixels wide before
the measures, keeping every line: `idet` compares the lines of the two fields, which a vertical
scale would blend. Times are seconds from the video's first frame, as the scenes'; audio times on
the same timeline, so a silence lines up with the picture.

Given the scene pass's luma figures (`frame_taps.Pictures`: the frames it decoded anyway), the
picture is not decoded again for black and frozen stretches: they are read from those figures with
blackdetect's and freezedetect's rules (`black_spans`, `freeze_spans`), and the ffmpeg pass decodes
the audio alone (`-vn`) and, for `idet`, a bounded sample of the picture: one window of
`IDET_WINDOW_S` every `IDET_WINDOW_EVERY_S`, at most `IDET_WINDOWS`, spread over the video, each
starting at a keyframe (nothing decoded to reach it).
The frames the scene pass skipped (those no other frame is predicted from) take the state of the
frames around them: a boundary is exact where the pass decoded every frame, else within the run of
frames it skipped there (`pictures` in the report says how many frames were measured).
"""

import functools
import math
import re
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from heimdex_pipeline.core.settings import PipelineSettings, get_settings
from heimdex_pipeline.media.limits import MediaLimits, current_limits
from heimdex_pipeline.media.tools import (
    FFMPEG,
    input_args,
    input_url,
    require_file,
    run_tool_logged,
    source_name,
)

if TYPE_CHECKING:  # NumPy and OpenCV load in the steps that decode, not with the definitions
    from heimdex_pipeline.media.frame_taps import Pictures

# The width the picture is narrowed to before it is measured (every line kept).
MEASURE_WIDTH = 320
# ebur128's integrated loudness when nothing passes its absolute gate (BS.1770-4: -70 LUFS).
ABSOLUTE_GATE_LUFS = -70.0
# A video is interlaced when at least this share of its frames shows combing between its fields: a
# telecined one (3:2 pulldown) combs 2 frames in 5, a progressive one a few in a hundred (fine
# horizontal detail), most frames of either being undecided.
INTERLACED_SHARE = 1 / 3
# idet's sample beside the scene pass: a window of the picture every IDET_WINDOW_EVERY_S, at most
# IDET_WINDOWS, spread over the video (the whole of a video of at most IDET_WHOLE_S). Each starts at a
# keyframe, and x264 puts one every 250 frames by default: windows closer than that would read the same
# frames.
IDET_WINDOWS = 3
IDET_WINDOW_S = 0.4
IDET_WINDOW_EVERY_S = 10.0
IDET_WHOLE_S = 2.0


class QcThresholds(BaseModel):
    """What counts as silence, black and frozen (the settings hold the defaults: `thresholds_from`)."""

    silence_db: float = Field(description="audio below this level (dBFS) is silence")
    silence_min_s: float = Field(description="shortest silence reported")
    black_min_s: float = Field(description="shortest black stretch reported")
    black_pixel_threshold: float = Field(description="luma (share of its range) below which a pixel is black")
    black_picture_ratio: float = Field(description="share of black pixels that makes a picture black")
    freeze_noise_db: float = Field(description="difference between frames (dB) below which the picture is unchanged")
    freeze_min_s: float = Field(description="shortest frozen stretch reported")


def thresholds_from(settings: PipelineSettings) -> QcThresholds:
    """The thresholds the given settings set (`HEIMDEX_QC_*`)."""
    return QcThresholds(**{name: getattr(settings, f"qc_{name}") for name in QcThresholds.model_fields})


class Tool(BaseModel):
    """What measured a figure: FFmpeg's filter, and the versions of ffmpeg and of its libavfilter; or
    Heimdex's reading of the scene pass's frames with that filter's rule (library `heimdex`)."""

    library: Literal["libavfilter", "heimdex"] = "libavfilter"
    filter: str
    version: str = Field(description="libavfilter's version, or Heimdex's")
    ffmpeg: str = Field(description="the ffmpeg build's version (with `heimdex`: the one beside the scene pass)")


class AudioStream(BaseModel):
    """The audio stream measured: the file's first."""

    index: int
    codec: str | None
    channels: int | None
    sample_rate: float | None
    duration_s: float | None = Field(description="as the container announces it; null when it does not")


class Loudness(BaseModel):
    """EBU R128 / ITU-R BS.1770-4 loudness of the whole stream (gated)."""

    integrated_lufs: float
    range_lu: float
    true_peak_dbtp: float | None = Field(description="null for a stream of digital silence (-inf)")
    measured_by: Tool


class Segment(BaseModel):
    """A stretch of the video, `[start_s, end_s)` in seconds from the first frame."""

    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    duration_s: float = Field(ge=0)


class PictureSegment(Segment):
    """A stretch of pictures, also in frames at the video's frame rate (`end_frame` exclusive)."""

    start_frame: int = Field(ge=0)
    end_frame: int = Field(ge=0)


class SilenceSegment(Segment):
    """A stretch of silence; `no_audio` where the audio stream ended before the picture."""

    no_audio: bool = False


class Interlacing(BaseModel):
    """How the picture is scanned, from idet's verdict on each frame."""

    scan: Literal["progressive", "tff", "bff", "undetermined"] = Field(
        description="tff / bff: interlaced, top or bottom field first; undetermined: no frame measured")
    frames: dict[str, int] = Field(description="idet's single-frame verdicts: tff, bff, progressive, undetermined")
    measured_by: Tool
    sampled_windows: int | None = Field(
        default=None, description="idet measured this many short windows of the picture, each from a keyframe; "
                                  "null: every frame")


class PictureSource(BaseModel):
    """Where the black and frozen stretches were read: the scene pass's decoded frames, or an ffmpeg pass."""

    source: Literal["scene_pass", "ffmpeg"]
    frames: int | None = Field(default=None, description="the video's frames (scene_pass)")
    frames_measured: int | None = Field(
        default=None, description="frames the scene pass decoded and measured; the others take their neighbours' "
                                  "state, so a boundary is within the frames skipped there")


class QcReport(BaseModel):
    """The technical quality control of one video: every figure and the thresholds used."""

    duration_s: float = Field(ge=0, description="the video's, from the probe")
    fps: float | None
    audio: AudioStream | None = Field(description="null: no audio stream")
    loudness: Loudness | None
    loudness_unavailable: str | None = Field(default=None, description="why loudness is null")
    silence: list[SilenceSegment]
    black: list[PictureSegment]
    freeze: list[PictureSegment]
    interlacing: Interlacing
    thresholds: QcThresholds
    measured_by: dict[str, Tool] = Field(description="the filter of each measure: silence, black, freeze")
    pictures: PictureSource | None = Field(default=None, description="where black and freeze were measured "
                                                                     "(null in documents of version 1.0: ffmpeg)")


@functools.lru_cache
def ffmpeg_versions() -> tuple[str, str]:
    """The versions of the ffmpeg on the PATH and of its libavfilter, as `ffmpeg -version` prints them."""
    text = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True, check=True).stdout
    build = re.search(r"ffmpeg version (\S+)", text)
    lavfi = re.search(r"libavfilter\s+(\d+)\.\s*(\d+)\.\s*(\d+)", text)
    return (build.group(1) if build else "unknown", ".".join(lavfi.groups()) if lavfi else "unknown")


def _tool(filter_name: str) -> Tool:
    build, lavfi = ffmpeg_versions()
    return Tool(filter=filter_name, version=lavfi, ffmpeg=build)


def _own_tool(filter_name: str) -> Tool:
    """The rule of FFmpeg's `filter_name` applied by Heimdex to the scene pass's frames."""
    return Tool(library="heimdex", filter=filter_name, version=version("heimdex"), ffmpeg=ffmpeg_versions()[0])


def first_audio(probe: dict[str, Any]) -> dict[str, Any] | None:
    """The probe's first audio stream, None without one."""
    return next((s for s in probe["streams"] if s.get("codec_type") == "audio"), None)


def qc_graph(probe: dict[str, Any], thresholds: QcThresholds) -> tuple[str, list[str]]:
    """The filter graph of the pass, and its outputs to map: the picture's measures, and the audio's
    when there is an audio stream."""
    t = thresholds
    video = (
        f"[0:{probe['video_stream_index']}]"
        f"scale=w='trunc(min(iw,{MEASURE_WIDTH})/2)*2':h=ih:flags=fast_bilinear,idet,"
        # One white frame after the last: a black or frozen stretch that lasts to the end ends on it, at
        # the video's end, where the filters would otherwise give the last frame's start (or nothing).
        "tpad=stop=1:color=white,"
        f"blackdetect=d={t.black_min_s}:pix_th={t.black_pixel_threshold}:pic_th={t.black_picture_ratio},"
        f"freezedetect=n={t.freeze_noise_db}dB:d={t.freeze_min_s}[v]"
    )
    audio = first_audio(probe)
    if audio is None:
        return video, ["[v]"]
    return f"{video};{_audio_filter(audio, t)}", ["[v]", "[a]"]


def _audio_filter(audio: dict[str, Any], thresholds: QcThresholds, input_index: int = 0) -> str:
    t = thresholds
    # framelog=verbose: the per-100 ms lines stay out of the log; the summary is logged at info.
    return (f"[{input_index}:{audio['index']}]ebur128=peak=true:framelog=verbose,"
            f"silencedetect=n={t.silence_db}dB:d={t.silence_min_s}[a]")


def idet_windows(duration_s: float) -> list[float] | None:
    """Where idet's sample windows start (seconds from the file's start), spread evenly; None: the video is
    short enough to measure whole."""
    if duration_s <= IDET_WHOLE_S:
        return None
    count = max(1, min(IDET_WINDOWS, int(duration_s // IDET_WINDOW_EVERY_S)))
    return [duration_s * (k + 1) / (count + 1) - IDET_WINDOW_S / 2 for k in range(count)]


def sampled_args(probe: dict[str, Any], thresholds: QcThresholds, limits: MediaLimits,
                 path: Path | str) -> list[str]:
    """The ffmpeg inputs, graph and outputs of the pass beside the scene pass: the audio's measures on the
    audio alone, and idet on a sample of the picture (`idet_windows`) with the loop filter skipped."""
    opened = [*input_args(limits, path)]
    url = input_url(path)
    inputs, chains, outputs = [], [], []
    audio = first_audio(probe)
    if audio is not None:
        inputs += [*opened, "-vn", "-i", url]
        chains.append(_audio_filter(audio, thresholds))
        outputs.append("[a]")
    windows = idet_windows(probe["duration_s"])
    for k, start in enumerate(windows or [None]):
        index = len(outputs)
        # A window starts at the keyframe before its start (-noaccurate_seek): nothing is decoded to reach it.
        where = ["-noaccurate_seek", "-ss", f"{start:.3f}", "-t", f"{IDET_WINDOW_S}"] if start is not None else []
        inputs += [*opened, "-an", "-skip_loop_filter", "all", *where, "-i", url]
        chains.append(f"[{index}:{probe['video_stream_index']}]"
                      f"scale=w='trunc(min(iw,{MEASURE_WIDTH})/2)*2':h=ih:flags=fast_bilinear,idet[v{k}]")
        outputs.append(f"[v{k}]")
    return [*inputs, "-filter_complex", ";".join(chains), *(arg for label in outputs for arg in ("-map", label)),
            "-f", "null", "-"]


def black_spans(pictures: "Pictures", thresholds: QcThresholds, duration_s: float) -> list[tuple[float, float]]:
    """blackdetect's rule on the scene pass's frames: runs of pictures with at least `black_picture_ratio` of
    black pixels, from the first such frame to the next frame that is not (the video's end after the last),
    at least `black_min_s` long."""
    black = pictures.black_share >= thresholds.black_picture_ratio
    spans, start = [], None
    for seconds, is_black in zip(pictures.seconds.tolist(), black.tolist(), strict=True):
        if is_black and start is None:
            start = seconds
        elif not is_black and start is not None:
            spans.append((start, seconds))
            start = None
    if start is not None:
        spans.append((start, duration_s))
    return [(a, b) for a, b in spans if b - a >= thresholds.black_min_s]


def freeze_spans(pictures: "Pictures", thresholds: QcThresholds, frame_s: float) -> list[tuple[float, float | None]]:
    """freezedetect's rule on the scene pass's frames (`frame_s` apart when every one is measured): a picture
    within the noise level of the one before (mean absolute luma difference) for at least `freeze_min_s`,
    from its first frame to the first frame that changed (None: the video's end). Where frames were skipped,
    the stretch starts just after the last frame measured before it (it may have frozen on a skipped frame)
    and lasts to the first frame measured changed. freezedetect compares each frame with the stretch's
    first, not with the one before: a drift slower than the noise per frame counts as frozen here."""
    noise = 10 ** (thresholds.freeze_noise_db / 20)
    times = pictures.seconds.tolist()
    # NaN (no difference known) is a change; one past the last frame ends the last stretch.
    unchanged = [*(pictures.change <= noise).tolist(), False]
    spans: list[tuple[float, float | None]] = []
    start, held = (times[0] if times else 0.0), 0
    for i in range(1, len(times) + 1):
        if unchanged[i]:
            held += 1
            continue
        # The last frame the picture may have stayed on: the one before the change (skipped or not).
        last = times[i] - frame_s if i < len(times) else times[-1]
        if held and last - start >= thresholds.freeze_min_s - 1e-9:
            spans.append((start, times[i] if i < len(times) else None))
        if i < len(times):
            start, held = times[i - 1] + frame_s, 0
    return spans


def _number(text: str) -> float | None:
    return None if "inf" in text or "nan" in text else float(text)


_LOUDNESS = re.compile(
    r"Integrated loudness:\s+I:\s+(\S+) LUFS.*?Loudness range:\s+LRA:\s+(\S+) LU.*?True peak:\s+Peak:\s+(\S+) dBFS",
    re.S)
_SILENCE = re.compile(r"silence_(start|end): (\S+)")
_BLACK = re.compile(r"black_start:(\S+) black_end:(\S+)")
_FREEZE = re.compile(r"lavfi\.freezedetect\.freeze_(start|end): (\S+)")
_IDET = re.compile(r"Single frame detection: TFF:\s*(\d+) BFF:\s*(\d+) Progressive:\s*(\d+) Undetermined:\s*(\d+)")


def parse_loudness(log: str) -> Loudness | None:
    """ebur128's summary (the last one: a graph configured again logs one per configuration)."""
    found = _LOUDNESS.findall(log)
    if not found:
        return None
    integrated, loudness_range, peak = found[-1]
    value = _number(integrated)
    if value is None or value <= ABSOLUTE_GATE_LUFS:
        return None
    return Loudness(integrated_lufs=value, range_lu=float(loudness_range), true_peak_dbtp=_number(peak),
                    measured_by=_tool("ebur128"))


def _pairs(events: list[tuple[str, str]]) -> list[tuple[float, float | None]]:
    """(start, end) of each stretch from a filter's start and end events; an end missing at the end of
    the stream is None."""
    spans: list[tuple[float, float | None]] = []
    start: float | None = None
    for kind, value in events:
        if kind == "start":
            start = float(value)
        elif start is not None:
            spans.append((start, float(value)))
            start = None
    if start is not None:
        spans.append((start, None))
    return spans


def _span(start: float, end: float) -> dict[str, float]:
    return {"start_s": round(start, 6), "end_s": round(end, 6), "duration_s": round(end - start, 6)}


def _picture_segments(spans: list[tuple[float, float | None]], origin: float, probe: dict[str, Any],
                      ) -> list[PictureSegment]:
    """Spans on ffmpeg's timeline as segments from the first frame, in seconds and frames; one without an
    end lasts to the video's."""
    duration, fps = probe["duration_s"], probe.get("fps") or 25.0
    segments = []
    for start, end in spans:
        start = max(0.0, start - origin)
        end = duration if end is None else min(duration, end - origin)
        segments.append(PictureSegment(**_span(start, end), start_frame=round(start * fps),
                                       end_frame=round(end * fps)))
    return segments


def parse_interlacing(log: str) -> Interlacing:
    """idet's single-frame verdicts, summed over its summaries, and the scan they make."""
    tff = bff = progressive = undetermined = 0
    for counts in _IDET.findall(log):
        a, b, c, d = map(int, counts)
        tff, bff, progressive, undetermined = tff + a, bff + b, progressive + c, undetermined + d
    total = tff + bff + progressive + undetermined
    if total == 0:
        scan = "undetermined"
    elif tff + bff >= INTERLACED_SHARE * total:
        scan = "tff" if tff >= bff else "bff"
    else:
        scan = "progressive"
    return Interlacing(scan=scan, frames={"tff": tff, "bff": bff, "progressive": progressive,
                                         "undetermined": undetermined}, measured_by=_tool("idet"))


def parse_report(log: str, probe: dict[str, Any], thresholds: QcThresholds,
                 pictures: "Pictures | None" = None) -> QcReport:
    """The QC report from the log of the pass over a video of this probe: `qc_graph`'s, or, with the scene
    pass's `pictures`, `sampled_args`' (black and freeze then read from the pictures)."""
    # ffmpeg counts every stream from the file's start; the scenes, from the video's first frame.
    origin = probe.get("video_start_s", 0.0) - probe.get("format_start_s", 0.0)
    duration = probe["duration_s"]
    audio = first_audio(probe)
    stream = None if audio is None else AudioStream(
        index=audio["index"], codec=audio.get("codec"), channels=audio.get("channels"),
        sample_rate=audio.get("sample_rate"), duration_s=audio.get("duration_s"))
    loudness, unavailable, silence = None, "no audio stream", []
    if stream is not None:
        loudness = parse_loudness(log)
        unavailable = None if loudness else "the audio is silent: nothing passes BS.1770's absolute gate (-70 LUFS)"
        audio_end = min(duration, stream.duration_s) if stream.duration_s else duration
        for start, end in _pairs(_SILENCE.findall(log)):
            start, end = max(0.0, start - origin), audio_end if end is None else min(audio_end, end - origin)
            silence.append(SilenceSegment(**_span(start, max(start, end))))
        if duration - audio_end >= thresholds.silence_min_s:
            # The picture goes on without sound: heard as silence, though no filter saw it.
            if silence and silence[-1].end_s >= audio_end - 0.01:
                start = silence.pop().start_s
            else:
                start = audio_end
            silence.append(SilenceSegment(**_span(start, duration), no_audio=True))
    interlacing = parse_interlacing(log)
    if pictures is None:
        black = _picture_segments([(float(a), float(b)) for a, b in _BLACK.findall(log)], origin, probe)
        freeze = _picture_segments(_pairs(_FREEZE.findall(log)), origin, probe)
        source, black_tool, freeze_tool = PictureSource(source="ffmpeg"), _tool("blackdetect"), _tool("freezedetect")
    else:
        # The scene pass's times are already from the video's first frame.
        black = _picture_segments(list(black_spans(pictures, thresholds, duration)), 0.0, probe)
        freeze = _picture_segments(freeze_spans(pictures, thresholds, 1 / (probe.get("fps") or 25.0)), 0.0, probe)
        source = PictureSource(source="scene_pass", frames=pictures.frame_count, frames_measured=len(pictures.seconds))
        black_tool, freeze_tool = _own_tool("blackdetect"), _own_tool("freezedetect")
        windows = idet_windows(duration)
        interlacing.sampled_windows = None if windows is None else len(windows)
    return QcReport(duration_s=duration, fps=probe.get("fps"), audio=stream, loudness=loudness,
                    loudness_unavailable=unavailable, silence=silence, black=black, freeze=freeze,
                    interlacing=interlacing, thresholds=thresholds,
                    measured_by={"silence": _tool("silencedetect"), "black": black_tool, "freeze": freeze_tool},
                    pictures=source)


def usable(pictures: "Pictures | None", thresholds: QcThresholds) -> bool:
    """Whether the scene pass's figures answer for these thresholds (its black share counts one pixel level)."""
    return (pictures is not None and len(pictures.seconds) > 0
            and math.isclose(pictures.black_pixel_threshold, thresholds.black_pixel_threshold))


def measure_qc(path: Path | str, probe: dict[str, Any], thresholds: QcThresholds | None = None,
               limits: MediaLimits | None = None, pictures: "Pictures | None" = None) -> QcReport:
    """Measure a probed video's loudness, silences, black and frozen stretches and interlacing with
    `thresholds` (by default the settings'), stopped at the video's decoding deadline (`limits`, by default
    the settings'): in one ffmpeg pass, or, given the scene pass's `pictures` made for these thresholds,
    from them and an ffmpeg pass over the audio and a sample of the picture."""
    thresholds = thresholds or thresholds_from(get_settings())
    limits = limits or current_limits()
    require_file(path)
    limits.check(probe, source_name(path))
    shared = pictures if usable(pictures, thresholds) else None
    if shared is not None:
        measures = sampled_args(probe, thresholds, limits, path)
    else:
        graph, outputs = qc_graph(probe, thresholds)
        measures = [*input_args(limits, path), "-skip_loop_filter", "all", "-i", input_url(path),
                    "-filter_complex", graph, *(arg for label in outputs for arg in ("-map", label)), "-f", "null", "-"]
    args = [FFMPEG, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", *measures]
    _, log = run_tool_logged("ffmpeg", args, path, limits.decoding_deadline(probe))
    return parse_report(log, probe, thresholds, shared)
