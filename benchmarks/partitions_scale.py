"""Partitions at scale: 100,000 video partitions in a PostgreSQL instance, and what has to stay quick on it.

Two sites are filled alike, each on two fresh PostgreSQL databases (Dagster's storage, and the
catalog at `alembic upgrade head`) and a local store (the embedded default backend): a large one
with `--partitions` videos and a small one with `--small`. Every video is a tiny file under
`uploads/<org>/` catalogued as the sensor leaves a first sighting (a `videos` and a `sources`
row, `benchmarks.sensor_scale.catalogue`, with the file's mtime in ns as its version, as
`LocalStore` lists it) and has its partition of `videos`; the first `--runs` videos have a
succeeded ingest run, seeded with its events as `benchmarks.job_status` seeds them. Then:
1. the real `upload_sensor` ticks with nothing new, each in a fresh process (`benchmarks.sensor_scale.tick`),
   and a process timing the tick's parts; the first tick also sees every video's partition once
   (`videos.partition_seen_at`), as the first tick after migration 0005 does;
2. `--new` new distinct files are put in the bucket; ticks follow, each result applied to the
   instance as the daemon would (its partitions added, its cursor kept), until a tick asks for nothing:
   one run per file, no run key or partition twice, every tick within the sensor timeout;
3. `GET /v1/assets/{id}` and `GET /v1/jobs/{id}` on the real app (`create_app`, the instance of
   DAGSTER_HOME as served) with a token, on both sites: each id read once, p50 and p95;
4. the web UI (`dagster-webserver` on workspace.yaml) in Debian's Chromium driven by Playwright:
   `scene_sidecar`'s partitions view, and one partition's, on both sites.

    uv run python -m benchmarks.partitions_scale [--partitions 100000] [--new 1000] [--runs 10000] [--small 100]
"""

import argparse
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, DagsterRunStatus

from benchmarks.job_status import SeededRun, seed_run
from benchmarks.run import Run, best, in_fresh_process, log, print_header, table
from benchmarks.sensor_scale import BATCH, PARTITIONS, breakdown, catalogue, tick
from heimdex_api.services.dagster_instance import tuned_for_serving
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.core.settings import get_settings
from tests.dagster_home import free_port, instance_yaml, start_process, stop_process, wait_until_serving
from tests.postgres import create_database, drop_databases

# The targets.
IDLE_TICK_TARGET_S = 1.0
# Dagster's limit on one sensor evaluation (the daemon's gRPC call to the code server).
SENSOR_TIMEOUT_S = float(os.environ.get("DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS", 60))
FILES_PER_FOLDER = 1000
# Reads of each route not counted: the first makes the instance or the catalog's engine, the next
# few fill the connection pools and the interpreter's caches.
WARM_UP_READS = 10
# The partitions view's count of missing partitions, e.g. "Missing (100,000)".
MISSING_COUNT = re.compile(r"^Missing \([\d,]+\)$")


@dataclass
class Site:
    """A Dagster instance, its catalog and its store, filled with known videos."""

    label: str
    home: Path
    derived: Path
    catalog_url: str
    asset_orgs: dict[str, str] = field(default_factory=dict)  # asset id to org id
    run_ids: dict[str, str] = field(default_factory=dict)  # run id to org id
    fill_s: dict[str, float] = field(default_factory=dict)

    @property
    def storage(self) -> dict[str, Any]:
        """MediaStorage's config: the local store under the derived root."""
        return {"backend": "local", "root": str(self.derived)}

    def env(self) -> dict[str, str]:
        """The environment the pipeline's processes get: this instance, store and catalog."""
        return {**os.environ, "DAGSTER_HOME": str(self.home), "HEIMDEX_DERIVED_ROOT": str(self.derived),
                "HEIMDEX_DATABASE_URL": self.catalog_url}

    def instance(self) -> DagsterInstance:
        """The site's Dagster instance (its PostgreSQL storage), to be closed by the caller."""
        return DagsterInstance.from_config(str(self.home))


def write_uploads(derived: Path, count: int, orgs: int, name: str = "clip") -> list[tuple[str, str, int, str]]:
    """`count` tiny files of distinct content under `uploads/<org>/`; (org, key, size, version) of each,
    the version being what `LocalStore` lists (the mtime in ns)."""
    files = []
    for index in range(count):
        org = f"org-{index % orgs}"
        key = f"uploads/{org}/{name}-{index // FILES_PER_FOLDER:03d}/{name}-{index:06d}.mp4"
        path = derived / key
        if index % FILES_PER_FOLDER < orgs:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"heimdex partitions benchmark {name} {index}\n".encode())
        stat = path.stat()
        files.append((org, key, stat.st_size, str(stat.st_mtime_ns)))
    return files


