"""The upload sensor: a file dropped in the bucket becomes a partition and an ingest run."""

import json
import time
from collections.abc import Collection
from datetime import timedelta

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.catalog.claims import new_holder, release_claims, try_claim
from heimdex_pipeline.catalog.models import utcnow
from heimdex_pipeline.catalog.repository import (
    get_video,
    known_sources,
    mark_partitions_seen,
    mark_run_launched,
    register_source,
    reserved_upload_prefixes,
    unlaunched_videos,
    unseen_partitions,
)
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.core.settings import get_settings
from heimdex_pipeline.media.fingerprint import asset_id_for
from heimdex_pipeline.resources import CatalogResource, MediaStorage, UploadRules
from heimdex_pipeline.runs.jobs import ingest_video_job
from heimdex_pipeline.runs.tags import PARTITION_TAG, run_tags
from heimdex_pipeline.storage import ObjectNotFoundError
from heimdex_pipeline.uploads.bucket import review_bucket, scan_bucket
from heimdex_pipeline.uploads.identity import ContentChangedError, hash_seen_object

# Who holds the claims the sensor takes (`catalog.claims`).
SENSOR_HOLDER = "upload_sensor"


@sensor(
    job=ingest_video_job,
    # Fixed when the definitions load: Dagster's daemon reads it from the sensor's definition.
    minimum_interval_seconds=get_settings().sensor_interval_s,
    default_status=DefaultSensorStatus.RUNNING,
    description="Ingests each settled new object under uploads/<org_id>/ of the storage.",
)
def upload_sensor(context: SensorEvaluationContext, catalog: CatalogResource, storage: MediaStorage,
                  uploads: UploadRules) -> SensorResult | SkipReason:
    """Add a partition and request an ingest run for each new content in the upload bucket."""
    log = get_logger("sensor")
    store = storage.store
    # The runs and partitions the last tick asked for are in the instance now: its turns end here.
    release_claims(catalog.database_url, f"{SENSOR_HOLDER}:")
    turns = _Turns(catalog, uploads.claim_lease_s)
    # The cursor keeps only short digests of objects not settled yet, so it stays small
    # however many objects the bucket holds; ingested objects are known from the catalog.
    previous = set(json.loads(context.cursor)["unsettled"]) if context.cursor else set()
    with catalog.session() as session:
        known, reserved = known_sources(session), reserved_upload_prefixes(session)
    limit = uploads.max_new_files_per_tick
    written_before = None if store.objects_appear_whole else time.time() - uploads.settle_s
    review = review_bucket(scan_bucket(store, known), known, reserved, previous, limit, written_before)
    # An API upload may have been reserved, or committed, while the bucket was listed: what is to
    # be taken is checked again against the catalog as it is now.
    with catalog.session() as session:
        known = known_sources(session, [source.key for source in review.settled])
        reserved = reserved_upload_prefixes(session)
    review.settled = review_bucket(iter(review.settled), known, reserved, set(), limit, written_before=None).settled
    new_partitions: dict[str, str] = {}  # asset id to org id
    # Hashing is the tick's only heavy work: past the budget, files wait for the next tick
    # (at least one is taken per tick, so a huge file still gets its turn).
    deadline = time.monotonic() + uploads.hash_budget_s
    for taken, source in enumerate(review.settled):
        if taken and time.monotonic() > deadline:
            review.defer(source)
            continue
        try:
            content, _ = hash_seen_object(store, source, uploads.weak_threshold_bytes)
        except ObjectNotFoundError:
            continue  # removed since it was listed
        except ContentChangedError:
            continue  # written to since it was listed, or while it was hashed: look again next tick
        asset_id = asset_id_for(source.org_id, content)
        if not turns.take(asset_id):
            review.defer(source)  # being deleted, or brought in by the API: looked at again next tick
            continue
        if store.stat(source.key) is None:
            continue  # a deletion removed it since it was hashed
        with catalog.session() as session:
            _, created = register_source(session, store, source, asset_id, content, origin="sensor")
        if asset_id in new_partitions:
            continue
        if created or not context.instance.has_dynamic_partition(videos_partitions.name, asset_id):
            new_partitions[asset_id] = source.org_id
            log.info("sensor.ingest", asset_id=asset_id, org_id=source.org_id, key=source.key)
        else:
            turns.give_back(asset_id)
            log.info("sensor.known_content", asset_id=asset_id, org_id=source.org_id, key=source.key)
    new_partitions.update(turns.still_catalogued(lost_sensor_runs(context.instance, catalog, new_partitions.keys())))
    new_partitions.update(turns.still_catalogued(_lost_api_runs(context, catalog, uploads.lost_run_grace_s)))
    cursor = json.dumps({"unsettled": sorted(review.unsettled)})
    if not new_partitions and not review.unsettled and not previous:
        return SkipReason("no new file in the upload bucket")
    return SensorResult(
        run_requests=[
            # The run key is the content id: Dagster never starts a second run for it from this sensor.
            RunRequest(run_key=asset_id, partition_key=asset_id, tags=run_tags(org_id, "ingest", origin="sensor"))
            for asset_id, org_id in new_partitions.items()
        ],
        dynamic_partitions_requests=(
            [videos_partitions.build_add_request(list(new_partitions))] if new_partitions else []),
        cursor=cursor,
    )


