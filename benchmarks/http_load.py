"""A lean HTTP/1.1 load generator: keep-alive connections, each sending its next GET as soon as
the last answer is read, in several processes started together.

Each process is `python -m benchmarks.http_load` with its plan as JSON on stdin; it writes its
figures as JSON to the file the plan names. Requests are prebuilt bytes and answers are parsed only as far as the status line
and `Content-Length`, on uvloop: a request costs the client tens of microseconds, so the figures
are the server's. It imports nothing of Heimdex, so a client process starts in a fraction of a second.
"""

import asyncio
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import uvloop


@dataclass(frozen=True)
class LoadResult:
    """What the clients of one load saw: answers, non-200s, each request's latency, their own CPU time."""

    requests: int
    errors: int
    latencies_s: list[float]
    seconds: float
    client_cpu_s: float
    statuses: list[int] = field(default_factory=list)  # of the non-200 answers
    dropped: int = 0  # connections reset, closed or silent past the timeout

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def request_bytes(host: str, path: str, headers: dict[str, str]) -> bytes:
    """A keep-alive GET of `path`, ready to send."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _connection(host: str, port: int, requests: list[bytes], start: float, deadline: float,
                      latencies: list[float], errors: list[int], dropped: list[str], timeout_s: float,
                      once: deque[bytes] | None) -> None:
    """One client: its next request as soon as the last answer is read. A connection the server
    drops (reset, closed, or no answer within `timeout_s`) is counted and opened again. With `once`, the
    requests are taken from it, each sent once, until it is empty."""
    await asyncio.sleep(max(0.0, start - 1.0 - time.time()))
    while time.time() < deadline and (once is None or once):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, TimeoutError) as exc:
            dropped.append(type(exc).__name__)
            await asyncio.sleep(0.1)
            continue
        await asyncio.sleep(max(0.0, start - time.time()))
        try:
            while time.time() < deadline and (once is None or once):
                sent = time.perf_counter()
                writer.write(random.choice(requests) if once is None else once.popleft())
                async with asyncio.timeout(timeout_s):
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - sent)
                if head[9:12] != b"200":
                    errors.append(int(head[9:12]))
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            dropped.append(type(exc).__name__)
        finally:
            writer.close()


async def _drive(plan: dict) -> dict:
    latencies: list[float] = []
    errors: list[int] = []
    dropped: list[str] = []
    requests = [request.encode("latin-1") for request in plan["requests"]]
    # Each request sent at most once, by whichever connection is free: shuffled, then taken in turn.
    once = deque(random.sample(requests, len(requests))) if plan["each_once"] else None
    await asyncio.gather(*(_connection(plan["host"], plan["port"], requests, plan["start"], plan["deadline"],
                                       latencies, errors, dropped, plan["timeout_s"], once)
                           for _ in range(plan["connections"])))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"latencies": latencies, "errors": errors, "dropped": len(dropped),
            "cpu_s": usage.ru_utime + usage.ru_stime, "ended": time.time()}


def run_load(host: str, port: int, requests: list[bytes], connections: int, processes: int,
             seconds: float, timeout_s: float = 30.0, each_once: bool = False) -> LoadResult:
    """`connections` keep-alive connections spread over `processes` client processes, for `seconds`,
    each sending a random one of `requests` after the other (an answer later than `timeout_s` is a drop);
    with `each_once`, every request is sent at most once (each process takes its own share), and the load
    ends early when all were sent."""
    start = time.time() + 2.0  # every process connected and waiting before the first request
    with tempfile.TemporaryDirectory(prefix="http-load-") as folder:
        children, outputs = [], []
        for index in range(processes):
            outputs.append(Path(folder) / f"{index}.json")
            share = connections // processes + (index < connections % processes)
            mine = requests[index::processes] if each_once else requests
            plan = {"host": host, "port": port, "requests": [request.decode("latin-1") for request in mine],
                    "connections": share, "start": start, "deadline": start + seconds, "output": str(outputs[-1]),
                    "timeout_s": timeout_s, "each_once": each_once}
            child = subprocess.Popen([sys.executable, "-m", "benchmarks.http_load"], stdin=subprocess.PIPE)
            child.stdin.write(json.dumps(plan).encode())
            child.stdin.close()
            children.append(child)
        for child in children:
            if child.wait() != 0:
                raise RuntimeError(f"a load client failed with status {child.returncode}")
        outcomes = [json.loads(output.read_text()) for output in outputs]
    latencies = [latency for outcome in outcomes for latency in outcome["latencies"]]
    statuses = [status for outcome in outcomes for status in outcome["errors"]]
    # A load that sends each request once may run out before its time.
    seconds = min(seconds, max(outcome["ended"] for outcome in outcomes) - start)
    return LoadResult(requests=len(latencies), errors=len(statuses), latencies_s=latencies, seconds=seconds,
                      client_cpu_s=sum(outcome["cpu_s"] for outcome in outcomes), statuses=statuses,
                      dropped=sum(outcome["dropped"] for outcome in outcomes))


def main() -> None:
    plan = json.loads(sys.stdin.read())
    Path(plan["output"]).write_text(json.dumps(uvloop.run(_drive(plan))))


if __name__ == "__main__":
    main()
