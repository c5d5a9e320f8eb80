"""Deleting a video: its files, its catalog rows, its runs and its Dagster partition.

Used by the API's `DELETE /v1/assets/{asset_id}`, and by operators, with the services' DAGSTER_HOME:

    DAGSTER_HOME=$PWD/.dagster_home uv run python -m heimdex_pipeline.admin.delete v_… [v_… ...]

The order makes an interrupted deletion safe to repeat and never brings the video back: the
files go first (the source too, or the sensor would ingest it again), then the catalog rows (the
video is gone from the API and the sensor's lost-run check), then the runs and the partition,
which a later deletion of the same id still removes (`leftovers`). The whole deletion holds the
video's claim (`heimdex_pipeline.catalog.claims`), so that a commit, a job request or the upload
sensor bringing the same video in never lands in the middle of it.
"""

import argparse
import os
import sys
from dataclasses import dataclass, field

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from sqlalchemy import delete, select

from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.catalog.claims import AssetBusyError, asset_claim
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import CheckOutcome, RunProgress, Source, Upload, Video
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.core.settings import get_settings
from heimdex_pipeline.runs.tags import PARTITION_TAG
from heimdex_pipeline.storage import ObjectStore, store_from_settings
from heimdex_pipeline.storage.layout import (
    frames_key,
    probe_key,
    qc_key,
    sidecar_key,
    storyboard_prefix,
    thumbnails_prefix,
    upload_prefix,
)

# Runs that may still read or write the video's files.
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
             DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


class VideoBusyError(Exception):
    """A run of the video is queued or running, or is being started: deleting under it would break it."""

    def __init__(self, asset_id: str, run_ids: list[str]) -> None:
        super().__init__(f"{asset_id} has {len(run_ids)} run(s) queued or in progress"
                         f"{': ' + ', '.join(run_ids) if run_ids else ', or one being started'}")
        self.run_ids = run_ids


@dataclass
class Deletion:
    """What deleting a video removed."""

    asset_id: str
    org_id: str | None
    objects: int = 0
    run_ids: list[str] = field(default_factory=list)
    partition: bool = False


def video_runs(instance: DagsterInstance, asset_id: str, statuses: list[DagsterRunStatus] | None = None) -> list[str]:
    """The ids of the video's runs (those in `statuses`, if given)."""
    records = instance.get_run_records(RunsFilter(tags={PARTITION_TAG: asset_id}, statuses=statuses))
    return [record.dagster_run.run_id for record in records]


def _delete_files(store: ObjectStore, video: Video, source_keys: list[str], upload_ids: list[str]) -> int:
    count = 0
    for key in source_keys:
        count += store.stat(key) is not None
        store.delete(key)
    for upload_id in upload_ids:
        count += store.delete_prefix(upload_prefix(video.org_id, upload_id))
    for key in (probe_key(video.org_id, video.asset_id), sidecar_key(video.org_id, video.asset_id),
                frames_key(video.org_id, video.asset_id), qc_key(video.org_id, video.asset_id)):
        count += store.stat(key) is not None
        store.delete(key)
    return count + sum(store.delete_prefix(prefix(video.org_id, video.asset_id))
                       for prefix in (thumbnails_prefix, storyboard_prefix))


def leftovers(instance: DagsterInstance, deletion: Deletion) -> None:
    """Remove the video's runs and partition from Dagster (what a deletion does after the catalog rows)."""
    for run_id in video_runs(instance, deletion.asset_id):
        instance.delete_run(run_id)
        deletion.run_ids.append(run_id)
    if instance.has_dynamic_partition(videos_partitions.name, deletion.asset_id):
        instance.delete_dynamic_partition(videos_partitions.name, deletion.asset_id)
        deletion.partition = True