def fill_site(label: str, workdir: Path, dagster_url: str, catalog_url: str, partitions: int, orgs: int,
              runs: int) -> Site:
    """A site of `partitions` known videos, the first `runs` of them with a succeeded ingest run."""
    site = Site(label, workdir / label / "dagster_home", workdir / label / "derived", catalog_url)
    site.home.mkdir(parents=True)
    (site.home / "dagster.yaml").write_text(instance_yaml({"postgres": {"postgres_url": dagster_url}}))
    migrate(catalog_url)
    start = time.perf_counter()
    files = write_uploads(site.derived, partitions, orgs)
    site.fill_s["files"] = time.perf_counter() - start
    start = time.perf_counter()
    asset_ids = catalogue(catalog_url, files)
    site.asset_orgs = {asset_id: org for asset_id, (org, *_) in zip(asset_ids, files, strict=True)}
    site.fill_s["catalog"] = time.perf_counter() - start
    with site.instance() as instance:
        # The API's setup (one pooled connection, no table reflection per event): seeding goes faster.
        tuned_for_serving(instance)
        start = time.perf_counter()
        for batch in range(0, len(asset_ids), BATCH):
            instance.add_dynamic_partitions(PARTITIONS, asset_ids[batch:batch + BATCH])
        site.fill_s["partitions"] = time.perf_counter() - start
        start = time.perf_counter()
        now = time.time()
        for index, asset_id in enumerate(asset_ids[:runs]):
            org = site.asset_orgs[asset_id]
            started = now - (runs - index) * 60.0  # one run a minute, oldest first
            site.run_ids[seed_run(instance, SeededRun(org, "ingest", asset_id, DagsterRunStatus.SUCCESS, started))] = org
            if index % 1000 == 999:
                log(f"{label}: seeded {index + 1}/{runs} runs ({time.perf_counter() - start:.0f} s)")
        site.fill_s["runs"] = time.perf_counter() - start
    log(f"{label}: {partitions} videos, {len(site.run_ids)} runs; "
        + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in site.fill_s.items()))
    return site


def take_new_files(site: Site, count: int, orgs: int) -> tuple[list[Run], list[str]]:
    """Put `count` new files in the bucket and tick, applying each result as the daemon would,
    until a tick asks for nothing; the ticks, and the problems found."""
    files = write_uploads(site.derived, count, orgs, name="new")
    # Files quiet for the settle time are taken at the first look (a file on disk may still be written to).
    time.sleep(get_settings().sensor_settle_s + 0.5)
    limit = get_settings().sensor_max_new_files_per_tick
    ticks: list[Run] = []
    cursor = None
    with site.instance() as instance:
        for _ in range(math.ceil(count / limit) + 3):
            run = in_fresh_process(tick, instance.get_ref(), site.catalog_url, site.storage, cursor)
            ticks.append(run)
            cursor = run.output["cursor"]
            if run.output["partitions"]:
                instance.add_dynamic_partitions(PARTITIONS, run.output["partitions"])
            log(f"tick {len(ticks)}: {run.wall_s:.2f} s, {len(run.output['run_keys'])} runs requested")
            if not run.output["run_keys"]:
                break
    keys = [key for run in ticks for key in run.output["run_keys"]]
    partitions = [key for run in ticks for key in run.output["partitions"]]
    problems = []
    if len(keys) != len(files) or len(set(keys)) != len(keys):
        problems.append(f"{len(files)} new files made {len(keys)} run requests ({len(set(keys))} distinct run keys)")
    if sorted(partitions) != sorted(set(keys)):
        problems.append(f"{len(partitions)} partitions asked for {len(set(keys))} run keys")
    if set(keys) & site.asset_orgs.keys():
        problems.append("a run was requested again for a known video")
    if ticks[-1].output["run_keys"]:
        problems.append(f"still taking new files after {len(ticks)} ticks")
    problems += [f"tick {n} took {run.wall_s:.1f} s, over the sensor timeout" for n, run in enumerate(ticks, 1)
                 if run.wall_s > SENSOR_TIMEOUT_S]
    return ticks, problems


