"""Reads and writes of the catalog, shared by the sensor, the assets and the API."""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from heimdex_pipeline.catalog.models import CheckOutcome, RunProgress, Source, Upload, Video, utcnow
from heimdex_pipeline.media.fingerprint import ContentHash
from heimdex_pipeline.storage import ObjectStore, StoredObject

_MARK_BATCH = 5000


@dataclass(frozen=True)
class SourceObject:
    """An object of the upload bucket as listed: whose it is, its key, size, version and last write."""

    org_id: str
    key: str
    size_bytes: int
    version: str
    modified_at: float

    @classmethod
    def of(cls, org_id: str, stored: StoredObject) -> "SourceObject":
        return cls(org_id, stored.key, stored.size_bytes, stored.version, stored.modified_at)

    @property
    def name(self) -> str:
        """The object's file name: the last segment of its key."""
        return self.key.rpartition("/")[2]


def get_video(session: Session, asset_id: str) -> Video | None:
    """The catalogued video with this asset id, if any."""
    return session.get(Video, asset_id)


def insert_statement(session: Session, model: type) -> Insert:
    """An INSERT that can say `ON CONFLICT` on the session's database (SQLite or PostgreSQL)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def register_source(session: Session, store: ObjectStore, source: SourceObject, asset_id: str,
                    content: ContentHash, origin: str) -> tuple[Video, bool]:
    """Record that `source` holds the video `asset_id`; return the video and whether it is new.

    The first object seen with some content becomes the video's source; later copies only
    get a `sources` row, so the sensor knows them without hashing them again; when the first
    copy is gone from `store`, the video moves to the new one. Both writes are
    upserts in the caller's transaction, so concurrent writers of the same content or the same
    file neither fail nor split the transaction (no savepoint, which pysqlite would commit).
    """
    created = session.execute(
        insert_statement(session, Video).values(
            asset_id=asset_id, org_id=source.org_id, source_key=source.key, source_name=source.name,
            size_bytes=content.size_bytes, hash=content.value, hash_quality=content.quality, origin=origin,
            created_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=[Video.asset_id]).returning(Video.asset_id)
    ).first() is not None
    video = session.get(Video, asset_id, populate_existing=True)
    assert video is not None
    if not created and video.source_key != source.key and store.stat(video.source_key) is None:
        # The first copy is gone; point the video at the one that is here now.
        video.source_key, video.source_name = source.key, source.name
    row: dict[str, Any] = {"org_id": source.org_id, "size_bytes": source.size_bytes, "version": source.version,
                           "asset_id": asset_id, "seen_at": utcnow()}
    session.execute(insert_statement(session, Source).values(key=source.key, **row)
                    .on_conflict_do_update(index_elements=[Source.key], set_=row))
    return video, created


def mark_run_launched(session: Session, asset_id: str) -> None:
    """Record that a run of the video was launched (the first time only)."""
    session.execute(update(Video).where(Video.asset_id == asset_id, Video.run_launched_at.is_(None))
                    .values(run_launched_at=utcnow()))


def unlaunched_videos(session: Session, created_before: datetime) -> dict[str, str]:
    """API videos catalogued before `created_before` whose run was never launched: asset id to org id."""
    rows = session.execute(select(Video.asset_id, Video.org_id).where(
        Video.origin == "api", Video.run_launched_at.is_(None), Video.created_at < created_before))
    return {asset_id: org_id for asset_id, org_id in rows}


def known_sources(session: Session, keys: Collection[str] | None = None) -> dict[str, tuple[int, str]]:
    """Every identified bucket object (or those of `keys`): key to (size, version) when it was hashed."""
    query = select(Source.key, Source.size_bytes, Source.version)
    if keys is not None:
        query = query.where(Source.key.in_(keys))
    # On the session's connection, not the ORM's execute: plain rows, at half the cost for a large
    # bucket (docs/benchmarks.md, "Partitions at scale").
    rows = session.connection().execute(query)
    return {key: (size, version) for key, size, version in rows}


def unseen_partitions(session: Session) -> dict[str, str]:
    """The sensor's videos whose partition it has not seen in Dagster's instance yet: asset id to org id."""
    rows = session.execute(select(Video.asset_id, Video.org_id).where(
        Video.origin == "sensor", Video.partition_seen_at.is_(None)))
    return {asset_id: org_id for asset_id, org_id in rows}


def mark_partitions_seen(session: Session, asset_ids: Collection[str]) -> None:
    """Record that the partitions of these videos are in Dagster's instance (in batches: PostgreSQL
    takes at most 65,535 parameters a statement)."""
    ordered, now = sorted(asset_ids), utcnow()
    for start in range(0, len(ordered), _MARK_BATCH):
        session.execute(update(Video).where(Video.asset_id.in_(ordered[start:start + _MARK_BATCH]))
                        .values(partition_seen_at=now))


def reserved_upload_prefixes(session: Session) -> set[str]:
    """Key prefixes of uploads initiated through the API and not committed yet (nor ended yet): the API owns them."""
    return set(session.scalars(select(Upload.prefix).where(Upload.status.in_(("pending", "committing",
                                                                             "terminating")))))


def record_progress(session: Session, run_id: str, step: str, unit: str, done: int, total: int) -> None:
    """Say how far the run's current step is (one row per run, replaced each time)."""
    row = {"step": step, "unit": unit, "done": done, "total": total, "updated_at": utcnow()}
    session.execute(insert_statement(session, RunProgress).values(run_id=run_id, **row)
                    .on_conflict_do_update(index_elements=[RunProgress.run_id], set_=row))


def run_progress(session: Session, run_id: str) -> RunProgress | None:
    """How far the run's current step was when it last said."""
    return session.get(RunProgress, run_id)


def record_check_outcome(session: Session, asset_id: str, asset_key: str, check_name: str, passed: bool,
                         description: str | None, run_id: str) -> None:
    """Keep the outcome of a check of the video just evaluated, in place of the one before."""
    row = {"passed": passed, "description": description, "run_id": run_id, "evaluated_at": utcnow()}
    session.execute(insert_statement(session, CheckOutcome)
                    .values(asset_id=asset_id, asset_key=asset_key, check_name=check_name, **row)
                    .on_conflict_do_update(index_elements=[CheckOutcome.asset_id, CheckOutcome.asset_key,
                                                           CheckOutcome.check_name], set_=row))


def check_outcomes(session: Session, asset_id: str) -> dict[tuple[str, str], CheckOutcome]:
    """The newest outcome of each check of the video evaluated so far, by asset key and check name."""
    rows = session.scalars(select(CheckOutcome).where(CheckOutcome.asset_id == asset_id))
    return {(row.asset_key, row.check_name): row for row in rows}
