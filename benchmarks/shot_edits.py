"""Edits with known shot boundaries: recipes, the truth they imply, and their making by ffmpeg.

An edit is a row of shots joined by transitions. A shot is a span of one of PySceneDetect's test
videos (real footage, between its own cuts and fades), an ffmpeg lavfi source (generated
material), or a whip pan across a panorama of three footage frames. A shot may be dark, and may
hold flashes (a few bright frames). The joins are hard cuts, fades through black or white
(`fade` out, colour frames, `fade` in), dissolves and wipes (`xfade`).

Every shot is retimed to the edit's rate frame for frame (no frame dropped or repeated), so
where each transition, flash and pan lies follows from the recipe alone: `truth`. Edits are
made once into a cache keyed by their recipe (`build`).
"""

import hashlib
import json
import os
import random
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from heimdex_pipeline.media.tools import FFMPEG, FFPROBE

# Bumped when the same recipe would be made into other pictures.
BUILD_VERSION = 1
GRADUAL = ("fade-black", "fade-white", "dissolve", "wipe")
KINDS = ("hard", *GRADUAL)

# Spans of the shared media free of their own cuts and fades (frames, first and last), seen by eye
# on contact sheets and by ContentDetector, HistogramDetector and AdaptiveDetector at low thresholds.
FOOTAGE: dict[str, tuple[tuple[int, int], ...]] = {
    "testvideo.mp4": ((35, 170), (228, 335), (410, 530), (565, 660)),
    "issue-195-aspect-ratio.mp4": ((3, 67), (73, 167), (173, 298), (304, 418), (424, 481), (487, 625)),
    "issue-134-rotate.mp4": ((3, 87), (93, 207)),
}
# Their frame rates, to seek to a shot's first frame rather than decode up to it.
FOOTAGE_RATES = {"testvideo.mp4": 30000 / 1001, "issue-195-aspect-ratio.mp4": 25.0,
                 "issue-134-rotate.mp4": 24000 / 1001}
# Generated material; {w}x{h} the edit's size, {r} its rate, {seed} and {c0}..{c2} drawn per shot.
GENERATED = (
    "testsrc2=s={w}x{h}:r={r}",
    "smptehdbars=s={w}x{h}:r={r},noise=alls=10:allf=t",
    "mandelbrot=s=320x180:r={r}:start_scale={scale}",
    "cellauto=s=320x180:r={r}:rule={rule}:seed={seed}:scroll=1",
    "gradients=s={w}x{h}:r={r}:c0={c0}:c1={c1}:c2={c2}:nb_colors=3:speed=0.02:seed={seed}",
    "sierpinski=s={w}x{h}:r={r}:seed={seed}:jump=2",
    "color=c={c0}:s={w}x{h}:r={r},noise=alls=25:allf=t+u",
)
# Size and rate of the edits, one of each per part of the set.
FORMATS = ((640, 360, 25), (1280, 720, 30), (960, 540, 24), (854, 480, 50))
WIPES = ("wipeleft", "wiperight", "wipeup", "wipedown")
# Transitions per edit, by kind: hard cuts and every gradual kind in each edit.
PER_EDIT = {"hard": 6, "fade-black": 2, "fade-white": 2, "dissolve": 3, "wipe": 3}
# Lengths at 25 fps (scaled to the edit's rate): fades and dissolves first to last changed frame.
FADE_LENGTHS, DISSOLVE_LENGTHS, WIPE_LENGTHS = (8, 16, 30), (6, 12, 24, 40), (6, 12, 24)
DARK_LEVEL = 0.25


@dataclass(frozen=True)
class Shot:
    """One shot: `frames` pictures from `source`, from its frame `start`: 'file:NAME' (a file of the
    shared media), 'lavfi:GRAPH', or 'pan:NAME@FRAME,...' (a whip pan across those frames side by side).

    `flashes` are (first frame, frames) inside the shot; `pan` is the whip's (first frame, frames).
    """

    source: str
    frames: int
    start: int = 0
    dark: bool = False
    flashes: tuple[tuple[int, int], ...] = ()
    pan: tuple[int, int] | None = None


@dataclass(frozen=True)
class Join:
    """How a shot follows the one before: `kind` of KINDS; `frames` the length of a gradual one (for
    a fade, its frames out plus its frames in, `hold` colour frames between them); `style` the
    xfade transition of a wipe."""

    kind: str
    frames: int = 0
    hold: int = 0
    style: str = ""


