"""The upload sensor on a large S3 bucket: one tick with nothing new, then one with a few new videos.

The bucket is on moto's S3 server (`tests/s3_server.py`) on 127.0.0.1, filled with `--objects`
small objects under `uploads/<org>/` of a few orgs by a pool of boto3 PUTs. Every one of them is
catalogued as an already-known source (one video each, with its Dagster partition), as the sensor
would have left them. Then the real `upload_sensor` is evaluated against a real Dagster instance:
1. ticks with nothing new: wall time, ListObjectsV2 pages, cursor size, peak RSS;
2. after `--new` real clips are put in the bucket: one tick requests exactly that many runs,
   each run key once, and the next tick requests none.
Each tick runs in a freshly spawned process, as in `benchmarks.run`, so its peak RSS is its own
(moto's server and its objects live in this process). A last fresh process times the tick's
parts one by one: the catalog's `known_sources`, the listing, the review, the lost-run check.

    uv run python -m benchmarks.sensor_scale [--objects 100000] [--orgs 4] [--new 5] [--repeat 3]
"""

import argparse
import hashlib
import logging
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from dagster import DagsterInstance, SensorResult, build_sensor_context, instance_for_test
from dagster._core.instance.ref import InstanceRef
from sqlalchemy import insert

from benchmarks.run import Run, best, in_fresh_process, log, mb, print_header, table
from heimdex_pipeline.catalog.db import make_engine
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.catalog.models import Source, Video, utcnow
from heimdex_pipeline.core.settings import PipelineSettings
from heimdex_pipeline.media.fingerprint import ContentHash, asset_id_for
from heimdex_pipeline.resources import MediaStorage, resources_from
from tests.media.synthetic import make_clip
from tests.s3_server import s3_endpoint

PARTITIONS = "videos"
# Rows per INSERT, partitions per `add_dynamic_partitions` (SQLite's bound-parameter limit).
BATCH = 5000
# The promise: the cursor stays small whatever the bucket holds.
CURSOR_LIMIT_BYTES = 1024


def _resources(catalog_url: str, storage: dict[str, Any]) -> dict[str, Any]:
    """The sensor's resources; `storage` is MediaStorage's config (resources do not pickle into a worker)."""
    return {**resources_from(PipelineSettings(database_url=catalog_url)), "storage": MediaStorage(**storage)}


def s3_storage(bucket: str, endpoint: str) -> dict[str, Any]:
    """MediaStorage's config for a bucket of the S3 server."""
    return {"backend": "s3", "bucket": bucket, "endpoint_url": endpoint}


def _high_water_kb() -> int:
    """This process's peak RSS in KiB (VmHWM): ru_maxrss would keep the parent's peak across the
    spawn's exec, and the parent holds moto's server with every object."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _count_pages(storage: MediaStorage) -> dict[str, float]:
    """The ListObjectsV2 calls the store's client makes, and the seconds spent waiting for their
    answers (botocore event hooks; the listing is sequential); none on disk."""
    pages = {"pages": 0, "waited_s": 0.0, "sent": 0.0}
    if storage.backend != "s3":
        return pages

    def sent(**_: Any) -> None:
        pages["sent"] = time.perf_counter()

    def answered(**_: Any) -> None:
        pages["pages"] += 1
        pages["waited_s"] += time.perf_counter() - pages["sent"]
    storage.store.client.meta.events.register("before-call.s3.ListObjectsV2", sent)
    storage.store.client.meta.events.register("after-call.s3.ListObjectsV2", answered)
    return pages


def tick(ref: InstanceRef, catalog_url: str, storage: dict[str, Any], cursor: str | None) -> Run:
    """One evaluation of the real `upload_sensor`; in a fresh worker process."""
    from heimdex_pipeline.core.logs import configure_logging
    from heimdex_pipeline.sensors import upload_sensor

    # The sensor's info lines (one per new video) would land in the report on stdout.
    configure_logging()
    logging.getLogger("heimdex").setLevel(logging.WARNING)
    resources = _resources(catalog_url, storage)
    pages = _count_pages(resources["storage"])
    with DagsterInstance.from_ref(ref) as instance:
        before = _high_water_kb()
        start = time.perf_counter()
        result = upload_sensor(build_sensor_context(instance=instance, cursor=cursor, resources=resources))
        wall = time.perf_counter() - start
    output: dict[str, Any] = {"pages": pages["pages"], "waited_s": pages["waited_s"], "rss_before_kb": before, "skipped": True, "cursor": cursor,
                              "run_keys": [], "partitions": []}
    if isinstance(result, SensorResult):
        output.update(skipped=False, cursor=result.cursor,
                      run_keys=[request.run_key for request in result.run_requests or []],
                      partitions=[key for request in result.dynamic_partitions_requests or []
                                  for key in request.partition_keys])
    return Run(wall, _high_water_kb(), output=output)


def breakdown(ref: InstanceRef, catalog_url: str, storage: dict[str, Any]) -> Run:
    """The idle tick's parts, timed one by one with the functions it calls; in a fresh worker process."""
    from heimdex_pipeline.uploads.bucket import review_bucket, scan_bucket
    from heimdex_pipeline.catalog.repository import known_sources, reserved_upload_prefixes
    from heimdex_pipeline.sensors.uploads import lost_sensor_runs

    resources = _resources(catalog_url, storage)
    store, catalog = resources["storage"].store, resources["catalog"]
    parts: dict[str, float] = {}

    def timed(name: str, step: Any) -> Any:
        start = time.perf_counter()
        value = step()
        parts[name] = time.perf_counter() - start
        return value

    def catalog_reads() -> tuple[dict[str, tuple[int, str]], set[str]]:
        with catalog.session() as session:
            return known_sources(session), reserved_upload_prefixes(session)
    known, reserved = timed("catalog: known_sources, reserved prefixes", catalog_reads)

    pages = _count_pages(resources["storage"])
    s3 = store.backend == "s3"
    listed = timed("listing (ListObjectsV2 pages, new keys checked)" if s3 else "listing (folder walk, new keys checked)",
                   lambda: list(scan_bucket(store, known)))
    if s3:
        parts["  of which waiting for the pages (the S3 server)"] = pages["waited_s"]
    timed("review_bucket", lambda: review_bucket(iter(listed), known, reserved, set(),
                                                 resources["uploads"].max_new_files_per_tick, written_before=None))

    with DagsterInstance.from_ref(ref) as instance:
        timed("lost-run check: partitions not seen yet", lambda: lost_sensor_runs(instance, catalog, ()))
    return Run(sum(value for name, value in parts.items() if not name.startswith(" ")), _high_water_kb(),
               output={"parts": parts, "known": len(known)})


