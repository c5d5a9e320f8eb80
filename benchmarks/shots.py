"""Shot boundaries on a labelled set: Heimdex's scene detection and every PySceneDetect detector.

Edits with known truth are made from PySceneDetect's test videos and ffmpeg's generated sources
(`benchmarks.shot_edits`): hard cuts, fades through black and white, dissolves and wipes of
several lengths, flashes and whip pans inside shots, dark scenes, at four sizes and rates. Each
detector runs on every edit and is scored by one protocol (`benchmarks.shot_scoring`): a
transition is found when a boundary lies within 2 frames of it (of its span for a gradual one);
any other boundary is false.

- Heimdex: `detect_scenes(path, probe_video(path))` with its defaults (Heimdex's own detector,
  `shot_detector`), as the `scene_sidecar` asset calls it with the default settings.
- PySceneDetect: each detector with its defaults, as `scenedetect.detect(path, Detector())` runs
  it, the five fed by one decode (`pyscenedetect_boundaries`).

One edit of each size and rate is held out (drawn from `--seed`): tune on the other part, and
read the held-out one as the figure. The edits are made once into ~/.cache/heimdex/shots
(HEIMDEX_SHOTS_CACHE), keyed by their recipe; the real media come from
../shared/media/pyscenedetect (HEIMDEX_MEDIA_DIR).

    uv run python -m benchmarks.shots [--jobs N] [--seed N] [--edits-per-format N] [--detectors NAME ...]

Exits with status 1 when Heimdex misses one of issue 21's goals on the held-out part.
"""

import argparse
import multiprocessing
import os
import shlex
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import scenedetect
from scenedetect import SceneManager
from scenedetect._fan_out import FanOutVideoStream

from benchmarks.run import log, media_dir, print_header
from benchmarks.shot_edits import GRADUAL, KINDS, Edit, build, plan, split, truth
from benchmarks.shot_scoring import CAUSES, Score, score
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import detect_scenes

SEED = 21
HEIMDEX = "Heimdex"
PYSCENEDETECT = ("ContentDetector", "AdaptiveDetector", "HashDetector", "HistogramDetector", "ThresholdDetector")
LABELS = {HEIMDEX: "Heimdex (`detect_scenes`, its default `HeimdexShotDetector`)",
          "ContentDetector": "PySceneDetect `ContentDetector`, its defaults",
          **{name: f"PySceneDetect `{name}`" for name in PYSCENEDETECT[1:]}}
# Issue 21's goals for Heimdex's detector.
GOAL_F1, GOAL_GRADUAL_RECALL = 92.0, 85.0


def cache_dir() -> Path:
    """Where the edits are kept: HEIMDEX_SHOTS_CACHE, else ~/.cache/heimdex/shots."""
    return Path(os.environ.get("HEIMDEX_SHOTS_CACHE", Path.home() / ".cache" / "heimdex" / "shots"))


def heimdex_boundaries(path: Path) -> tuple[list[int], float, dict[str, Any]]:
    """The frames where Heimdex starts a new shot in `path`, its wall seconds, and its detector's
    description (the sidecar's `detector` block)."""
    start = time.perf_counter()
    detection = detect_scenes(path, probe_video(path))
    return [scene.start_frame for scene in detection.scenes[1:]], time.perf_counter() - start, detection.detector


def pyscenedetect_boundaries(detectors: list[str], path: Path) -> tuple[dict[str, list[int]], float]:
    """The frames where each PySceneDetect detector (its defaults) starts a new shot in `path`, and the
    wall seconds of them all.

    Each runs as `scenedetect.detect(path, Detector())` does (a SceneManager of its own, its scene
    list), in a thread of its own, fed by one decode through PySceneDetect's `FanOutVideoStream`,
    the tee its own benchmark harness uses to run several detectors over one video.
    """
    start = time.perf_counter()
    fan = FanOutVideoStream(scenedetect.open_video(str(path)), len(detectors))
    found: dict[str, list[int]] = {}

    def run(index: int, name: str) -> None:
        manager = SceneManager()
        manager.add_detector(getattr(scenedetect.detectors, name)())
        manager.detect_scenes(video=fan.stream(index))
        found[name] = [scene[0].frame_num for scene in manager.get_scene_list()[1:]]

    threads = [threading.Thread(target=run, args=(i, name)) for i, name in enumerate(detectors)]
    fan.start()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        fan.close()
    missing = [name for name in detectors if name not in found]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} failed on {path.name}")
    return found, time.perf_counter() - start


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(row) + " |" for row in lines)


