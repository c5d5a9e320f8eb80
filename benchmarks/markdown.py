"""Runs one benchmark and writes what it printed as a markdown block for docs/benchmarks.md.

The block is the benchmark's standard output verbatim, behind the command that printed it, with
the date, the time and the load average before and after in a line of its own above the fence:
the doc is pasted from this file, never retyped. Progress on standard error passes through.

    uv run python -m benchmarks.markdown [-o FILE] BENCHMARK [ARGS...]
    uv run python -m benchmarks.markdown -o /tmp/throughput.md throughput --clips 20

BENCHMARK is a module of this package (`throughput`, `run`, ...). Without -o the block goes to
`benchmarks/results/BENCHMARK.md` (not tracked by git). The exit status is the benchmark's.
"""

import argparse
import contextlib
import io
import os
import runpy
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

RESULTS = Path(__file__).resolve().parent / "results"


class _Tee(io.TextIOBase):
    """A text stream that writes to a terminal and keeps a copy."""

    def __init__(self, terminal: TextIO) -> None:
        self.terminal, self.copy = terminal, io.StringIO()

    def write(self, text: str) -> int:
        self.terminal.write(text)
        return self.copy.write(text)

    def flush(self) -> None:
        self.terminal.flush()


def block(command: str, output: str, started: datetime, load_before: float, load_after: float) -> str:
    """The markdown a run is pasted as: when and under what load, then the command and its output."""
    when = started.strftime("%Y-%m-%d at %H:%M UTC")
    return (f"Measured on {when}, load average {load_before:.2f} before and {load_after:.2f} after"
            f" (`benchmarks.markdown`'s own reading).\n\n```\n$ {command}\n{output.rstrip()}\n```\n")


def run(module: str, args: list[str]) -> tuple[int, str]:
    """Run `benchmarks.<module>` as `python -m` would, with `args`; its exit status and standard output."""
    tee = _Tee(sys.stdout)
    argv, sys.argv = sys.argv, [f"benchmarks/{module}.py", *args]
    status = 0
    try:
        with contextlib.redirect_stdout(tee):
            runpy.run_module(f"benchmarks.{module}", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = argv
    return status, tee.copy.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.markdown", description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, help="where the block goes (default benchmarks/results/BENCHMARK.md)")
    parser.add_argument("benchmark", help="a module of benchmarks/, e.g. throughput")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the benchmark's own arguments")
    options = parser.parse_args()
    started, load_before = datetime.now(UTC), os.getloadavg()[0]
    status, output = run(options.benchmark, options.args)
    command = shlex.join(["uv", "run", "python", "-m", f"benchmarks.{options.benchmark}", *options.args])
    target = options.output or RESULTS / f"{options.benchmark}.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block(command, output, started, load_before, os.getloadavg()[0]))
    print(f"benchmarks.markdown: wrote {target}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