@dataclass(frozen=True)
class Edit:
    """An edit: its shots, the joins between them (one fewer), its size and rate."""

    name: str
    width: int
    height: int
    fps: int
    shots: tuple[Shot, ...]
    joins: tuple[Join, ...]

    def key(self) -> str:
        """The cache key of the recipe."""
        recipe = json.dumps({"version": BUILD_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(recipe.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Transition:
    """A transition of an edit: frames `first` to `last` change from one shot to the next (a hard
    cut: both are the new shot's first frame)."""

    kind: str
    first: int
    last: int
    dark: bool = False


@dataclass
class Truth:
    """What an edit holds, in frames of the edit: its transitions, and spans inside shots where a
    boundary would be false for a known cause (flashes, whip pans, dark shots)."""

    frames: int
    transitions: list[Transition] = field(default_factory=list)
    flashes: list[tuple[int, int]] = field(default_factory=list)
    pans: list[tuple[int, int]] = field(default_factory=list)
    dark: list[tuple[int, int]] = field(default_factory=list)


def _fade_sides(join: Join) -> tuple[int, int]:
    """Frames of a fade on the outgoing shot and on the incoming one (each ends or starts in colour)."""
    out = join.frames // 2
    return out, join.frames - out


def truth(edit: Edit) -> Truth:
    """Where the transitions, flashes, pans and dark shots of `edit` lie, from its recipe."""
    starts, length = [0], edit.shots[0].frames  # each shot's first frame in the edit; the edit so far
    found = Truth(frames=0)
    for join, (before, after) in zip(edit.joins, zip(edit.shots, edit.shots[1:], strict=False), strict=True):
        dark = before.dark and after.dark
        if join.kind == "hard":
            found.transitions.append(Transition("hard", length, length, dark))
            starts.append(length)
        elif join.kind in ("fade-black", "fade-white"):
            out, into = _fade_sides(join)
            found.transitions.append(Transition(join.kind, length - out, length + join.hold + into - 1, dark))
            starts.append(length + join.hold)
        else:  # xfade: the new shot's first frame is the overlap's first, still all the old shot
            offset = length - join.frames
            found.transitions.append(Transition(join.kind, offset + 1, offset + join.frames - 1, dark))
            starts.append(offset)
        length = starts[-1] + after.frames
    found.frames = length
    for shot, start in zip(edit.shots, starts, strict=True):
        found.flashes += [(start + first, start + first + count - 1) for first, count in shot.flashes]
        if shot.pan is not None:
            found.pans.append((start + shot.pan[0], start + shot.pan[0] + shot.pan[1] - 1))
        if shot.dark:
            found.dark.append((start, start + shot.frames - 1))
    return found


def _shot_filters(shot: Shot, index: int, edit: Edit, inputs: list[int]) -> str:
    """The filter chain of one shot, from its ffmpeg inputs (their numbers) to `[s{index}]`: retimed to the edit's rate
    frame for frame, sized, darkened and flashed."""
    w, h, fps = edit.width, edit.height, edit.fps
    fit = f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},setsar=1"
    if shot.source.startswith("pan:"):
        # Three views side by side, held still, crossed by a slow drift and one whip (smoothstep),
        # blurred by mixing successive frames as a shutter would, with grain so no frame repeats.
        stacked = "".join(f"[{view}:v]trim=end_frame=1,{fit}[v{index}_{n}];" for n, view in enumerate(inputs))
        first, count = shot.pan or (0, 1)
        drift, whip = 0.3 * w / shot.frames, 1.6 * w
        x = (f"0.05*{w}+{drift:.3f}*n+{whip:.0f}*(3*pow(clip((n-{first})/{count},0,1),2)"
             f"-2*pow(clip((n-{first})/{count},0,1),3))")
        chain = (f"{stacked}{''.join(f'[v{index}_{n}]' for n in range(3))}hstack=3,"
                 f"loop=loop={shot.frames}:size=1,trim=end_frame={shot.frames},setpts=N,"
                 f"crop={w}:{h}:'{x}':0,tmix=frames=3,noise=alls=6:allf=t")
    else:
        first = 0 if shot.source.startswith("file:") else shot.start  # a file is read from its shot's start
        chain = f"[{inputs[0]}:v]trim=start_frame={first}:end_frame={first + shot.frames},{fit}"
    chain += f",format=yuv420p,settb=1/{fps},setpts=N,fps={fps}"
    if shot.dark:
        k = DARK_LEVEL
        chain += f",lutyuv=y=16+(val-16)*{k}:u=128+(val-128)*{k}:v=128+(val-128)*{k}"
    for first, count in shot.flashes:
        for n in range(count):  # bright, then fading: a camera flash
            a = 0.9 * (1 - n / count)
            chain += (f",lutyuv=y=val+(235-val)*{a:.2f}:u=128+(val-128)*{1 - a:.2f}:v=128+(val-128)*{1 - a:.2f}"
                      f":enable='eq(n,{first + n})'")
    return chain + f"[s{index}]"


def _inputs(shot: Shot, media: Path) -> list[list[str]]:
    """The ffmpeg inputs a shot reads, one argument list each."""
    def footage(name: str, frame: int) -> list[str]:
        # Half a frame early, so that rounding lands on `frame` itself (a frame off would not matter:
        # FOOTAGE's spans keep clear of the cuts). The rotation tag of issue-134 is ignored: its
        # pictures are used as coded, landscape.
        seek = max(0.0, (frame - 0.5) / FOOTAGE_RATES[name])
        return ["-noautorotate", "-ss", f"{seek:.4f}", "-i", str(media / name)]
    if shot.source.startswith("file:"):
        return [footage(shot.source[5:], shot.start)]
    if shot.source.startswith("pan:"):
        return [footage(name, int(frame)) for name, frame in
                (view.rsplit("@", 1) for view in shot.source[4:].split(","))]
    return [["-f", "lavfi", "-i", shot.source[6:]]]


def build(edit: Edit, media: Path, cache: Path) -> Path:
    """The edit's H.264 file, made by ffmpeg into `cache` unless it is there already."""
    out = cache / f"{edit.name}-{edit.key()}.mp4"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    arguments: list[str] = []
    graph: list[str] = []
    count = 0
    for index, shot in enumerate(edit.shots):
        inputs = _inputs(shot, media)
        for one in inputs:
            arguments += one
        graph.append(_shot_filters(shot, index, edit, list(range(count, count + len(inputs)))))
        count += len(inputs)
    graph += _joins(edit)
    partial = out.with_suffix(".partial.mp4")
    try:
        subprocess.run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *arguments,
                        "-filter_complex", ";".join(graph), "-map", "[edit]", "-c:v", "libx264", "-preset", "veryfast",
                        "-crf", "20", "-fps_mode", "passthrough", "-an", str(partial)], check=True)
        made = _frame_count(partial)
        if made != truth(edit).frames:
            raise RuntimeError(f"{edit.name}: ffmpeg made {made} frames, the recipe says {truth(edit).frames}")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)  # only a failed making leaves one
    return out


