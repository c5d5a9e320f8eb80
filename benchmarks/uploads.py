"""Upload benchmark: a file sent to the API by one PUT and by tus, against `cp` of it on the same disk.

A real `uvicorn heimdex_api.main:app` (its own process, local storage, SQLite catalog) receives
the file at init's `upload_url` (one PUT, the body streamed from the file) and at its
`resumable_url` (tus PATCHes of `--patch-mib`); `cp` copies the same file into the same folder,
then fsyncs it, since the API fsyncs what it received before it answers (plain `cp` is shown too).
Every time is the best of `--repeat` runs, interleaved; the median is shown beside it (the
machine is shared, so a run's figures vary with what else runs). The server's peak memory (VmHWM) is
read after a small warm-up upload and after each large one: flat means it does not grow with
the file.

    uv run python -m benchmarks.uploads [--size-mib 1024] [--patch-mib 32] [--repeat 2]

The file and the server's folders live in HEIMDEX_BENCH_CACHE (default ~/.cache/heimdex-bench).
"""

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt

REPO = Path(__file__).resolve().parents[1]
SECRET = "benchmark-secret-of-at-least-32-bytes-0123456789"
ORG = "org-bench"
SPEED_TARGET = 0.70  # of cp's speed
SEND_BLOCK = 1024 * 1024


