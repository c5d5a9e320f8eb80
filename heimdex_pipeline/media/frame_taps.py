"""Taps on the scene pass's decode loops: what the other steps need of the frames it decodes anyway.

Every frame a decode loop of the scene pass decodes (the reference frames of the first pass, the
frames of the second look, every frame of the one-pass fallback or of a detector fed every frame)
goes through the tap as `tap(seconds, image)`: its time from the video's first frame and its small
BGR frame (`decoding.detection_size`). Frames come in display order within one loop, but the
second look runs in a thread of its own and the one-pass fallback may see frames again: taps lock,
and keep a frame's figures by its time.

- `TileTap` keeps, for each storyboard tile, the frame shown at the middle of its span when the
  pass decoded it, else the last decoded frame before the middle, else the first after, at most
  half a span from it (a frame of the tile's own span, as the storyboard's seeking path
  promises), and makes the sprite of them.
- `PictureTap` keeps each decoded frame's luma figures: its share of black pixels, as ffmpeg's
  `blackdetect` counts them, and its change from the frame decoded just before it, as
  `freezedetect`'s mean absolute frame difference (on luma, at the small size).

What they keep is the per-video intermediate `SharedFrames`, saved beside the sidecar
(`storage.layout.frames_key`) for the storyboard and QC steps; a step that finds it missing or made
for other settings decodes for itself.
"""

import io
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# The sprite's JPEG quality: about the size of what ffmpeg's mjpeg writes at q:v 3, as the storyboard's own sprites.
JPEG_QUALITY = 85
# A tap on a decode loop: the frame's time in seconds (on the stream's timeline, as the decoder gives
# it; from the first frame once `SharedFramesTap` has shifted it) and its small BGR image.
FrameTap = Callable[[float, np.ndarray], None]