def summary_table(scores: dict[str, Score]) -> str:
    """The issue's table: F1, precision, recall, hard cuts, gradual ones, false boundaries."""
    rows = []
    for detector, result in scores.items():
        hard, gradual = result.transitions(("hard",)), result.transitions(GRADUAL)
        false = sum(result.false.values())
        rows.append([LABELS[detector], f"**{_percent(result.f1())}**" if detector == HEIMDEX else _percent(result.f1()),
                     _percent(result.precision()), _percent(result.recall()), f"{hard[0]}/{hard[1]}",
                     f"{gradual[0]}/{gradual[1]}", str(false), str(result.false["flash"])])
    return _markdown(["detector on the same edits", "F1", "precision", "recall", "hard cuts", "gradual",
                      "false boundaries", "from flashes"], rows)


def kinds_table(scores: dict[str, Score]) -> str:
    """Per kind: found of total, and the kind's F1 (its doubles count against it)."""
    rows = []
    for detector, result in scores.items():
        cells = [f"{result.found[k]}/{result.total[k]} ({_percent(result.kind_f1(k))})" for k in KINDS]
        rows.append([LABELS[detector], *cells, f"{result.exact_hard}/{result.total['hard']}",
                     f"{result.found['dark']}/{result.total['dark']}"])
    return _markdown(["detector", *(f"{k} (F1)" for k in KINDS), "hard, to the frame", "in the dark"], rows)


def causes_table(scores: dict[str, Score]) -> str:
    """False boundaries by cause."""
    return _markdown(["detector", *CAUSES], [[LABELS[d], *(str(s.false[c]) for c in CAUSES)]
                                             for d, s in scores.items()])


def goals(result: Score) -> list[tuple[str, bool]]:
    """Issue 21's goals for the Heimdex detector, each with whether `result` meets it."""
    found, total = result.transitions(GRADUAL)
    hard = result.transitions(("hard",))[1]
    gradual_recall = 100 * found / total if total else 0.0
    return [(f"F1 >= {GOAL_F1:.0f}: {_percent(result.f1())}", 100 * result.f1() >= GOAL_F1),
            (f"gradual recall >= {GOAL_GRADUAL_RECALL:.0f}%: {gradual_recall:.1f}%",
             gradual_recall >= GOAL_GRADUAL_RECALL),
            (f"no false boundary from a flash: {result.false['flash']}", result.false["flash"] == 0),
            (f"every hard cut exact to the frame: {result.exact_hard}/{hard}", result.exact_hard == hard)]


def describe_set(edits: list[Edit]) -> str:
    """What the edits hold."""
    truths = [truth(edit) for edit in edits]
    kinds = Counter(t.kind for found in truths for t in found.transitions)
    formats = sorted({f"{e.width}x{e.height} at {e.fps} fps" for e in edits})
    return (f"{len(edits)} edits, {sum(t.frames for t in truths)} frames, {sum(kinds.values())} transitions "
            f"({', '.join(f'{k} {kinds[k]}' for k in KINDS)}), {sum(len(t.flashes) for t in truths)} flashes, "
            f"{sum(len(t.pans) for t in truths)} whip pans, {sum(len(t.dark) for t in truths)} dark shots; "
            f"{'; '.join(formats)}")


