"""The API's own tables, on the catalog's `Base` so that Alembic sees them beside it."""

from datetime import datetime

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from heimdex_pipeline.catalog.models import Base, utcnow


class IdempotencyKey(Base):
    """One `Idempotency-Key` of one org: the request it was first used for and the job it started.

    The row is inserted before the job starts (`response` null) so that a concurrent request
    with the same key collides on the primary key and waits for the first one's answer. The
    claim is the request's (`claim_token`) for a lease from `created_at`: a claim whose request
    died unanswered is taken over once the lease is out.
    """

    __tablename__ = "idempotency_keys"

    org_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(64))
    response: Mapped[dict | None] = mapped_column(JSON)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