def fill_bucket(client: Any, bucket: str, count: int, orgs: int, threads: int) -> list[tuple[str, str, int, str]]:
    """PUT `count` small distinct objects under `uploads/<org>/`; return (org, key, size, ETag) of each."""
    def put(index: int) -> tuple[str, str, int, str]:
        org = f"org-{index % orgs}"
        key = f"uploads/{org}/batch-{index // 1000:03d}/clip-{index:06d}.mp4"
        body = f"heimdex sensor benchmark object {index}\n".encode()
        answer = client.put_object(Bucket=bucket, Key=key, Body=body)
        return org, key, len(body), answer["ETag"].strip('"')

    done: list[tuple[str, str, int, str]] = []
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for item in pool.map(put, range(count)):
            done.append(item)
            if len(done) % 10000 == 0:
                log(f"{len(done)} objects put, {len(done) / (time.perf_counter() - start):.0f}/s")
    return done


def catalogue(catalog_url: str, objects: list[tuple[str, str, int, str]]) -> list[str]:
    """Catalogue every object as `register_source` leaves a first sighting by the sensor: a video and
    its source row; return the asset ids."""
    now = utcnow()
    videos, sources = [], []
    for org, key, size, etag in objects:
        content = ContentHash(hashlib.sha256(key.encode()).hexdigest(), "strong", size)
        asset_id = asset_id_for(org, content)
        videos.append({"asset_id": asset_id, "org_id": org, "source_key": key, "source_name": key.rpartition("/")[2],
                       "size_bytes": size, "hash": content.value, "hash_quality": content.quality,
                       "origin": "sensor", "created_at": now, "run_launched_at": None})
        sources.append({"key": key, "org_id": org, "size_bytes": size, "version": etag, "asset_id": asset_id,
                        "seen_at": now})
    with make_engine(catalog_url).begin() as connection:
        for rows, model in ((videos, Video), (sources, Source)):
            for batch in range(0, len(rows), BATCH):
                connection.execute(insert(model), rows[batch:batch + BATCH])
    return [row["asset_id"] for row in videos]


def new_clips(folder: Path, count: int) -> list[Path]:
    """`count` small real videos of distinct content (each another pattern order and length)."""
    paths = []
    for index in range(count):
        path = folder / f"new-{index}.mp4"
        make_clip(path, (1.0 + 0.2 * index, 1.0), size="160x120", rate=10)
        paths.append(path)
    return paths