def detect_all(edits: list[Edit], detectors: list[str], jobs: int
               ) -> tuple[dict[tuple[str, str], list[int]], Counter[str], dict[str, Any]]:
    """Make the edits (unless cached), run the detectors on each, `jobs` at once: the boundaries by
    (detector, edit), the wall seconds of Heimdex and of PySceneDetect, and Heimdex's detector block."""
    found: dict[tuple[str, str], list[int]] = {}
    seconds: Counter[str] = Counter()
    described: dict[str, Any] = {}
    others = [d for d in detectors if d != HEIMDEX]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        built = time.perf_counter()
        paths = list(pool.map(build, edits, [media_dir()] * len(edits), [cache_dir()] * len(edits)))
        log(f"{len(edits)} edits ready in {time.perf_counter() - built:.0f} s, in {cache_dir()}")
        tasks = {edit.name: (pool.submit(heimdex_boundaries, path) if HEIMDEX in detectors else None,
                             pool.submit(pyscenedetect_boundaries, others, path) if others else None)
                 for edit, path in zip(edits, paths, strict=True)}
        for name, (ours, theirs) in tasks.items():
            if ours is not None:
                found[HEIMDEX, name], elapsed, described = ours.result()
                seconds["Heimdex `detect_scenes` (probe included)"] += elapsed
            if theirs is not None:
                lists, elapsed = theirs.result()
                found.update(((d, name), cuts) for d, cuts in lists.items())
                seconds[f"PySceneDetect's {len(others)} detectors on one shared decode"] += elapsed
            log(f"{name}: detected")
    return found, seconds, described


def main(argv: list[str] | None = None) -> int:
    """Build the edits, run every detector on each, print the scores."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="edits made and detectors run at once (default 2)")
    parser.add_argument("--seed", type=int, default=SEED,
                        help=f"draws the edits and the held-out part (default {SEED})")
    parser.add_argument("--edits-per-format", type=int, default=3, help="edits of each size and rate (default 3)")
    parser.add_argument("--detectors", nargs="+", choices=[HEIMDEX, *PYSCENEDETECT],
                        default=[HEIMDEX, *PYSCENEDETECT], help="which detectors (default all, Heimdex first)")
    args = parser.parse_args(argv)
    if not media_dir().is_dir():
        parser.error(f"the shared media are not at {media_dir()}: set HEIMDEX_MEDIA_DIR")
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    edits = plan(args.seed, args.edits_per_format)
    tuning, held_out = split(edits, args.seed)
    found, seconds, described = detect_all(edits, args.detectors, args.jobs)

    def scores(part: list[Edit]) -> dict[str, Score]:
        return {d: sum((score(found[d, e.name], truth(e)) for e in part), Score()) for d in args.detectors}

    command = shlex.join(["uv", "run", "python", "-m", "benchmarks.shots", *(sys.argv[1:] if argv is None else argv)])
    print_header("Heimdex shot-boundary benchmark",
                 f"{command}: measured in {time.perf_counter() - started:.0f} s with {args.jobs} jobs; "
                 f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"The set (seed {args.seed}): {describe_set(edits)}.")
    print(f"Held out: {', '.join(e.name for e in held_out) or 'none'}. "
          f"Tuning: {', '.join(e.name for e in tuning) or 'none'}.")
    if described:
        print(f"Heimdex's detector: {described.get('name')} {described.get('parameters')}")
    print("A transition is found when a boundary lies within 2 frames of it (of its span for a gradual one);")
    print("any other boundary is false. Figures are percentages; gradual = fades, dissolves and wipes.")
    status = 0
    for title, part in (("held-out part", held_out), ("tuning part", tuning), ("whole set", edits)):
        if not part:
            continue
        part_scores = scores(part)
        print(f"\n## The {title}: {describe_set(part)}\n")
        print(summary_table(part_scores))
        print(f"\nPer kind, found/total (F1):\n\n{kinds_table(part_scores)}")
        print(f"\nFalse boundaries by cause:\n\n{causes_table(part_scores)}")
        if HEIMDEX in part_scores:
            print(f"\nIssue 21's goals for Heimdex on the {title}:")
            for line, met in goals(part_scores[HEIMDEX]):
                print(f"- {line}: {'met' if met else 'MISSED'}")
                if part is held_out and not met:
                    status = 1
    frames = sum(truth(e).frames for e in edits)
    print(f"\nWall seconds over all {frames} frames, {args.jobs} edits at once (not a speed benchmark):\n")
    print(_markdown(["detectors", "seconds", "frames/s"],
                    [[who, f"{seconds[who]:.1f}", f"{frames / seconds[who]:.0f}"] for who in seconds]))
    return status


if __name__ == "__main__":
    sys.exit(main())
