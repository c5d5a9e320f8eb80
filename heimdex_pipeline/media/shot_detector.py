"""Heimdex's shot detector: hard cuts and gradual transitions (fades, dissolves, wipes), flashes aside.

Fed every frame in display order (any decode loop can feed it), it keeps a few numbers per frame
and a short ring of tiny thumbnails, and names the boundaries once the video is over:

- a hard cut is a frame whose change from the one before stands out from its neighbours' changes
  (as AdaptiveDetector's ratio) and does not come back: when the picture before the change is
  seen again within a few frames (or the picture after it was seen just before), it was a flash
  or a strobe, not a cut;
- a fade is a short run of blank frames (near-black or near-white, with almost no detail), the
  frames on each side ramping to and from it;
- a dissolve or a wipe is a frame that lies between two frames some way before and after it
  which differ a lot: a dissolve's frame is their blend (one share of each, fitted), a wipe's
  has each part equal to one of them. Motion inside a shot is neither: a moved picture is no
  blend of the pictures around it.

The window is several widths at once (a tenth of a second to a second), so short and long
transitions are seen alike; distances are taken between thumbnails THUMB_WIDTH pixels wide,
whose averaging also removes grain.
"""

from array import array
from dataclasses import dataclass

import cv2
import numpy as np

from heimdex_pipeline.media.detector import HeimdexParams

# Thumbnails this wide (aspect kept) carry every distance; grain averages out at this size.
THUMB_WIDTH = 32
# Every frame's signature, kept for the whole video to tell whether a picture came back: a
# thumbnail this wide, 8-bit (about 120 bytes a frame).
SIGNATURE_WIDTH = 8
# Half-widths of the gradual windows, in seconds (at least 2 frames each).
SCALES_S = (0.08, 0.16, 0.32, 0.64, 0.9)
# Frames whose features numpy takes together.
BATCH = 64
# A dissolve's fitted share of the frame after, or a wipe's share of pixels from it, at the
# transition's middle frame: far from 0 and 1, where a frame is just one side of a hard cut.
MIDDLE_SHARE = (0.2, 0.8)
# A gradual transition's frames: those whose fitted share of the side after lies within this
# much of 0 and 1 belong to a side.
EDGE_SHARE = 0.03
# Least step of a fade's ramp, as a share of the luma deviation.
FADE_STEP = 0.02


@dataclass(frozen=True)
class Transition:
    """A shot boundary: its `kind` (hard, fade-black, fade-white, dissolve, wipe), the first and last
    frames that change (equal for a hard cut), and `cut`, the first frame of the new shot."""

    kind: str
    first: int
    last: int
    cut: int


