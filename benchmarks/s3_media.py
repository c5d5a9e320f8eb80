"""The scene step on a 1080p file read from an S3 endpoint, against the same step on a local file;
and the probe of a large object by its URL against the probe of a copy.

Two ways for the media tools to read an object, measured side by side:
- **copy**: `S3Store.media_input`, a scratch copy downloaded by boto3's managed transfer
  (what the store does for decoding); the time counts the download;
- **url**: ffprobe and PyAV opening a presigned GET URL, reading by HTTP range requests.
  ffprobe takes the URL as it is (`S3Store.probe_input`, what the store does for the probe);
  the decoders open local files only, so this measurement alone opens them on the URL, with
  the URL protocols allowed for them.

The endpoint is moto's S3 server (`tests/s3_server.py`) on 127.0.0.1 in this process; each
measured step runs in a freshly spawned process, as in `benchmarks.run`, and every time is the
best of `--repeat` runs, interleaved.

    uv run python -m benchmarks.s3_media [--quick] [--repeat N] [--probe-copies N]
"""

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from benchmarks.run import (
    FULL,
    QUICK,
    Run,
    _peaks,
    best,
    in_fresh_process,
    log,
    print_header,
    repeated_clip,
    synthetic_clip,
    table,
)
from heimdex_pipeline.media import decoding, scenes
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.scenes import detect_scenes
from heimdex_pipeline.media.tools import format_options
from heimdex_pipeline.storage.s3 import S3Store
from tests.s3_server import s3_endpoint

# The target: the scene step on a file from S3 within this factor of the step on a local file.
S3_RATIO_TARGET = 1.2
KEY = "uploads/bench/clip.mp4"
LARGE_KEY = "uploads/bench/large.mp4"
WAYS = ("local", "copy", "url")
# The large object the probe is measured on: the detection clip this many times over (26 MB each).
PROBE_COPIES, QUICK_PROBE_COPIES = 12, 2


@contextmanager
def decoded_by_url(url: str) -> Iterator[None]:
    """Make the scene decoders open `url` whatever path they are given (measurement only: they
    read local files alone)."""
    with mock.patch.object(decoding, "FORMAT_OPTIONS", format_options(url)), \
         mock.patch.object(decoding, "input_url", lambda _: url), \
         mock.patch.object(scenes, "require_file", lambda _: None):
        yield


def scene_step(way: str, local: str, bucket: str, endpoint: str) -> Run:
    """Probe, then detect scenes, reading the video `way`; in a fresh worker process.

    `wall_s` is the scene step (detection, plus the download for `copy`), as the sidecar
    asset runs it; the probe, the upstream asset, is timed apart (`probe_s`, its own download
    counted for `copy`).
    """
    store = S3Store(bucket, endpoint_url=endpoint)
    path = Path(local)
    if way == "local":
        start = time.perf_counter()
        probe = probe_video(path)
        probed = time.perf_counter()
        detection = detect_scenes(path, probe)
    elif way == "copy":
        start = time.perf_counter()
        with store.media_input(KEY) as source:
            probe = probe_video(source)
        probed = time.perf_counter()
        with store.media_input(KEY) as source:
            detection = detect_scenes(source, probe)
    else:
        start = time.perf_counter()
        with store.probe_input(KEY) as source:
            probe = probe_video(source)
        probed = time.perf_counter()
        with decoded_by_url(store.presigned_get(KEY, 3600)):
            detection = detect_scenes(path, probe)
    wall = time.perf_counter() - probed
    rss, child_rss = _peaks()
    return Run(wall, rss, child_rss, {"probe_s": probed - start,
                                      "cuts": [scene.start_frame for scene in detection.scenes[1:]]})


