"""The upload sensor: a file dropped in the bucket becomes a partition and an ingest run."""

import json
import time

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from heimdex_pipeline.assets.partitions import videos_partitions
from heimdex_pipeline.bucket import observation, review_bucket, scan_bucket
from heimdex_pipeline.catalog.repository import known_sources, register_source, reserved_upload_dirs, video_ids
from heimdex_pipeline.jobs import ingest_video_job
from heimdex_pipeline.logs import get_logger
from heimdex_pipeline.media.fingerprint import asset_id_for, hash_file
from heimdex_pipeline.resources import CatalogResource, DerivedStorage
from heimdex_pipeline.settings import get_settings

_settings = get_settings()


@sensor(
    job=ingest_video_job,
    minimum_interval_seconds=_settings.sensor_interval_s,
    default_status=DefaultSensorStatus.RUNNING,
    description="Ingests each settled new file under <derived>/uploads/<org_id>/.",
)
def upload_sensor(context: SensorEvaluationContext, catalog: CatalogResource, derived: DerivedStorage) -> SensorResult | SkipReason:
    """Add a partition and request an ingest run for each new content in the upload bucket."""
    log = get_logger("sensor")
    # The cursor keeps only short digests of files not settled yet, so it stays small
    # however many files the bucket holds; ingested files are known from the catalog.
    previous = set(json.loads(context.cursor)["unsettled"]) if context.cursor else set()
    with catalog.session() as session:
        review = review_bucket(scan_bucket(derived.layout.uploads), known_sources(session),
                               reserved_upload_dirs(session), previous, _settings.sensor_max_new_files_per_tick)
    new_partitions: list[str] = []
    # Hashing is the tick's only heavy work: past the budget, files wait for the next tick
    # (at least one is taken per tick, so a huge file still gets its turn).
    deadline = time.monotonic() + _settings.sensor_hash_budget_s
    for taken, source in enumerate(review.settled):
        if taken and time.monotonic() > deadline:
            review.unsettled.append(observation(source))
            continue
        content = hash_file(source.path, _settings.weak_threshold_bytes)
        if content.size_bytes != source.size_bytes:
            continue  # written to while we hashed it: look again next tick
        asset_id = asset_id_for(source.org_id, content)
        with catalog.session() as session:
            _, created = register_source(session, source, asset_id, content, origin="sensor")
        if asset_id in new_partitions:
            continue
        if created or not context.instance.has_dynamic_partition(videos_partitions.name, asset_id):
            new_partitions.append(asset_id)
            log.info("sensor.ingest", asset_id=asset_id, org_id=source.org_id, path=str(source.path))
        else:
            log.info("sensor.known_content", asset_id=asset_id, org_id=source.org_id, path=str(source.path))
    # A video this sensor catalogued without its partition lost its run request (the tick died
    # between the catalog write and its result): ask again; the run key keeps it to one run.
    with catalog.session() as session:
        lost = video_ids(session, origin="sensor") - set(new_partitions)
    lost -= set(context.instance.get_dynamic_partitions(videos_partitions.name))
    for asset_id in sorted(lost):
        new_partitions.append(asset_id)
        log.info("sensor.lost_run_requested_again", asset_id=asset_id)
    cursor = json.dumps({"unsettled": sorted(review.unsettled)})
    if not new_partitions and not review.unsettled and not previous:
        return SkipReason("no new file in the upload bucket")
    return SensorResult(
        run_requests=[
            # The run key is the content id: Dagster never starts a second run for it from this sensor.
            RunRequest(run_key=asset_id, partition_key=asset_id, tags={"heimdex/origin": "sensor"})
            for asset_id in new_partitions
        ],
        dynamic_partitions_requests=[videos_partitions.build_add_request(new_partitions)] if new_partitions else [],
        cursor=cursor,
    )