class _Turns:
    """The videos whose claim (`catalog.claims`) this tick holds: from cataloguing a video until the
    daemon has added its partition and its run, which it does after the tick returns, so the claims
    are given back by the next tick. A deletion waits for them; one that holds a video's claim makes
    this tick leave the video for the next."""

    def __init__(self, catalog: CatalogResource, lease_s: float) -> None:
        self.catalog, self.holder, self.lease_s = catalog, new_holder(SENSOR_HOLDER), lease_s

    def take(self, asset_id: str) -> bool:
        return try_claim(self.catalog.database_url, asset_id, self.holder, self.lease_s) is None

    def give_back(self, asset_id: str) -> None:
        release_claims(self.catalog.database_url, self.holder, asset_id)

    def still_catalogued(self, videos: dict[str, str]) -> dict[str, str]:
        """Those of `videos` (asset id to org id) whose claim this tick took and which are still catalogued."""
        kept = {}
        for asset_id, org_id in videos.items():
            if not self.take(asset_id):
                continue
            with self.catalog.session() as session:
                catalogued = get_video(session, asset_id) is not None
            if catalogued:
                kept[asset_id] = org_id
            else:
                self.give_back(asset_id)
        return kept


def lost_sensor_runs(instance: DagsterInstance, catalog: CatalogResource, requested: Collection[str]) -> dict[str, str]:
    """Videos this sensor catalogued whose partition is not in the instance, other than `requested`
    (this tick's): their run request was lost (the tick died between the catalog write and its
    result), and is made again; the run key keeps it to one run.

    Only videos whose partition was never seen are looked at, and those seen now are marked, so an
    idle tick costs nothing however many videos there are; when some are left, the instance's
    partitions are read once (a lookup each would take minutes for a catalog just migrated).
    """
    with catalog.session() as session:
        unseen = {asset_id: org_id for asset_id, org_id in unseen_partitions(session).items()
                  if asset_id not in requested}
    if not unseen:
        return {}
    seen = unseen.keys() & set(instance.get_dynamic_partitions(videos_partitions.name))
    with catalog.session() as session:
        mark_partitions_seen(session, seen)
    lost = {asset_id: org_id for asset_id, org_id in sorted(unseen.items()) if asset_id not in seen}
    for asset_id in lost:
        get_logger("sensor").info("sensor.lost_run_requested_again", asset_id=asset_id)
    return lost


def _lost_api_runs(context: SensorEvaluationContext, catalog: CatalogResource, grace_s: float) -> dict[str, str]:
    """API videos whose run was never launched (the API died between its catalog write and the launch).

    Only videos older than the grace period (`grace_s`) count, so that a commit in flight is never raced;
    one that has a run after all (its launch was recorded too late) is only marked.
    """
    log = get_logger("sensor")
    with catalog.session() as session:
        candidates = unlaunched_videos(session, utcnow() - timedelta(seconds=grace_s))
    lost: dict[str, str] = {}
    for asset_id, org_id in sorted(candidates.items()):
        if context.instance.get_run_records(RunsFilter(tags={PARTITION_TAG: asset_id}), limit=1):
            with catalog.session() as session:
                mark_run_launched(session, asset_id)
            continue
        lost[asset_id] = org_id
        log.warning("sensor.lost_api_run_requested", asset_id=asset_id, org_id=org_id)
    return lost
