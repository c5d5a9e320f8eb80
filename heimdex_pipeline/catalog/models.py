"""SQLAlchemy models of the catalog; `migrations/` holds their Alembic history."""

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so Alembic can drop them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, timezone-aware."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A time read back from the catalog, with its zone: SQLite gives it back without, and it was written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of every Heimdex table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Video(Base):
    """One video of one org, identified by its content: a Dagster partition of the `videos` set."""

    __tablename__ = "videos"
    __table_args__ = (Index("ix_videos_origin_partition_seen_at", "origin", "partition_seen_at"),)

    asset_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64), index=True)
    # The key of the object the pipeline reads (heimdex_pipeline.storage.layout).
    source_key: Mapped[str] = mapped_column(Text)
    source_name: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(128))
    hash_quality: Mapped[str] = mapped_column(String(8))
    origin: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set once a run of the video was launched: an API video still without it long after its
    # creation lost its run to a crash, and the sensor asks for it again.
    run_launched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set once the sensor saw the partition of a video it catalogued in Dagster's instance: until
    # then, each tick checks that its run request was not lost (indexed with `origin` for that).
    partition_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Source(Base):
    """An object in the upload bucket whose content was identified, as it was when hashed."""

    __tablename__ = "sources"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # The store's version of the object: modification time in nanoseconds on disk, ETag on S3.
    version: Mapped[str] = mapped_column(String(128))
    asset_id: Mapped[str] = mapped_column(ForeignKey("videos.asset_id", ondelete="CASCADE"), index=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Upload(Base):
    """An upload reserved through the API (`ingest/init`), until its commit."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_org_status", "org_id", "status"),)

    upload_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64))
    source_name: Mapped[str] = mapped_column(String(255))
    content_length: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str | None] = mapped_column(String(255))
    # The key prefix the upload reserves: `uploads/<org_id>/<upload_id>/`.
    prefix: Mapped[str] = mapped_column(Text)
    # pending -> committing (one commit holds it) -> committed; pending -> terminating (tus DELETE),
    # then the row is deleted once the upload's files are gone.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    asset_id: Mapped[str | None] = mapped_column(ForeignKey("videos.asset_id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When the commit claimed the upload, then when it committed it.
    committed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The upload's write lock (heimdex_pipeline.uploads.lock): the request that writes or ends its
    # files, and until when its lease holds unless renewed. In the catalog, so that it holds
    # across API processes.
    lock_token: Mapped[str | None] = mapped_column(String(32))
    lock_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AssetClaim(Base):
    """Who has a video's turn: a deletion, or what may bring the video into being (a commit, a job
    request, the upload sensor), so that they never interleave (`heimdex_pipeline.catalog.claims`)."""

    __tablename__ = "asset_claims"

    # No foreign key: a claim is taken before the video is catalogued, and outlives its deletion.
    asset_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # What holds it and a token of that one holding: `<kind>:<hex>`.
    holder: Mapped[str] = mapped_column(String(64))
    # Renewed while its holder works; after it, the holder is taken for dead and another may take over.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunProgress(Base):
    """How far a running step of a run is: written by the step every second or so, read by the API's job answer."""

    __tablename__ = "run_progress"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The asset the step materialises, and what it counts: frames or tiles.
    step: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(16))
    done: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CheckOutcome(Base):
    """The newest outcome of one asset check of a video, written by the check as it is evaluated: the
    API's `checks` summary reads it here, in the catalog query of the video, rather than from Dagster's
    event log on every read (docs/benchmarks.md, "A crowd")."""

    __tablename__ = "check_outcomes"

    # No foreign key, as `run_progress`: the deletion removes them with the video.
    asset_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The checked asset's key as Dagster prints it (`scene_sidecar`), and the check's name.
    asset_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    check_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    description: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str] = mapped_column(String(64))
    evaluated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# SQLite counts a primary key up by itself only when it is declared INTEGER.
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class Webhook(Base):
    """An org's endpoint for event notifications: where to POST which events, and the secret that signs them."""

    __tablename__ = "webhooks"

    webhook_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON)
    # The HMAC key of the signatures, answered once when the endpoint is made: the sender needs it in clear.
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # After a rotation the old secret signs too, until it expires, while the receiver changes over.
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookEvent(Base):
    """An event about a video, as its body is sent: one per run outcome and type (`job.succeeded`, ...)."""

    __tablename__ = "webhook_events"
    # A run's outcome is recorded once, however often the sensor reads it again after a crash.
    __table_args__ = (UniqueConstraint("job_id", "type"), Index("ix_webhook_events_created_at", "created_at"))

    event_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    asset_id: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(String(64))
    # The exact JSON sent: every attempt carries the same bytes.
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """One event to one endpoint: the outbox row the sender works through, oldest first per video."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_id_asset_id", "webhook_id", "asset_id"),
        Index("ix_webhook_deliveries_finished_at", "finished_at"),
    )

    # Increasing in the order the events happened: per endpoint and video, deliveries go in this order.
    delivery_id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.webhook_id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.event_id", ondelete="CASCADE"))
    asset_id: Mapped[str] = mapped_column(String(64))
    # pending -> delivered, or failed once retries ran out
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the next attempt is due; while one is in flight, when its lease ends.
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookAttempt(Base):
    """One POST of a delivery: when, what the receiver answered (or why none), and how long it took."""

    __tablename__ = "webhook_attempts"

    attempt_id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.delivery_id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
