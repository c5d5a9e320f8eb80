"""Webhook events: what happened to a video's job, as the JSON body its receivers get, kept in the outbox."""

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from heimdex_pipeline.catalog.models import Webhook, WebhookDelivery, WebhookEvent

ASSET_READY = "asset.ready"
ASSET_FAILED = "asset.failed"
ASSET_QC_FAILED = "asset.qc_failed"
JOB_SUCCEEDED = "job.succeeded"
JOB_FAILED = "job.failed"
EVENT_TYPES = (ASSET_READY, ASSET_FAILED, ASSET_QC_FAILED, JOB_SUCCEEDED, JOB_FAILED)


@dataclass(frozen=True)
class Event:
    """One event about one job of one org's video, when it happened, and what receivers are told of it."""

    type: str
    org_id: str
    asset_id: str
    job_id: str
    occurred_at: datetime
    data: dict[str, Any]

    def body(self, event_id: str) -> str:
        """The JSON every receiver gets, on every attempt."""
        return json.dumps({"id": event_id, "type": self.type, "created_at": self.occurred_at.isoformat(),
                           "org_id": self.org_id, "asset_id": self.asset_id, "job_id": self.job_id,
                           "data": self.data}, separators=(",", ":"))


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def record(session: Session, event: Event) -> WebhookEvent | None:
    """Put `event` in the outbox, one delivery per endpoint of its org that wants it; nothing without any.

    An event already recorded (a run's outcome read again after a crash) is not recorded twice;
    endpoints registered after the event happened do not get it.
    """
    endpoints = session.scalars(select(Webhook).where(Webhook.org_id == event.org_id,
                                                      Webhook.created_at <= event.occurred_at)
                                .order_by(Webhook.created_at)).all()
    wanted = [endpoint for endpoint in endpoints if event.type in endpoint.events]
    if not wanted or session.scalar(select(WebhookEvent.event_id).where(WebhookEvent.job_id == event.job_id,
                                                                        WebhookEvent.type == event.type)):
        return None
    event_id = new_event_id()
    row = WebhookEvent(event_id=event_id, org_id=event.org_id, type=event.type, asset_id=event.asset_id,
                       job_id=event.job_id, body=event.body(event_id), created_at=event.occurred_at)
    session.add(row)
    session.flush()  # the event before its deliveries, whose order follows the events'
    for endpoint in wanted:
        session.add(WebhookDelivery(webhook_id=endpoint.webhook_id, event_id=event_id, asset_id=event.asset_id,
                                    next_attempt_at=event.occurred_at))
        session.flush()
    return row