class ShotDetector:
    """Heimdex's detector: `add` every frame in display order, then read `transitions()`."""

    def __init__(self, params: HeimdexParams, fps: float) -> None:
        self._params = params
        self._scales = sorted({max(2, round(s * fps)) for s in SCALES_S})
        self._second = max(1, round(fps))
        # The ring holds the widest window and a batch: features are taken BATCH frames at a time, with
        # numpy working on the whole batch at once (one frame at a time, its calls cost more than its sums).
        self._ring_len = 2 * self._scales[-1] + BATCH
        self._ring: np.ndarray | None = None
        self._count = 0
        self._measured = 0  # frames whose change and gradual features are taken
        # Per frame, packed (an hour at 30 fps is about 40 MB): luma mean and deviation (0-255), change
        # from the frame before, signature (8-bit, `_signature_shape`).
        self._mean = array("d")
        self._std = array("d")
        self._change = array("d", [0.0])
        self._signatures = bytearray()
        self._signature_shape: tuple[int, ...] = ()
        # Per scale, per middle frame, 5 numbers: endpoints' distance, fitted share and residual, wipe
        # share and residual.
        self._gradual: dict[int, array] = {h: array("d") for h in self._scales}

    def add(self, frame: np.ndarray) -> None:
        """The next frame (BGR, any small size)."""
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        mean, std = cv2.meanStdDev(gray)
        height = max(1, round(frame.shape[0] * THUMB_WIDTH / frame.shape[1]))
        thumb = cv2.resize(frame, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA).astype(np.float32)
        self.add_features(thumb, float(mean[0, 0]), float(std[0, 0]))

    def add_features(self, thumb: np.ndarray, mean: float, std: float) -> None:
        """The next frame as its thumbnail and luma statistics (what `add` takes from a frame)."""
        if self._ring is None:
            self._ring = np.zeros((self._ring_len, *thumb.shape), dtype=np.float32)
        self._ring[self._count % self._ring_len] = thumb
        self._mean.append(mean)
        self._std.append(std)
        height = max(1, round(thumb.shape[0] * SIGNATURE_WIDTH / thumb.shape[1]))
        signature = cv2.resize(thumb, (SIGNATURE_WIDTH, height), interpolation=cv2.INTER_AREA).astype(np.uint8)
        self._signature_shape = signature.shape
        self._signatures += signature.tobytes()
        self._count += 1
        if self._count - self._measured == BATCH:
            self._measure()

    def _measure(self) -> None:
        """The change and gradual features of every frame added since the last time, a batch at once."""
        ring, n = self._ring, self._ring_len
        frames = np.arange(self._measured, self._count)
        self._measured = self._count
        if ring is None or not len(frames):
            return
        # Each frame's change from the one before; for each width h, the place of the frame h before each
        # new frame between the frame 2h before it and itself.
        changed = frames[frames >= 1]
        if len(changed):
            self._change.extend(_distances(ring[changed % n], ring[(changed - 1) % n]))
        for h in self._scales:
            ends = frames[frames >= 2 * h]
            if len(ends):
                features = _between(ring[(ends - 2 * h) % n], ring[(ends - h) % n], ring[ends % n])
                self._gradual[h].extend(features.ravel())

    def transitions(self) -> list[Transition]:
        """Every boundary found, in order, at least `min_scene_len_frames` apart."""
        if self._count < 2:
            return []
        self._measure()
        change = np.asarray(self._change, dtype=np.float64)
        mean, std = np.asarray(self._mean, dtype=np.float64), np.asarray(self._std, dtype=np.float64)
        blank = self._blank(mean, std)
        fades = self._fades(mean, std, blank)
        cuts = self._hard_cuts(change)
        gradual = self._dissolves_and_wipes(change, std, blank)
        found: list[Transition] = list(fades)
        # A fade's frames can look like a blend or a cut: the fade wins; a hard cut wins over a blend.
        for t in cuts:
            if not any(_overlap(t, f, 1) for f in found) and not self._came_back(t):
                found.append(t)
        for t in gradual:
            if not any(_overlap(t, f, 3) for f in found) and not self._came_back(t):
                found.append(t)
        found.sort(key=lambda t: t.cut)
        kept: list[Transition] = []
        for t in found:
            if t.cut <= 0 or t.cut >= self._count:
                continue
            if kept and t.cut - kept[-1].cut < self._params.min_scene_len_frames:
                continue
            kept.append(t)
        return kept

    def _hard_cuts(self, change: np.ndarray) -> list[Transition]:
        p = self._params
        width = p.window_frames
        # Mean change of the neighbours on each side, the frame itself left out (fewer at the ends).
        kernel = np.ones(2 * width + 1)
        sums = np.convolve(np.pad(change, width), kernel, mode="valid") - change
        counts = np.convolve(np.pad(np.ones(len(change)), width), kernel, mode="valid") - 1
        neighbours = sums / np.maximum(counts, 1)
        level = np.maximum(neighbours, p.min_change / p.cut_ratio)
        candidates = np.flatnonzero((change >= p.min_change) & (change >= p.cut_ratio * level))
        return [Transition("hard", int(i), int(i), int(i)) for i in candidates if i > 0]

    def _signature(self, frame: int) -> np.ndarray:
        """The signature of a frame, as floats."""
        size = int(np.prod(self._signature_shape))
        packed = np.frombuffer(self._signatures, dtype=np.uint8, count=size, offset=frame * size)
        return packed.reshape(self._signature_shape).astype(np.float32)

    def _came_back(self, t: Transition) -> bool:
        """Whether the picture before `t` is seen again just after it (or the one after it just before):
        a flash or a strobe, whose frames are no shot of their own."""
        p, sig = self._params, self._signature
        if t.first < 1:
            return False
        before = sig(t.first - 1)
        size = max(_distance(before, sig(k)) for k in range(t.first, t.last + 1))
        olds = [sig(t.first - k) for k in range(1, p.flash_frames + 2) if t.first - k >= 0]
        news = [sig(t.last + k) for k in range(0, p.flash_frames + 1) if t.last + k < self._count]
        nearest = min((_distance(a, b) for a in olds for b in news), default=np.inf)
        return nearest < p.flash_return * size

    def _blank(self, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """Which frames are blank: near-black or near-white, with almost no detail."""
        p = self._params
        return (std <= p.fade_std) & ((mean <= p.fade_black) | (mean >= p.fade_white))

    def _fades(self, mean: np.ndarray, std: np.ndarray, blank: np.ndarray) -> list[Transition]:
        p = self._params
        found = []
        i, n = 0, self._count
        while i < n:
            if not blank[i]:
                i += 1
                continue
            j = i
            while j + 1 < n and blank[j + 1] and (mean[j + 1] <= p.fade_black) == (mean[i] <= p.fade_black):
                j += 1
            first, last = i, j
            black = mean[i] <= p.fade_black
            # The ramps: detail falling into the blank run and rising out of it, the level going
            # towards black (or white) and back, each at most a second long.
            toward = (lambda a, b: mean[a] >= mean[b]) if black else (lambda a, b: mean[a] <= mean[b])
            # Detail fades in proportion: each step of a ramp is a share of the shot's own
            # deviation, far above what motion in the shot moves it by.
            def ramp(a: int, b: int) -> bool:
                return bool(std[a] - std[b] > max(0.3, FADE_STEP * std[a]) and toward(a, b))
            while first > max(0, i - self._second) and ramp(first - 1, first):
                first -= 1
            while last + 1 < min(n, j + 1 + self._second) and ramp(last + 1, last):
                last += 1
            kind = "fade-black" if black else "fade-white"
            fade = Transition(kind, first, last, min(j + 1, n - 1))
            # A ramp on one side at least: not a still blank picture. A flash goes blank at once
            # and gives back the picture it hid; a fade's two sides may look alike from afar.
            if (first < i or last > j) and not (first >= i - 1 and self._came_back(fade)):
                found.append(fade)
            i = j + 1
        return found

    def _dissolves_and_wipes(self, change: np.ndarray, std: np.ndarray, blank: np.ndarray) -> list[Transition]:
        p = self._params
        found: list[Transition] = []
        low, high = MIDDLE_SHARE
        path = np.concatenate([[0.0], np.cumsum(change)])
        for h in sorted(self._scales, reverse=True):
            rows = np.frombuffer(self._gradual[h], dtype=np.float64).reshape(-1, 5)
            if not len(rows):
                continue
            far, share, fit, wipe_share, wipe_fit = rows.T
            middles = np.arange(len(rows)) + h
            # A transition goes straight from one side to the other: the frames' changes add up to
            # about the two sides' difference. Motion goes there and back, and adds up to more.
            inside = path[middles + h + 1] - path[middles - h + 1]
            straight = far / np.maximum(inside, 1e-6)
            dissolve = (fit <= p.blend_residual) & (share >= low) & (share <= high)
            wipe = (wipe_fit <= p.wipe_residual) & (wipe_share >= low) & (wipe_share <= high)
            # From or to a blank frame is a fade's ramp: a fade is its blank frames and both ramps, or
            # nothing. From one plain picture to another is a change of colour, no shot's: one side
            # at least shows detail.
            sides_shown = (~blank[middles - h] & ~blank[middles + h]
                           & ((std[middles - h] > p.fade_std) | (std[middles + h] > p.fade_std)))
            ok = (far >= p.min_gradual) & (straight >= p.min_straight) & (dissolve | wipe) & sides_shown
            for run in _runs(ok, gap=h // 2):
                plateau = run[far[run] >= 0.9 * far[run].max()]
                best = int(plateau[len(plateau) // 2])
                middle = best + h
                kind = "wipe" if wipe[best] and (not dissolve[best] or wipe_fit[best] < fit[best]) else "dissolve"
                first, last = self._span(middle, h)
                t = Transition(kind, first, last, middle)
                if not any(_overlap(t, other, 0) for other in found):
                    found.append(t)
        return found

    def _span(self, middle: int, h: int) -> tuple[int, int]:
        """The frames a dissolve or wipe centred on `middle` changes, with pure sides `h` frames away: those
        whose blend of the two sides (fitted on the signatures) is neither side."""
        sig = self._signature
        a, b = sig(middle - h), sig(middle + h)
        diff = (b - a).ravel()
        norm = max(float(np.dot(diff, diff)), 1e-6)

        def share(t: int) -> float:
            return float(np.dot(sig(t).ravel() - a.ravel(), diff)) / norm
        first = middle
        while first - 1 > middle - h and share(first - 1) > EDGE_SHARE:
            first -= 1
        last = middle
        while last + 1 < middle + h and share(last + 1) < 1 - EDGE_SHARE:
            last += 1
        return first, last


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The mean absolute difference of each pair of thumbnails (two stacks of them)."""
    return np.abs(a - b).reshape(len(a), -1).mean(axis=1)


def _between(a: np.ndarray, m: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How each frame of the stack `m` lies between the frames of `a` and `b` at the same place: per frame,
    their distance; the share of `b` in the blend fitted to `m` and the fit's residual (relative to the
    distance); the share of pixels nearer `b` and the residual of `m` against the nearer of the two at
    each pixel (relative). A frame whose sides are equal gets (0, 0, 1, 0, 1)."""
    count = len(m)
    diff = b - a
    flat_diff = diff.reshape(count, -1)
    far = np.abs(flat_diff).mean(axis=1).astype(np.float64)
    apart = far > 0
    far_or_1 = np.where(apart, far, 1.0)
    rel = m - a
    flat_rel = rel.reshape(count, -1)
    # The products summed in double: a float32 sum of a frame's 1,728 of them is off in the fifth digit.
    power = np.einsum("ij,ij->i", flat_diff, flat_diff, dtype=np.float64)
    share = np.einsum("ij,ij->i", flat_rel, flat_diff, dtype=np.float64) / np.where(apart, power, 1)
    fit = np.abs(flat_rel - share.astype(np.float32)[:, None] * flat_diff).mean(axis=1) / far_or_1
    to_a = np.abs(rel).sum(axis=-1)
    to_b = np.abs(m - b).sum(axis=-1)
    # A wipe's frame is one side here and the other there, split along a line that moves: among
    # the pixels where the sides differ, those nearer the side after fill whole columns or rows.
    differ = np.abs(diff).sum(axis=-1) > (3 * far / 2).astype(np.float32)[:, None, None]
    nearer_b = (to_b < to_a) & differ
    columns = nearer_b.sum(axis=1) / np.maximum(differ.sum(axis=1), 1)
    rows = nearer_b.sum(axis=2) / np.maximum(differ.sum(axis=2), 1)
    wipe_share = nearer_b.sum(axis=(1, 2)) / np.maximum(differ.sum(axis=(1, 2)), 1)
    split = np.maximum(np.abs(columns - 0.5).mean(axis=1), np.abs(rows - 0.5).mean(axis=1)) * 2
    wipe_fit = np.minimum(to_a, to_b).reshape(count, -1).mean(axis=1) / (3 * far_or_1) + (1 - split)
    features = np.stack([far, share, fit, wipe_share, wipe_fit], axis=1)
    features[~apart] = (0.0, 0.0, 1.0, 0.0, 1.0)
    return features


def _runs(mask: np.ndarray, gap: int = 0) -> list[np.ndarray]:
    """The runs of True in `mask`, as arrays of indices; runs at most `gap` apart are one."""
    indices = np.flatnonzero(mask)
    if not len(indices):
        return []
    return np.split(indices, np.flatnonzero(np.diff(indices) > gap + 1) + 1)


def _overlap(a: Transition, b: Transition, margin: int) -> bool:
    return a.first - margin <= b.last and b.first - margin <= a.last