def probe_step(way: str, bucket: str, endpoint: str) -> Run:
    """`probe_video` of the large object read `way` (copy: `media_input`, url: `probe_input`, as
    the probe asset and the API do); in a fresh worker process."""
    store = S3Store(bucket, endpoint_url=endpoint)
    start = time.perf_counter()
    with (store.media_input if way == "copy" else store.probe_input)(LARGE_KEY) as source:
        probe = probe_video(source)
    wall = time.perf_counter() - start
    rss, child_rss = _peaks()
    return Run(wall, rss, child_rss, {"probe": probe})


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print its report; exit status 1 when the store's way misses the target."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.s3_media", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 12 s clip and one run each: a smoke test")
    parser.add_argument("--repeat", type=int, help="runs per timing, the best one counts (default 5, quick 1)")
    parser.add_argument("--probe-copies", type=int, help="copies of the full clip in the large object probed "
                        f"(default {PROBE_COPIES}, quick {QUICK_PROBE_COPIES})")
    args = parser.parse_args(argv)
    spec = (QUICK if args.quick else FULL).detection_clip
    repeat = args.repeat or (1 if args.quick else 5)
    clip, _ = synthetic_clip(spec)
    large = repeated_clip(synthetic_clip(FULL.detection_clip)[0],
                          args.probe_copies or (QUICK_PROBE_COPIES if args.quick else PROBE_COPIES))

    runs: dict[str, list[Run]] = {way: [] for way in WAYS}
    probes: dict[str, list[Run]] = {way: [] for way in ("copy", "url")}
    with s3_endpoint() as s3:
        bucket = s3.new_bucket()
        S3Store(bucket, endpoint_url=s3.url).write_file(KEY, clip, "video/mp4")
        S3Store(bucket, endpoint_url=s3.url).write_file(LARGE_KEY, large, "video/mp4")
        started = time.perf_counter()
        for attempt in range(1, repeat + 1):
            for way in WAYS:
                runs[way].append(in_fresh_process(scene_step, way, str(clip), bucket, s3.url))
            for way in probes:
                probes[way].append(in_fresh_process(probe_step, way, bucket, s3.url))
            log(f"run {attempt}/{repeat}: " + ", ".join(f"{way} {runs[way][-1].wall_s:.2f} s" for way in WAYS)
                + "; large probe: " + ", ".join(f"{way} {probes[way][-1].wall_s:.2f} s" for way in probes))
        elapsed = time.perf_counter() - started

    local_s = best(runs["local"])
    rows = []
    for way in WAYS:
        scene_s, probe_s = best(runs[way]), min(run.output["probe_s"] for run in runs[way])
        rows.append([way, f"{probe_s:.2f}", f"{scene_s:.2f}", f"{scene_s / local_s:.2f}x",
                     " ".join(f"{run.wall_s:.2f}" for run in runs[way]),
                     "yes" if runs[way][0].output["cuts"] == runs["local"][0].output["cuts"] else "NO"])
    command = "uv run python -m benchmarks.s3_media" + (" --quick" if args.quick else "")
    print_header("Heimdex media from S3 benchmark",
                 f"{command}: {spec.label} ({clip.stat().st_size / 1e6:.0f} MB), best of {repeat} run(s) per timing, "
                 f"measured in {elapsed:.0f} s")
    print("Wall seconds. probe = probe_video; scene step = detect_scenes given the probe (copy: download included)")
    print(table(["read as", "probe s", "scene step s", "vs local", "runs s", "same cuts"], rows))
    print()
    print(f"Probe of a {large.stat().st_size / 1e6:.0f} MB object ({large.name}), wall seconds")
    print(table(["read as", "probe s", "runs s", "same probe"],
                [[way, f"{best(probes[way]):.2f}", " ".join(f"{run.wall_s:.2f}" for run in probes[way]),
                  "yes" if probes[way][0].output["probe"] == probes["copy"][0].output["probe"] else "NO"]
                 for way in probes]))
    print()
    ratio = best(runs["copy"]) / local_s
    passed = ratio <= S3_RATIO_TARGET
    print("Targets")
    print(f"  {'PASS' if passed else 'MISS'}  scene step from S3 (S3Store.media_input) <= {S3_RATIO_TARGET:.1f}x "
          f"the step on a local file: {ratio:.2f}x")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