def display_image(image: np.ndarray, rotation: int, size: tuple[int, int]) -> np.ndarray:
    """A decoded frame as it is shown: turned clockwise by `rotation` degrees and scaled to `size` (w, h)."""
    turns = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    if rotation in turns:
        image = cv2.rotate(image, turns[rotation])
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class TileTap:
    """Each tile's frame: the last decoded frame at or before its span's middle (the frame shown there, when
    the scene pass decoded it), else the first after it; within half the tile's span. For a storyboard whose
    tiles are `cells` (x, y) of `size` (w, h) in a sprite of `sprite_size` over `duration_ms`
    (`storyboard.tile_tap` makes it from the storyboard's plan)."""

    def __init__(self, middles: Sequence[float], span_s: float, cells: Sequence[tuple[int, int]],
                 size: tuple[int, int], sprite_size: tuple[int, int], rotation: int, duration_ms: int) -> None:
        # A microsecond over: a frame on a span's edge (times are rounded to microseconds) still counts.
        self.middles, self.max_distance_s = list(middles), span_s / 2 + 1e-6
        self._cells, self._size, self._sprite_size = list(cells), size, sprite_size
        self._rotation, self._duration_ms = rotation, duration_ms
        # Per tile, the last frame at or before its middle (the one shown there, when it was decoded) and
        # the first after it, each (time, image); the decoder's arrays are kept, scaled once at the end.
        self._before: list[tuple[float, np.ndarray] | None] = [None] * len(self.middles)
        self._after: list[tuple[float, np.ndarray] | None] = [None] * len(self.middles)
        self._lock = threading.Lock()

    def __call__(self, seconds: float, image: np.ndarray) -> None:
        after = bisect_left(self.middles, seconds)
        with self._lock:
            for index in (after - 1, after):
                if not 0 <= index < len(self.middles) or abs(seconds - self.middles[index]) > self.max_distance_s:
                    continue
                # A frame that starts right at the middle (to the microsecond) is the one shown there.
                if seconds <= self.middles[index] + 1e-6:
                    best = self._before[index]
                    if best is None or seconds > best[0]:
                        self._before[index] = (seconds, image)
                else:
                    best = self._after[index]
                    if best is None or seconds < best[0]:
                        self._after[index] = (seconds, image)

    def tiles(self) -> "Tiles | None":
        """The sprite of every tile's frame, and each frame's time; None unless every tile has one."""
        chosen = [before or after for before, after in zip(self._before, self._after, strict=True)]
        if any(best is None for best in chosen):
            return None
        (width, height), (sprite_width, sprite_height) = self._size, self._sprite_size
        # Cells past the last tile stay black, as ffmpeg's tile filter leaves them.
        sprite = np.zeros((sprite_height, sprite_width, 3), dtype=np.uint8)
        for (x, y), (_, image) in zip(self._cells, chosen, strict=True):  # type: ignore[misc]
            sprite[y:y + height, x:x + width] = display_image(image, self._rotation, self._size)
        ok, jpeg = cv2.imencode(".jpg", sprite, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return None
        return Tiles(jpeg.tobytes(), np.array([seconds for seconds, _ in chosen]), width, height,  # type: ignore[misc]
                     self._duration_ms)


class PictureTap:
    """Each decoded frame's share of black pixels and its change from the frame decoded before it."""

    def __init__(self, black_pixel_threshold: float) -> None:
        # blackdetect's pixel threshold on limited-range luma maps to this share of full range, where the
        # decoded BGR frames are (16 + pix_th x 219 in limited range is pix_th x 255 once expanded).
        self.black_pixel_threshold = black_pixel_threshold
        self._black_level = black_pixel_threshold * 255
        self._black: dict[float, float] = {}
        # (time before, time) -> mean absolute luma difference / 256, for frames one loop decoded in a row.
        self._change: dict[tuple[float, float], float] = {}
        self._last = threading.local()
        self._lock = threading.Lock()

    def __call__(self, seconds: float, image: np.ndarray) -> None:
        luma = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        black = float(np.count_nonzero(luma <= self._black_level)) / luma.size
        last: tuple[float, np.ndarray] | None = getattr(self._last, "frame", None)
        change = None
        if last is not None and last[0] < seconds and last[1].shape == luma.shape:
            change = float(cv2.absdiff(luma, last[1]).mean()) / 256
        self._last.frame = (seconds, luma)
        with self._lock:
            self._black[seconds] = black
            if change is not None:
                self._change[(last[0], seconds)] = change  # type: ignore[index]

    def pictures(self, frame_count: int) -> "Pictures":
        """The figures of every decoded frame in display order, out of the video's `frame_count` frames."""
        times = sorted(self._black)
        changes = [np.nan] + [self._change.get(pair, np.nan) for pair in zip(times, times[1:], strict=False)]
        return Pictures(seconds=np.array(times, dtype=np.float64),
                        black_share=np.array([self._black[t] for t in times], dtype=np.float32),
                        change=np.array(changes, dtype=np.float32), frame_count=frame_count,
                        black_pixel_threshold=self.black_pixel_threshold)


@dataclass
class Pictures:
    """Luma figures of the frames the scene pass decoded, in display order (`change`: from the frame before
    in this list, NaN where unknown), out of `frame_count` frames; `black_share` counts pixels at or below
    `black_pixel_threshold` of the luma range."""

    seconds: np.ndarray
    black_share: np.ndarray
    change: np.ndarray
    frame_count: int
    black_pixel_threshold: float


@dataclass
class Tiles:
    """Storyboard tiles from the scene pass: the sprite as JPEG, each tile's frame time, and the plan they were
    taken for (tile size, duration in ms; the count is that of the times)."""

    sprite_jpeg: bytes
    seconds: np.ndarray
    width: int
    height: int
    duration_ms: int

    def fits(self, count: int, width: int, height: int, duration_ms: int) -> bool:
        """Whether these are the tiles of a storyboard of `count` tiles of `width` x `height` over `duration_ms`."""
        return (len(self.seconds), self.width, self.height, self.duration_ms) == (count, width, height, duration_ms)


@dataclass
class SharedFrames:
    """What the scene pass keeps of its frames for the other steps: storyboard tiles and luma figures."""

    tiles: Tiles | None
    pictures: Pictures | None

    def to_bytes(self) -> bytes:
        """The intermediate as a compressed npz."""
        arrays: dict[str, np.ndarray] = {}
        if self.tiles is not None:
            t = self.tiles
            arrays |= {"sprite_jpeg": np.frombuffer(t.sprite_jpeg, dtype=np.uint8), "tile_seconds": t.seconds,
                       "tile_plan": np.array([t.width, t.height, t.duration_ms])}
        if self.pictures is not None:
            p = self.pictures
            arrays |= {"seconds": p.seconds, "black_share": p.black_share, "change": p.change,
                       "frame_count": np.array(p.frame_count), "black_pixel_threshold": np.array(p.black_pixel_threshold)}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "SharedFrames":
        """The intermediate `to_bytes` wrote; ValueError when it is none."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, EOFError) as error:
            raise ValueError(f"not a frames intermediate: {error}") from None
        tiles = pictures = None
        if "sprite_jpeg" in arrays:
            width, height, duration_ms = (int(v) for v in arrays["tile_plan"])
            tiles = Tiles(arrays["sprite_jpeg"].tobytes(), arrays["tile_seconds"], width, height, duration_ms)
        if "seconds" in arrays:
            pictures = Pictures(arrays["seconds"], arrays["black_share"], arrays["change"],
                                int(arrays["frame_count"]), float(arrays["black_pixel_threshold"]))
        return cls(tiles, pictures)


class SharedFramesTap:
    """The scene pass's tap: frames timed from the video's first frame (`start_s` on the stream's timeline)
    fed to the tile and picture taps; `shared` is what they kept."""

    def __init__(self, start_s: float, tiles: TileTap | None, pictures: PictureTap | None) -> None:
        self._start_s, self._tiles, self._pictures = start_s, tiles, pictures

    def __call__(self, stream_s: float, image: np.ndarray) -> None:
        seconds = stream_s - self._start_s
        if self._tiles is not None:
            self._tiles(seconds, image)
        if self._pictures is not None:
            self._pictures(seconds, image)

    def shared(self, frame_count: int) -> SharedFrames:
        """The intermediate, for a video of `frame_count` frames."""
        return SharedFrames(tiles=self._tiles.tiles() if self._tiles is not None else None,
                            pictures=self._pictures.pictures(frame_count) if self._pictures is not None else None)