def _joins(edit: Edit) -> list[str]:
    """The filters joining the shots `[s0]`, `[s1]`... one after the other into `[edit]`."""
    graph, length = [], edit.shots[0].frames
    current = "[s0]"
    for index, join in enumerate(edit.joins, start=1):
        shot, label = edit.shots[index], f"[j{index}]" if index < len(edit.joins) else "[edit]"
        if join.kind == "hard":
            graph.append(f"{current}[s{index}]concat=n=2:v=1:a=0,settb=1/{edit.fps},setpts=N{label}")
            length += shot.frames
        elif join.kind in ("fade-black", "fade-white"):
            out, into = _fade_sides(join)
            colour = "black" if join.kind == "fade-black" else "white"
            held = ""
            if join.hold:
                held = (f"color=c={colour}:s={edit.width}x{edit.height}:r={edit.fps},trim=end_frame={join.hold},"
                        f"format=yuv420p,settb=1/{edit.fps},setpts=N[h{index}];")
            graph.append(f"{held}{current}fade=t=out:s={length - out - 1}:n={out}:c={colour}[o{index}];"
                         f"[s{index}]fade=t=in:s=0:n={into}:c={colour}[i{index}];"
                         f"[o{index}]{f'[h{index}]' if join.hold else ''}[i{index}]"
                         f"concat=n={3 if join.hold else 2}:v=1:a=0,settb=1/{edit.fps},setpts=N{label}")
            length += join.hold + shot.frames
        else:
            style = "fade" if join.kind == "dissolve" else join.style
            offset = length - join.frames
            graph.append(f"{current}[s{index}]xfade=transition={style}:duration={join.frames / edit.fps}"
                         f":offset={offset / edit.fps},settb=1/{edit.fps},setpts=N{label}")
            length = offset + shot.frames
        current = label
    return graph


