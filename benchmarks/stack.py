"""Ingest through the compose stack: each run in a container of its own, started by the daemon's
DockerRunLauncher, against the same clips through `./scripts/run.sh` (benchmarks.throughput).

1. The stack: `./scripts/compose-offline.sh up -d --build --wait` on a fresh project (its own
   volumes, generated secrets, ports apart from the tests' and run.sh's), timed to every service
   healthy. The images are built if they are not.
2. All clips are put at once into the bucket's `uploads/bench/` (the upload sensor ingests them,
   as `benchmarks.throughput` drops them into run.sh's upload folder), and the runs are read from
   the webserver's GraphQL until every clip's ingest has succeeded.
3. Per run: launch = RUN_STARTING -> RUN_START (the launcher's part: a container started and its
   worker's imports, where run.sh starts a subprocess), wall = RUN_STARTING -> run end, steps =
   each step's STEP_START -> STEP_SUCCESS summed; and videos an hour over the whole batch.
4. `down -v`: nothing of the project is left.

    uv run python -m benchmarks.stack [--clips 20]

The clips are benchmarks.throughput's: distinct 10-second 1280x720 H.264 clips with three cuts.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.run import log, print_header, synthetic_clip, table
from benchmarks.throughput import MAX_CLIPS, ORG, asset_id_of, clip_spec
from tests.dagster_home import wait_for
from tests.stack.compose import Ports, Stack, env_file

PROJECT = "heimdex-bench"
# Apart from the tests' stack, run.sh's defaults and MinIO's.
PORTS = Ports(28000, 23000, 29000, 29001)
EVENTS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime
  eventConnection(afterCursor: null) { events { __typename ... on MessageEvent { timestamp }
    ... on StepEvent { stepKey } } } } } }"""


@dataclass
class RunFigures:
    """One clip's successful run, in seconds."""

    launch: float
    wall: float
    steps: float


def run_of(stack: Stack, asset_id: str) -> str | None:
    """The id of the asset's successful run, if it has one yet."""
    runs = stack.runs_of(asset_id)
    return next((run["runId"] for run in runs if run["status"] == "SUCCESS"), None)


def figures(stack: Stack, run_id: str) -> RunFigures:
    """Launch, wall and steps of a finished run, from its events' timestamps (ms)."""
    run = stack.graphql(EVENTS, id=run_id)["runOrError"]
    events: list[dict[str, Any]] = run["eventConnection"]["events"]

    def first(kind: str) -> float:
        return next(int(e["timestamp"]) / 1000 for e in events if e["__typename"] == kind)

    starting, started = first("RunStartingEvent"), first("RunStartEvent")
    step_starts: dict[str, float] = {}
    steps = 0.0
    for event in events:
        if event["__typename"] == "ExecutionStepStartEvent":
            step_starts.setdefault(event["stepKey"], int(event["timestamp"]) / 1000)
        elif event["__typename"] == "ExecutionStepSuccessEvent":
            steps += int(event["timestamp"]) / 1000 - step_starts[event["stepKey"]]
    return RunFigures(started - starting, run["endTime"] - starting, steps)


def main(argv: list[str] | None = None) -> int:
    """Start a fresh stack, put the clips into its bucket, wait for their runs, report, take it down."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=20, choices=range(1, MAX_CLIPS + 1), metavar="N",
                        help=f"distinct clips put into the bucket at once (1..{MAX_CLIPS}, default 20)")
    args = parser.parse_args(argv)

    clips = [synthetic_clip(clip_spec(index))[0] for index in range(args.clips)]
    asset_ids = [asset_id_of(path) for path in clips]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="heimdex-bench-stack-") as folder:
        env_path = Path(folder) / ".env"
        stack = Stack(env_path, env_file(env_path, PORTS), PROJECT)
        stack.compose("down", "--volumes", "--remove-orphans")
        try:
            log("starting the stack")
            began = time.monotonic()
            stack.compose("up", "--detach", "--build", "--wait", "--wait-timeout", "600")
            start_s = time.monotonic() - began
            log(f"putting {len(clips)} clips into the bucket")
            s3 = stack.s3()
            first_put = time.time()
            for path in clips:
                s3.put_object(Bucket=stack.bucket, Key=f"uploads/{ORG}/{path.name}", Body=path.read_bytes(),
                              ContentType="video/mp4")
            run_ids = [wait_for(f"asset {asset_id} ingested", lambda a=asset_id: run_of(stack, a),
                                120 + 60 * len(clips), every_s=1) for asset_id in asset_ids]
            per_run = [figures(stack, run_id) for run_id in run_ids]
            last_end = max(stack.graphql(EVENTS, id=run_id)["runOrError"]["endTime"] for run_id in run_ids)
        finally:
            wait_for("the run containers end", lambda: not stack.run_containers(all=True), 180, every_s=1)
            stack.compose("down", "--volumes", "--remove-orphans")
    load_after = os.getloadavg()

    print_header("Heimdex ingest through the compose stack (a container per run)",
                 f"uv run python -m benchmarks.stack --clips {args.clips}: "
                 f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"{len(clips)} distinct clips, 10 s 1280x720 30 fps H.264 (x264 veryfast), 3 cuts each, "
          "put into the bucket at once")
    print(f"stack start (up --build --wait, images built, fresh volumes): {start_s:.1f} s")
    print()
    print("per run, s: launch = RUN_STARTING -> RUN_START (container start and the worker's imports);")
    print("wall = RUN_STARTING -> run end; steps = sum of STEP_START -> STEP_SUCCESS")
    columns = {"launch": [f.launch for f in per_run], "wall": [f.wall for f in per_run],
               "steps": [f.steps for f in per_run], "wall - steps": [f.wall - f.steps for f in per_run]}
    print(table(["per run, s", "median", "max"],
                [[label, f"{statistics.median(values):.1f}", f"{max(values):.1f}"] for label, values in columns.items()]))
    batch_s = last_end - first_put
    print(f"first put -> last run success: {batch_s:.1f} s, {len(clips) / batch_s * 3600:.0f} videos an hour")
    return 0


if __name__ == "__main__":
    sys.exit(main())