def delete_video(instance: DagsterInstance, store: ObjectStore, catalog_url: str, asset_id: str,
                 claim_wait_s: float | None = None, claim_lease_s: float | None = None) -> Deletion:
    """Delete the video `asset_id` whole; VideoBusyError while a run of it is queued or running, or while
    another request held its claim for longer than `claim_wait_s` (the settings' unless given).

    The whole deletion holds the video's claim (`catalog.claims`), as a commit or a job request
    holds it from cataloguing the video to launching its run: the two never interleave, so either
    the run exists before the deletion looks (and makes it wait), or the video comes back whole
    after it. A video no longer catalogued (deleted already, or never) still has its runs and
    partition removed, if an earlier deletion was cut short before them.
    """
    settings = get_settings()
    wait_s = settings.asset_claim_wait_s if claim_wait_s is None else claim_wait_s
    lease_s = settings.asset_claim_lease_s if claim_lease_s is None else claim_lease_s
    try:
        with asset_claim(catalog_url, asset_id, "delete", wait_s, lease_s):
            return _delete_claimed(instance, store, catalog_url, asset_id)
    except AssetBusyError:
        raise VideoBusyError(asset_id, video_runs(instance, asset_id, IN_FLIGHT)) from None


def _delete_claimed(instance: DagsterInstance, store: ObjectStore, catalog_url: str, asset_id: str) -> Deletion:
    if busy := video_runs(instance, asset_id, IN_FLIGHT):
        raise VideoBusyError(asset_id, busy)
    with session_scope(catalog_url) as session:
        video = session.get(Video, asset_id)
        source_keys = list(session.scalars(select(Source.key).where(Source.asset_id == asset_id)))
        upload_ids = list(session.scalars(select(Upload.upload_id).where(Upload.asset_id == asset_id)))
    deletion = Deletion(asset_id=asset_id, org_id=video.org_id if video else None)
    if video is not None:
        deletion.objects = _delete_files(store, video, source_keys, upload_ids)
    with session_scope(catalog_url) as session:
        session.execute(delete(RunProgress).where(RunProgress.run_id.in_(video_runs(instance, asset_id))))
        session.execute(delete(CheckOutcome).where(CheckOutcome.asset_id == asset_id))
        session.execute(delete(Upload).where(Upload.asset_id == asset_id))
        session.execute(delete(Source).where(Source.asset_id == asset_id))
        session.execute(delete(Video).where(Video.asset_id == asset_id))
    leftovers(instance, deletion)
    get_logger("delete", asset_id=asset_id, org_id=deletion.org_id).info(
        "video.deleted", objects=deletion.objects, runs=len(deletion.run_ids), partition=deletion.partition,
        catalogued=video is not None)
    return deletion


def main(argv: list[str] | None = None) -> int:
    """Delete the videos named on the command line, with $DAGSTER_HOME's instance and the services' settings."""
    parser = argparse.ArgumentParser(prog="python -m heimdex_pipeline.admin.delete", description=__doc__.split("\n")[0])
    parser.add_argument("asset_ids", nargs="+", metavar="asset_id", help="a video's asset id (v_…)")
    args = parser.parse_args(argv)
    if not os.environ.get("DAGSTER_HOME"):
        parser.error("DAGSTER_HOME is not set: the instance of the services (./scripts/run.sh uses ./.dagster_home)")
    settings = get_settings()
    store, failed = store_from_settings(settings), 0
    with DagsterInstance.get() as instance:
        for asset_id in args.asset_ids:
            try:
                deletion = delete_video(instance, store, settings.catalog_url, asset_id)
            except VideoBusyError as exc:
                print(f"{asset_id}: not deleted: {exc}", file=sys.stderr)
                failed += 1
                continue
            if deletion.org_id is None and not deletion.run_ids and not deletion.partition:
                print(f"{asset_id}: no such video", file=sys.stderr)
                failed += 1
                continue
            print(f"{asset_id}: deleted ({deletion.org_id or 'not catalogued'}): {deletion.objects} files, "
                  f"{len(deletion.run_ids)} runs, partition {'removed' if deletion.partition else 'absent'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
