"""Frame-level decoding with PyAV, for the detector: small BGR frames and their timestamps.

The decoder can skip whole frames: `reference_only` leaves out the frames no other frame is
predicted from, which the decoder then never has to reconstruct. A stream opened `fast`
also skips the in-loop deblocking filter (a fifth of H.264's decoding work) and scales with
swscale straight to the working width; that moves a frame's content score by up to 7.6
against PySceneDetect's (`benchmarks/loop_filter.py`). Otherwise frames are made as
PySceneDetect's OpenCV backend makes them (whole decode, packed BGR, OpenCV's bilinear
resize), which gives its scores: exactly on its test media, but for 0.08 on the rotated file.

Files are opened as ffprobe and ffmpeg open them (`heimdex_pipeline.media.tools`): only
video containers, only local files, frames above the size limit refused by the decoder;
every packet is read before the stream's deadline or not at all.

A stream may carry a tap (`frame_taps`): every frame a decoder of it hands out goes through it
too, whichever loop asked for it, so other steps can keep what they need of the frames.
"""

from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from heimdex_pipeline.media.detector import DETECTION_WIDTH
from heimdex_pipeline.media.errors import MediaLimitError, TransientMediaError, UnreadableMediaError
from heimdex_pipeline.media.limits import Deadline, MediaLimits
from heimdex_pipeline.media.tools import FORMAT_OPTIONS, decoder_options, input_url, unsupported


def detection_size(width: int, height: int) -> tuple[int, int]:
    """The size frames are analysed at: DETECTION_WIDTH wide, aspect kept, never upscaled."""
    factor = max(1.0, width / DETECTION_WIDTH)
    return max(1, round(width / factor)), max(1, round(height / factor))


def configure_decoder(context: av.codec.context.CodecContext, fast: bool, limits: MediaLimits) -> None:
    """Set up a video stream's decoder as the scene pass decodes: frame threads, the size limit, and with
    `fast` H.264's loop filter skipped."""
    # Frame threads are what makes H.264 decoding scale with the cores.
    context.thread_type = "AUTO"
    context.options = {**({"skip_loop_filter": "all"} if fast else {}), **decoder_options(limits)}


def open_container(path: Path, limits: MediaLimits, timeout_s: float) -> av.container.InputContainer:
    """`path` opened as the pipeline opens media: whitelisted formats and protocols only, `limits`, and
    `timeout_s` to open it and find its streams."""
    return av.open(input_url(path), container_options=FORMAT_OPTIONS, options=decoder_options(limits),
                   timeout=(max(0.001, timeout_s), None))


@dataclass
class Timeline:
    """Every frame's presentation timestamp in display order, and the keyframes', from the demuxer."""

    pts: list[int] = field(default_factory=list)
    keyframes: list[int] = field(default_factory=list)
    # Packets without a timestamp (raw elementary streams) leave the timeline incomplete.
    complete: bool = True

    def add(self, pts: int, keyframe: bool) -> None:
        """Record one packet's frame; packets come in decoding order, so keep the lists sorted."""
        insort(self.pts, pts)
        if keyframe:
            insort(self.keyframes, pts)

    def count_between(self, first: int, last: int) -> int:
        """How many frames lie strictly between two timestamps."""
        return bisect_left(self.pts, last) - bisect_right(self.pts, first)

    def keyframe_before(self, pts: int) -> int:
        """The last keyframe at or before `pts`, or `pts` itself when there is none."""
        before = bisect_right(self.keyframes, pts) - 1
        return self.keyframes[before] if before >= 0 else pts


@dataclass(frozen=True)
class VideoStream:
    """A video stream to decode: the file, the stream's index in it (None: the first video
    stream), the limits it is read under and the deadline every decoder of it must meet."""

    path: Path
    index: int | None
    limits: MediaLimits
    deadline: Deadline
    # Loop filter skipped and swscale's scaling: faster, and the frames differ a little from PySceneDetect's.
    fast: bool = False
    # Told every frame handed out: its time in seconds on the stream's timeline, and the small frame.
    tap: Callable[[float, np.ndarray], None] | None = None

    def open(self) -> "VideoDecoder":
        """A decoder of this stream, to use as a context manager."""
        return VideoDecoder(self)