def api_reads(env: dict[str, str], asset_orgs: dict[str, str], run_orgs: dict[str, str]) -> Run:
    """Each video of `asset_orgs` and each job of `run_orgs` read once through the app, with its org's
    token; milliseconds of each. In a fresh worker process: the app serves $DAGSTER_HOME's instance."""
    from fastapi.testclient import TestClient

    from heimdex_api.core.config import ApiSettings
    from heimdex_api.core.security import READ, mint_token
    from heimdex_api.main import create_app

    os.environ.update(env)
    settings = ApiSettings(jwt_secret="partitions-benchmark-secret-of-32-bytes-or-more", env="development",
                           job_queue_backend="dagster", migrate_on_start=False)
    tokens = {org: {"Authorization": f"Bearer {mint_token(org, [READ], settings)}"}
              for org in {*asset_orgs.values(), *run_orgs.values()}}
    timings: dict[str, list[float]] = {"asset": [], "job": []}
    start = time.perf_counter()
    with TestClient(create_app(settings)) as client:
        for kind, route, ids in (("asset", "/v1/assets", asset_orgs), ("job", "/v1/jobs", run_orgs)):
            for number, (item, org) in enumerate(ids.items()):
                sent = time.perf_counter()
                answer = client.get(f"{route}/{item}", headers=tokens[org])
                if answer.status_code != 200:
                    raise RuntimeError(f"{route}/{item}: {answer.status_code} {answer.text}")
                if number >= WARM_UP_READS:
                    timings[kind].append((time.perf_counter() - sent) * 1000)
    return Run(time.perf_counter() - start, 0, output=timings)


def ui_timings(site: Site, workdir: Path, partition: str) -> dict[str, float]:
    """Seconds until the web UI shows `scene_sidecar`'s partitions, then one partition's page; each
    opened twice (the first also loads what the webserver caches)."""
    from playwright.sync_api import expect, sync_playwright

    from tests.ui.test_web_ui import CHROMIUM, CHROMIUM_ARGS, _dismiss_community_dialog

    port, log_path = free_port(), workdir / f"webserver-{site.label}.log"
    server = start_process([str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                            "-w", "workspace.yaml"], site.env(), log_path)
    url = f"http://127.0.0.1:{port}"
    seconds: dict[str, float] = {}
    try:
        wait_until_serving(f"{url}/server_info", server, log_path, timeout_s=120)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.goto(f"{url}/asset-groups/video/lineage")
            _dismiss_community_dialog(page)
            # What shows the page has loaded: the partitions' status counts, the partition's key in full.
            pages = {"partitions view": (f"{url}/assets/scene_sidecar?view=partitions", MISSING_COUNT),
                     "one partition": (f"{url}/assets/scene_sidecar?view=partitions&partition={partition}", partition)}
            for attempt in ("first", "again"):
                for name, (address, shown) in pages.items():
                    start = time.perf_counter()
                    page.goto(address)
                    # Long keys are also laid out hidden, to measure them for truncation.
                    expect(page.get_by_text(shown, exact=True).filter(visible=True).first).to_be_visible(timeout=300_000)
                    seconds[f"{name}, {attempt}"] = time.perf_counter() - start
            browser.close()
    finally:
        stop_process(server)
    return seconds