def cache_dir() -> Path:
    path = Path(os.environ.get("HEIMDEX_BENCH_CACHE", Path.home() / ".cache" / "heimdex-bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_file(path: Path, size: int) -> Path:
    """`size` random-looking bytes (made once), so nothing along the way can compress them."""
    if not path.exists() or path.stat().st_size != size:
        block = os.urandom(SEND_BLOCK)
        with path.open("wb") as out:
            for _ in range(size // len(block)):
                out.write(block)
            out.write(block[: size % len(block)])
    return path


class Server:
    """`uvicorn heimdex_api.main:app` on a free port of 127.0.0.1, in its own process."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        home = workdir / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        self.derived = workdir / "derived"
        env = {**os.environ, "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(self.derived),
               "HEIMDEX_DATABASE_URL": f"sqlite:///{workdir / 'catalog.db'}", "HEIMDEX_ENV": "development",
               "HEIMDEX_JWT_SECRET": SECRET, "HEIMDEX_URL_SIGNING_KEY": SECRET[::-1]}
        self.log = (workdir / "api.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "heimdex_api.main:app", "--host", "127.0.0.1", "--port",
             str(self.port), "--log-level", "warning"], cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/v1/health", timeout=2)
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not start: see {workdir / 'api.log'}") from None
                time.sleep(0.2)

    def peak_rss_mib(self) -> float:
        """The server process's peak resident memory so far (VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def init(self, name: str, size: int) -> dict[str, Any]:
        token = jwt.encode({"org_id": ORG, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
        request = urllib.request.Request(
            f"{self.url}/v1/ingest/init", method="POST",
            data=json.dumps({"org_id": ORG, "source_name": name, "content_length": size}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            return json.load(response)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def _send(url: str, method: str, source: Path, offset: int, count: int, headers: dict[str, str]) -> dict[str, str]:
    """One request whose body is `count` bytes of the file from `offset`, sent by sendfile(2) (no copy
    through the client, as curl's own cost is small beside the server's); the answer's status and headers."""
    parts = urlsplit(url)
    lines = [f"{method} {parts.path}?{parts.query} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {count}",
             *(f"{name}: {value}" for name, value in headers.items())]
    with socket.create_connection((parts.hostname, parts.port), timeout=600) as sock, source.open("rb") as body:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sock.sendfile(body, offset, count)
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
        return {"status": str(response.status), **{k.lower(): v for k, v in response.getheaders()}}


def put(url: str, source: Path) -> None:
    """One PUT of the whole file."""
    answer = _send(url, "PUT", source, 0, source.stat().st_size, {})
    if answer["status"] != "200":
        raise RuntimeError(f"PUT answered {answer['status']}")


def tus(url: str, source: Path, patch_bytes: int) -> None:
    """tus PATCHes of `patch_bytes`, each after the last one's answer, as a tus client sends them."""
    size, offset = source.stat().st_size, 0
    while offset < size:
        answer = _send(url, "PATCH", source, offset, min(patch_bytes, size - offset), {
            "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
        if answer["status"] != "204":
            raise RuntimeError(f"PATCH answered {answer['status']}")
        offset = int(answer["upload-offset"])


def cp(source: Path, folder: Path, fsync: bool) -> None:
    target = folder / f"cp-{time.monotonic_ns()}.bin"
    subprocess.run(["cp", str(source), str(target)], check=True)
    if fsync:
        subprocess.run(["sync", str(target)], check=True)
    target.unlink()


def timed(action: Any, *args: Any) -> float:
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--patch-mib", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    cache = cache_dir()
    source = make_file(cache / f"upload-{args.size_mib}MiB.bin", size)
    small = make_file(cache / "upload-16MiB.bin", 16 * 1024 * 1024)
    workdir = Path(tempfile.mkdtemp(prefix="uploads-", dir=cache))
    server = Server(workdir)
    try:
        put(server.init("warmup.bin", small.stat().st_size)["presigned"]["upload_url"], small)
        tus(server.init("warmup-tus.bin", small.stat().st_size)["presigned"]["resumable_url"], small,
            args.patch_mib * 1024 * 1024)
        warm_rss = server.peak_rss_mib()
        times: dict[str, list[float]] = {"cp": [], "cp+fsync": [], "PUT": [], "tus": []}
        peaks: dict[str, float] = {}
        folder = server.derived / "uploads" / ORG
        for run in range(args.repeat):
            times["cp"].append(timed(cp, source, folder, False))
            times["cp+fsync"].append(timed(cp, source, folder, True))
            answer = server.init(f"put-{run}.bin", size)
            times["PUT"].append(timed(put, answer["presigned"]["upload_url"], source))
            peaks["PUT"] = server.peak_rss_mib()
            answer = server.init(f"tus-{run}.bin", size)
            times["tus"].append(timed(tus, answer["presigned"]["resumable_url"], source, args.patch_mib * 1024 * 1024))
            peaks["tus"] = server.peak_rss_mib()
            # Each upload's file is checked whole, then removed so the disk does not fill.
            for received in (*folder.glob("*/put-*.bin"), *folder.glob("*/tus-*.bin")):
                assert received.stat().st_size == size, received
                received.unlink()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    best = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    mib = size / 1024 / 1024
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs; {args.size_mib} MiB file, "
          f"tus PATCHes of {args.patch_mib} MiB, best and median of {args.repeat}")
    print("| how | time (s) | MiB/s | of cp+fsync | of plain cp | median MiB/s | median of cp+fsync "
          "| API peak RSS (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in ("cp", "cp+fsync", "PUT", "tus"):
        seconds = best[name]
        peak = f"{peaks[name]:.0f}" if name in peaks else ""
        print(f"| {name} | {seconds:.2f} | {mib / seconds:.0f} | {best['cp+fsync'] / seconds:.0%} | "
              f"{best['cp'] / seconds:.0%} | {mib / median[name]:.0f} | {median['cp+fsync'] / median[name]:.0%} "
              f"| {peak} |")
    print(f"API peak RSS after a 16 MiB warm-up PUT and tus: {warm_rss:.0f} MiB")
    verdicts = {name: best["cp+fsync"] / best[name] >= SPEED_TARGET for name in ("PUT", "tus")}
    flat = all(peak - warm_rss < 64 for peak in peaks.values())
    print(f"speed >= {SPEED_TARGET:.0%} of cp+fsync: {verdicts}; memory flat (< 64 MiB above warm-up): {flat}")


if __name__ == "__main__":
    main()