def _frame_count(path: Path) -> int:
    done = subprocess.run([FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=nb_frames",
                           "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def _colour(rng: random.Random) -> str:
    return f"0x{rng.randrange(1 << 24):06x}"


def _generated(rng: random.Random, edit_size: tuple[int, int, int], previous: str) -> str:
    """A generated shot's source, of another kind than `previous` (two shots of one pattern in a row
    can look alike, and a join between them would be no transition to see)."""
    w, h, fps = edit_size
    template = rng.choice([t for t in GENERATED if not previous.startswith("lavfi:" + t.split("=")[0])])
    return "lavfi:" + template.format(w=w, h=h, r=fps, seed=rng.randrange(1 << 30), c0=_colour(rng),
                                      c1=_colour(rng), c2=_colour(rng), rule=rng.choice((18, 30, 90, 110)),
                                      scale=rng.choice((2, 3, 3.5)))


def plan(seed: int, edits_per_format: int = 3) -> list[Edit]:
    """The benchmark's edits, drawn from `seed`: `edits_per_format` of each of FORMATS."""
    rng = random.Random(seed)
    return [_plan_edit(rng, f"{w}x{h}p{fps}-{n}", (w, h, fps))
            for n in range(edits_per_format) for w, h, fps in FORMATS]


def _plan_edit(rng: random.Random, name: str, size: tuple[int, int, int]) -> Edit:
    w, h, fps = size
    scale = fps / 25

    def frames(length: int) -> int:
        return max(2, round(length * scale))

    joins = []
    for kind, count in PER_EDIT.items():
        for _ in range(count):
            if kind in ("fade-black", "fade-white"):
                joins.append(Join(kind, frames(rng.choice(FADE_LENGTHS)), hold=rng.choice((0, 0, frames(4)))))
            elif kind == "dissolve":
                joins.append(Join(kind, frames(rng.choice(DISSOLVE_LENGTHS))))
            elif kind == "wipe":
                joins.append(Join(kind, frames(rng.choice(WIPE_LENGTHS)), style=rng.choice(WIPES)))
            else:
                joins.append(Join(kind))
    rng.shuffle(joins)
    count = len(joins) + 1
    dark_from = rng.randrange(count - 2)  # a dark scene of three shots
    flashed = set(rng.sample(range(count), 3))
    panned = rng.choice([i for i in range(count) if i not in flashed])
    shots = []
    previous: tuple[str, int, int] | None = None  # the footage span of the shot before
    for index in range(count):
        # Frames the joins take from this shot, before and after its own (untouched) middle.
        head = _taken(joins[index - 1], incoming=True) if index > 0 else 0
        tail = _taken(joins[index], incoming=False) if index < len(joins) else 0
        middle = frames(rng.randint(20, 60))
        total = head + middle + tail
        flashes: tuple[tuple[int, int], ...] = ()
        if index in flashed:
            flashes = ((head + rng.randint(6, middle - 10), rng.randint(1, 3)),)
        dark = dark_from <= index < dark_from + 3
        if index == panned:
            spans = [(n, first, last) for n, all_spans in FOOTAGE.items() for first, last in all_spans]
            views = [(n, rng.randint(first, last)) for n, first, last in rng.sample(spans, 3)]
            whip = frames(rng.randint(5, 10))
            middle = max(middle, whip + frames(24))
            total = head + middle + tail
            shots.append(Shot("pan:" + ",".join(f"{n}@{f}" for n, f in views), total, dark=dark,
                              pan=(head + (middle - whip) // 2, whip)))
            previous = None
            continue
        # A shot never follows one from the same span: a cut inside a shot is no cut an editor makes.
        usable = [(name_, first, last) for name_, spans in FOOTAGE.items()
                  for first, last in spans if last - first + 1 >= total and (name_, first, last) != previous]
        if usable and rng.random() < 0.5:
            source, first, last = previous = rng.choice(usable)
            start = rng.randint(first, last - total + 1)
            shots.append(Shot(f"file:{source}", total, start=start, dark=dark, flashes=flashes))
        else:
            previous = None
            source = _generated(rng, size, shots[-1].source if shots else "")
            shots.append(Shot(source, total, start=rng.randrange(8), dark=dark, flashes=flashes))
    return Edit(name, w, h, fps, tuple(shots), tuple(joins))


def _taken(join: Join, incoming: bool) -> int:
    """Frames of a shot a join changes (its fade, or its share of an xfade's overlap)."""
    if join.kind == "hard":
        return 0
    if join.kind in ("fade-black", "fade-white"):
        out, into = _fade_sides(join)
        return into if incoming else out
    return join.frames


def split(edits: list[Edit], seed: int) -> tuple[list[Edit], list[Edit]]:
    """The tuning part and the held-out part: one edit of each format held out, drawn from `seed`."""
    rng = random.Random(seed)
    held_out = set()
    for w, h, fps in FORMATS:
        same = [edit.name for edit in edits if (edit.width, edit.height, edit.fps) == (w, h, fps)]
        if same:
            held_out.add(rng.choice(same))
    return [e for e in edits if e.name not in held_out], [e for e in edits if e.name in held_out]