def _percentiles(milliseconds: list[float]) -> str:
    cuts = statistics.quantiles(milliseconds, n=20)
    return f"{statistics.median(milliseconds):.1f} / {cuts[18]:.1f}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; exit status 1 when a target is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.partitions_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=100_000, help="videos (partitions) of the large site")
    parser.add_argument("--small", type=int, default=100, help="videos of the small site the API and UI are compared with")
    parser.add_argument("--new", type=int, default=1000, help="new files put in the bucket of the large site")
    parser.add_argument("--runs", type=int, default=10_000, help="succeeded ingest runs seeded on the large site")
    parser.add_argument("--orgs", type=int, default=4, help="orgs the videos are spread over")
    parser.add_argument("--reads", type=int, default=200, help="reads of each API route on each site")
    parser.add_argument("--repeat", type=int, default=3, help="idle ticks timed (the best counts)")
    args = parser.parse_args(argv)
    command = ("uv run python -m benchmarks.partitions_scale "
               f"--partitions {args.partitions} --small {args.small} --new {args.new} --runs {args.runs}")
    workdir = Path(tempfile.mkdtemp(prefix="heimdex-partitions-scale-"))
    databases: list[str] = []
    try:
        sites = {}
        for label, partitions, runs in (("small", args.small, min(args.runs, args.small)),
                                        ("large", args.partitions, args.runs)):
            databases += [create_database("heimdex_bench"), create_database("heimdex_bench")]
            sites[label] = fill_site(label, workdir, *databases[-2:], partitions, args.orgs, runs)
        large = sites["large"]
        with large.instance() as instance:
            ref = instance.get_ref()
        idle = [in_fresh_process(tick, ref, large.catalog_url, large.storage, None) for _ in range(args.repeat)]
        log(f"idle ticks: {', '.join(f'{run.wall_s:.2f} s' for run in idle)}")
        parts = in_fresh_process(breakdown, ref, large.catalog_url, large.storage)
        ticks, problems = take_new_files(large, args.new, args.orgs)

        reads, ui = {}, {}
        for label, site in sites.items():
            # Videos with a run: without a sidecar, the asset's status is its newest run's.
            runs = dict(random.sample(list(site.run_ids.items()), min(args.reads, len(site.run_ids))))
            with_runs = list(site.asset_orgs)[:len(site.run_ids)]
            videos = {asset_id: site.asset_orgs[asset_id] for asset_id in random.sample(with_runs, len(runs))}
            reads[label] = in_fresh_process(api_reads, site.env(), videos, runs).output
            log(f"{label}: API reads done")
            ui[label] = ui_timings(site, workdir, next(iter(site.asset_orgs)))
            log(f"{label}: web UI {ui[label]}")
    finally:
        drop_databases(databases)
        shutil.rmtree(workdir, ignore_errors=True)

    print_header("Partitions at scale", command)
    print(f"Sites: PostgreSQL storage and catalog, local store; large: {args.partitions} videos (partitions), "
          f"{len(large.run_ids)} succeeded runs; small: {args.small} videos, {len(sites['small'].run_ids)} runs; "
          f"{args.orgs} orgs.")
    print("Filling the large site, s: " + ", ".join(f"{step} {seconds:.0f}" for step, seconds in large.fill_s.items()))
    print()
    rows = [[f"nothing new #{n}", f"{run.wall_s:.2f}", "0", "", f"{run.rss_kb / 1024:.0f}"] for n, run in enumerate(idle, 1)]
    rows += [[f"{args.new} new files, tick {n}", f"{run.wall_s:.2f}", str(len(run.output["run_keys"])),
              str(len(run.output["cursor"] or "")), f"{run.rss_kb / 1024:.0f}"] for n, run in enumerate(ticks, 1)]
    print(table(["upload_sensor tick", "wall s", "runs requested", "cursor bytes", "peak RSS MiB"], rows))
    print("\nWhere an idle tick's time goes (each part alone, fresh process):")
    print(table(["part", "s"], [[name, f"{seconds:.2f}"] for name, seconds in parts.output["parts"].items()]))
    print()
    print(table(["site", "asset read p50 / p95 ms", "job read p50 / p95 ms", "reads each"],
                [[label, _percentiles(read["asset"]), _percentiles(read["job"]), str(len(read["job"]))]
                 for label, read in reads.items()]))
    print()
    names = list(next(iter(ui.values())))
    print(table(["web UI, s to", *names], [[label, *(f"{ui[label][name]:.1f}" for name in names)] for label in ui]))
    print()
    keys = [key for run in ticks for key in run.output["run_keys"]]
    found = [(best(idle) <= IDLE_TICK_TARGET_S, f"a tick with nothing new <= {IDLE_TICK_TARGET_S:.0f} s: "
                                                f"{best(idle):.2f} s (best of {len(idle)})"),
             (not problems, f"{args.new} new files: {len(keys)} runs over {len(ticks)} ticks, {len(set(keys))} "
                            f"distinct, slowest tick {max(run.wall_s for run in ticks):.1f} s "
                            f"(timeout {SENSOR_TIMEOUT_S:.0f} s)")]
    print("Targets")
    for passed, text in found:
        print(f"  {'PASS' if passed else 'MISS'}  {text}")
    for problem in problems:
        print(f"  FAILED: {problem}")
    return 0 if all(passed for passed, _ in found) else 1


if __name__ == "__main__":
    sys.exit(main())