def _tick_row(label: str, run: Run) -> list[str]:
    cursor = run.output["cursor"]
    size = "none" if cursor is None else str(len(cursor.encode()))
    return [label, f"{run.wall_s:.2f}", str(run.output["pages"]), f"{run.output['waited_s']:.2f}",
            str(len(run.output["run_keys"])),
            f"{size} (skipped, unchanged)" if run.output["skipped"] else size,
            f"{mb(run.output['rss_before_kb']):.0f}", f"{mb(run.rss_kb):.0f}"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; exit status 1 when the sensor misbehaves."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sensor_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100_000, help="objects already in the bucket")
    parser.add_argument("--orgs", type=int, default=4, help="orgs the objects are spread over")
    parser.add_argument("--new", type=int, default=5, help="new videos put in the bucket for the second tick")
    parser.add_argument("--repeat", type=int, default=3, help="idle ticks timed (the best counts)")
    parser.add_argument("--threads", type=int, default=16, help="parallel PUTs while filling the bucket")
    args = parser.parse_args(argv)
    # moto's server logs every request on stderr.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    print_header("The upload sensor on a large bucket",
                 f"uv run python -m benchmarks.sensor_scale --objects {args.objects} --orgs {args.orgs} "
                 f"--new {args.new} --repeat {args.repeat}")
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="heimdex-sensor-scale-") as scratch, s3_endpoint() as s3, \
            instance_for_test(temp_dir=scratch) as instance:
        folder = Path(scratch)
        bucket = s3.new_bucket()
        # A connection per PUT thread (botocore's pool holds 10 by default).
        client = boto3.client("s3", endpoint_url=s3.url, config=Config(max_pool_connections=args.threads))
        start = time.perf_counter()
        objects = fill_bucket(client, bucket, args.objects, args.orgs, args.threads)
        fill_s = time.perf_counter() - start
        catalog_url = f"sqlite:///{folder / 'catalog.db'}"
        start = time.perf_counter()
        migrate(catalog_url)
        asset_ids = catalogue(catalog_url, objects)
        for batch in range(0, len(asset_ids), BATCH):
            instance.add_dynamic_partitions(PARTITIONS, asset_ids[batch:batch + BATCH])
        catalogue_s = time.perf_counter() - start
        log(f"bucket filled in {fill_s:.0f} s, catalogued in {catalogue_s:.0f} s")

        ref, storage = instance.get_ref(), s3_storage(bucket, s3.url)
        idle = [in_fresh_process(tick, ref, catalog_url, storage, None) for _ in range(args.repeat)]
        parts = in_fresh_process(breakdown, ref, catalog_url, storage)

        clips = new_clips(folder, args.new)
        store = MediaStorage(**storage).store
        for index, path in enumerate(clips):
            store.write_file(f"uploads/org-{index % args.orgs}/new/{path.name}", path, "video/mp4")
        taking = in_fresh_process(tick, ref, catalog_url, storage, None)
        # What the daemon does with a tick's result: add its partitions before the next tick.
        if taking.output["partitions"]:
            instance.add_dynamic_partitions(PARTITIONS, taking.output["partitions"])
        after = in_fresh_process(tick, ref, catalog_url, storage, taking.output["cursor"])

    keys = taking.output["run_keys"]
    if len(keys) != args.new or len(set(keys)) != len(keys):
        failures.append(f"the tick after {args.new} new videos requested {len(keys)} runs ({len(set(keys))} distinct)")
    if after.output["run_keys"]:
        failures.append(f"the next tick requested {len(after.output['run_keys'])} runs again")
    if any(run.output["run_keys"] for run in idle):
        failures.append("a tick with nothing new requested runs")
    for run in [*idle, taking, after]:
        if run.output["cursor"] is not None and len(run.output["cursor"].encode()) > CURSOR_LIMIT_BYTES:
            failures.append(f"a cursor of {len(run.output['cursor'].encode())} bytes")

    print(f"Bucket: {args.objects} objects under uploads/<org>/ of {args.orgs} orgs, all catalogued "
          f"(one video and partition each); filled by {args.threads} parallel PUTs in {fill_s:.0f} s "
          f"({args.objects / fill_s:.0f}/s), catalogued in {catalogue_s:.1f} s.")
    print()
    header = ["tick", "wall s", "list pages", "waiting for pages s", "runs requested", "cursor bytes", "RSS before MB", "peak RSS MB"]
    rows = [_tick_row(f"nothing new #{n + 1}", run) for n, run in enumerate(idle)]
    rows += [_tick_row(f"{args.new} new videos", taking), _tick_row("next tick", after)]
    print(table(header, rows))
    print(f"\nIdle tick, best of {len(idle)}: {best(idle):.2f} s for {parts.output['known']} known objects.")
    print("\nWhere an idle tick's time goes (each part alone, fresh process):")
    print(table(["part", "s"], [[name, f"{seconds:.2f}"] for name, seconds in parts.output["parts"].items()]))
    print(f"\nRun keys of the {args.new} new videos: {', '.join(keys)}")
    print(f"Cursor after them: {taking.output['cursor']}")
    for failure in failures:
        print(f"FAILED: {failure}")
    if not failures:
        print("\nEvery run key requested once; the cursor stayed under "
              f"{CURSOR_LIMIT_BYTES} bytes; the next tick requested nothing.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