class VideoDecoder:
    """One video stream of a file, decoded to small BGR frames; use as a context manager."""

    def __init__(self, video: VideoStream) -> None:
        self.path, stream_index, self._deadline, self._fast = video.path, video.index, video.deadline, video.fast
        self._tap = video.tap
        self._deadline.check(f"decoding {self.path.name}")
        self._limits = video.limits
        try:
            # The open timeout bounds opening and finding the streams; reads are checked per packet.
            self._container = open_container(self.path, video.limits, self._deadline.remaining())
        except av.FFmpegError as error:  # a missing file too: PyAV's FileNotFoundError is one
            raise self._error(error, opening=True) from error
        streams = [stream for stream in self._container.streams.video
                   if stream_index is None or stream.index == stream_index]
        if not streams:
            self._container.close()
            raise UnreadableMediaError(f"{self.path.name} has no video stream" + (
                f" at index {stream_index}" if stream_index is not None else ""))
        self._stream = streams[0]
        context = self._stream.codec_context
        configure_decoder(context, self._fast, video.limits)
        self.time_base = Fraction(self._stream.time_base or Fraction(1, 90_000))
        self.width, self.height = detection_size(context.width, context.height)
        # Kept, so that its swscale context is made once, not for every frame.
        self._scaler = VideoReformatter()
        # Where `span` stands: the packets still to decode, frames decoded and not yet
        # handed out, and the PTS of the last frame handed out.
        self._ahead: Iterator[av.Packet] = iter(())
        self._out: deque[tuple[int, av.VideoFrame]] = deque()
        self.position: int | None = None

    def __enter__(self) -> "VideoDecoder":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._container.close()

    def frames_from_start(self, timeline: Timeline, reference_only: bool) -> Iterator[tuple[int, np.ndarray]]:
        """Decode from the start, filling `timeline` from every packet on the way."""
        self._skip(reference_only)
        for packet in self._packets():
            if packet.size and not packet.is_discard:
                if packet.pts is None:
                    timeline.complete = False
                else:
                    timeline.add(packet.pts, packet.is_keyframe)
            for pts, frame in self._decoded(packet):
                yield pts, self._tapped(pts, frame)

    def seek(self, keyframe: int) -> None:
        """Go back or ahead to the keyframe at or before `keyframe` (a PTS); `span` decodes on from there."""
        self._container.seek(keyframe, stream=self._stream, backward=True)
        self._ahead = self._packets()
        self._out.clear()
        self.position = None

    def span(self, first: int, last: int) -> Iterator[tuple[int, np.ndarray]]:
        """Every frame from PTS `first` to `last`, decoding on from where the last span stopped.

        Only reference frames are decoded up to `first`. The frames a reference-only pass
        leaves out are coded after the reference frames around them, so every frame of the
        span comes out once the first packet at or after `first` is decoded whole; the
        decoder stops as soon as the frame at `last` has come out.
        """
        whole = False
        while True:
            while self._out:
                pts, frame = self._out.popleft()
                self.position = pts
                if first <= pts <= last:
                    yield pts, self._tapped(pts, frame)
                if pts >= last:
                    return
            packet = next(self._ahead, None)
            if packet is None:
                return
            whole = whole or (packet.pts is not None and packet.pts >= first)
            self._skip(reference_only=not whole)
            self._out.extend(self._decoded(packet))

    def _skip(self, reference_only: bool) -> None:
        self._stream.codec_context.skip_frame = "NONREF" if reference_only else "DEFAULT"

    def _packets(self) -> Iterator[av.Packet]:
        try:
            for packet in self._container.demux(self._stream):
                self._deadline.check(f"decoding {self.path.name}")
                yield packet
        except av.FFmpegError as error:
            raise self._error(error) from error

    def _decoded(self, packet: av.Packet) -> Iterator[tuple[int, av.VideoFrame]]:
        try:
            decoded = packet.decode()
        except av.InvalidDataError:
            # A damaged packet costs its own frame, as with ffmpeg; the timeline shows the hole.
            return
        except av.FFmpegError as error:
            raise self._error(error) from error
        for frame in decoded:
            if frame.pts is not None:
                yield frame.pts, frame

    def _tapped(self, pts: int, frame: av.VideoFrame) -> np.ndarray:
        """The small frame, once the stream's tap has seen it."""
        image = self._small(frame)
        if self._tap is not None:
            self._tap(float(pts * self.time_base), image)
        return image

    def _small(self, frame: av.VideoFrame) -> np.ndarray:
        if not self._fast:
            image = frame.to_ndarray(format="bgr24")
            if (self.width, self.height) == (image.shape[1], image.shape[0]):
                return image
            return cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        # Planar RGB, not packed BGR: against scaling in YUV 4:4:4 first, swscale's packed
        # path was up to 192 levels off on testvideo.mp4 (dithered near-black pixels turn
        # into false hues, which ContentDetector reads as cuts on fades); planar, 2 levels.
        small = self._scaler.reformat(frame, self.width, self.height, "gbrp",
                                      interpolation=Interpolation.FAST_BILINEAR, threads=1)
        return cv2.cvtColor(small.to_ndarray(), cv2.COLOR_RGB2BGR)

    def _error(self, error: av.FFmpegError, opening: bool = False) -> Exception:
        """Transient when the file is gone (an upload mid-rename), else the input is unreadable.

        libavformat refuses a format outside the whitelist, and libavcodec a frame above
        `max_pixels`, with EINVAL (ArgumentError); the message names no path.
        """
        name = self.path.name
        if not self.path.is_file():
            return TransientMediaError(f"source file is missing: {name}")
        self._deadline.check(f"decoding {name}")  # the open timeout interrupted it
        if isinstance(error, av.ArgumentError):
            if opening:
                return unsupported(self.path)
            return MediaLimitError(f"cannot decode {name}: a frame is invalid or above the limit of "
                                   f"{self._limits.max_frame_pixels} pixels")
        return UnreadableMediaError(f"cannot decode {name}: {error.strerror}")
