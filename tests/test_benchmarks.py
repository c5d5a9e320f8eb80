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
