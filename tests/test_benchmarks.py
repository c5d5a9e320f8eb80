"""Every benchmark still loads and parses its options: they run by hand, not in CI, so a renamed
import would otherwise be found only by the next person measuring."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(path.stem for path in (REPO_ROOT / "benchmarks").glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_loads(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    if "argparse" in vars(module):  # a command (http_load is the load's worker process, driven over stdin)
        done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


def test_the_storyboard_benchmark_measures_a_tiny_clip(clips) -> None:
    from benchmarks.storyboard import ingest_seconds, storyboard_step

    path, _ = clips((1.0, 1.0), size="160x120")
    run = storyboard_step(str(path))
    assert run.output["tiles"] == 50 and run.output["path"] == "one pass" and run.output["sprite"] == "1600x600"
    without, with_it = ingest_seconds(path, 1)
    assert len(without) == len(with_it) == 1


def test_a_benchmarks_markdown_block_is_what_it_printed(tmp_path: Path) -> None:
    direct = subprocess.run([sys.executable, "-m", "benchmarks.run", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, check=True)
    block = tmp_path / "block.md"
    wrapped = subprocess.run([sys.executable, "-m", "benchmarks.markdown", "-o", str(block), "run", "--help"],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert wrapped.returncode == 0, wrapped.stderr
    assert wrapped.stdout == direct.stdout
    lines = block.read_text().splitlines()
    assert lines[0].startswith("Measured on ") and "load average" in lines[0]
    assert lines[2:4] == ["```", "$ uv run python -m benchmarks.run --help"]
    assert "\n".join(lines[4:-1]) == direct.stdout.rstrip() and lines[-1] == "```"


def _mean_lumas(path: Path, size: int) -> list[float]:
    """Each frame's mean luma, decoded by ffmpeg."""
    from heimdex_pipeline.media.tools import FFMPEG

    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, check=True).stdout
    return [sum(raw[i:i + size]) / size for i in range(0, len(raw), size)]


def test_the_shots_benchmark_scores_a_tiny_edit_with_a_cut_a_fade_and_a_flash(tmp_path: Path, media_dir: Path) -> None:
    from benchmarks.shot_edits import Edit, Join, Shot, build, truth
    from benchmarks.shot_scoring import score
    from benchmarks.shots import pyscenedetect_boundaries

    def flat(colour: str) -> str:
        return f"lavfi:color=c={colour}:s=160x90:r=25"

    edit = Edit("tiny", 160, 90, 25, (Shot(flat("0x303030"), 40, flashes=((12, 2),)), Shot(flat("0xb0b0b0"), 40),
                                      Shot(flat("0x707070"), 40)), (Join("hard"), Join("fade-black", 10)))
    known = truth(edit)
    cut, fade = known.transitions
    assert (cut.kind, cut.first, cut.last, fade.kind) == ("hard", 40, 40, "fade-black")
    assert known.flashes == [(12, 13)] and known.frames == 120

    # The edit holds what the truth says: the cut on its frame, the fade and the flash on theirs alone.
    lumas = _mean_lumas(build(edit, media_dir, tmp_path), 160 * 90)
    assert len(lumas) == known.frames
    first, second, third = lumas[0], lumas[cut.first], lumas[-1]
    assert abs(lumas[cut.first - 1] - first) < 2 and second - first > 100
    changed = [i for i, luma in enumerate(lumas) if min(abs(luma - level) for level in (first, second, third)) > 2]
    assert changed == [12, 13, *range(fade.first, fade.last + 1)]
    assert lumas[12] - first > 100 and lumas[13] - first > 50

    # Found within 2 frames (of the fade's span); one boundary per transition; the flash's apart.
    result = score([cut.first, fade.first - 2, 13], known)
    assert (result.found["hard"], result.found["fade-black"], result.exact_hard) == (1, 1, 1)
    assert result.false == {"flash": 1} and result.boundaries == 3 and round(result.f1(), 3) == 0.8
    missed = score([cut.first + 3, fade.first - 3, fade.first, fade.last + 2], known)
    assert (missed.found["hard"], missed.found["fade-black"], missed.exact_hard) == (0, 1, 0)
    assert missed.false == {"other": 2, "double": 1} and missed.kind_f1("fade-black") == 2 / 3

    # PySceneDetect's frame numbers are the truth's: ContentDetector cuts on the cut's very frame.
    found, _ = pyscenedetect_boundaries(["ContentDetector"], build(edit, media_dir, tmp_path))
    assert cut.first in found["ContentDetector"]


def test_the_decode_floor_decodes_every_frame_or_the_reference_frames_only(clips) -> None:
    from benchmarks.shot_speed import decode_only

    path, _ = clips((1.0, 1.0), size="160x120")
    every, reference = decode_only(path, "DEFAULT"), decode_only(path, "NONREF")
    assert every == 50  # 2 s at 25 fps
    assert 0 < reference < every  # x264's B-frames left out
