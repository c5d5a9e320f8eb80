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
