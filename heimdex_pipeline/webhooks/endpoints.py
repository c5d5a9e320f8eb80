"""An org's webhook endpoints and their deliveries, as the API manages and lists them."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from heimdex_pipeline.catalog.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent, utcnow
from heimdex_pipeline.webhooks.addresses import parse_url
from heimdex_pipeline.webhooks.delivery import PENDING
from heimdex_pipeline.webhooks.signing import new_secret


class WebhookLimitError(Exception):
    """The org has as many endpoints as it may have."""


def create(session: Session, org_id: str, url: str, events: list[str], allow_private: bool,
           max_per_org: int) -> Webhook:
    """Register an endpoint of `org_id`; its secret is readable on the row returned, and never answered again."""
    parse_url(url, allow_private)
    # Registrations of one org take turns, so that none counts before another's insert is committed:
    # on PostgreSQL by a lock on the org for the transaction; on SQLite the insert below takes the
    # database's one write lock, and the count after it sees every committed row.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:org_id, 0))"), {"org_id": org_id})
    webhook = Webhook(webhook_id="wh_" + secrets.token_hex(12), org_id=org_id, url=url,
                      events=sorted(set(events)), secret=new_secret())
    session.add(webhook)
    session.flush()
    # The caller's transaction is rolled back with the error: the new row goes with it.
    if session.scalar(select(func.count()).select_from(Webhook).where(Webhook.org_id == org_id)) > max_per_org:
        raise WebhookLimitError(f"an org has at most {max_per_org} webhooks")
    return webhook


def rotate_secret(session: Session, webhook: Webhook, previous_valid_for: timedelta) -> Webhook:
    """Give the endpoint a new secret; the one it had signs too for `previous_valid_for` (none for zero),
    so that a receiver can change over without refusing a delivery. `LookupError` if it was deleted meanwhile."""
    keep = previous_valid_for > timedelta(0)
    current = webhook.secret
    while True:
        # Replaced only if it is still the secret read: a rotation that lost the race to another one reads the
        # winner's secret and goes again, so that the secret answered to each caller is the one signing or
        # the previous one, never lost to a concurrent rotation.
        replaced = session.execute(
            update(Webhook).where(Webhook.webhook_id == webhook.webhook_id, Webhook.secret == current)
            .values(secret=new_secret(), previous_secret=current if keep else None,
                    previous_secret_expires_at=utcnow() + previous_valid_for if keep else None)
            .execution_options(synchronize_session=False)).rowcount
        if replaced:
            session.refresh(webhook)
            return webhook
        current = session.scalar(select(Webhook.secret).where(Webhook.webhook_id == webhook.webhook_id))
        if current is None:
            raise LookupError(webhook.webhook_id)


def listed(session: Session, org_id: str) -> list[Webhook]:
    """The org's endpoints, oldest first."""
    return list(session.scalars(select(Webhook).where(Webhook.org_id == org_id)
                                .order_by(Webhook.created_at, Webhook.webhook_id)))


def find(session: Session, org_id: str, webhook_id: str) -> Webhook | None:
    """One of the org's endpoints; None for unknown ids and other orgs' endpoints alike."""
    webhook = session.get(Webhook, webhook_id)
    return webhook if webhook is not None and webhook.org_id == org_id else None


def remove(session: Session, webhook: Webhook) -> None:
    """Delete an endpoint with its deliveries and their attempts; what was sent stays sent."""
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(
        select(WebhookDelivery.delivery_id).where(WebhookDelivery.webhook_id == webhook.webhook_id))))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.webhook_id))
    session.delete(webhook)


@dataclass(frozen=True)
class DeliveryView:
    """A delivery with its event and every attempt, newest attempt last."""

    delivery: WebhookDelivery
    event: WebhookEvent
    attempts: list[WebhookAttempt]


def deliveries(session: Session, webhook: Webhook, limit: int, before: int | None = None,
               delivery_id: int | None = None) -> list[DeliveryView]:
    """The endpoint's deliveries, newest first, `limit` of them from before the delivery id `before`
    (or only the one `delivery_id`)."""
    query = (select(WebhookDelivery, WebhookEvent)
             .join(WebhookEvent, WebhookEvent.event_id == WebhookDelivery.event_id)
             .where(WebhookDelivery.webhook_id == webhook.webhook_id))
    if before is not None:
        query = query.where(WebhookDelivery.delivery_id < before)
    if delivery_id is not None:
        query = query.where(WebhookDelivery.delivery_id == delivery_id)
    rows = session.execute(query.order_by(WebhookDelivery.delivery_id.desc()).limit(limit)).all()
    attempts: dict[int, list[WebhookAttempt]] = {delivery.delivery_id: [] for delivery, _ in rows}
    if attempts:
        for attempt in session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(attempts))
                                       .order_by(WebhookAttempt.attempt_id)):
            attempts[attempt.delivery_id].append(attempt)
    return [DeliveryView(delivery, event, attempts[delivery.delivery_id]) for delivery, event in rows]


class DeliveryPendingError(Exception):
    """The delivery is still being tried: it cannot be asked for again."""


def redeliver(session: Session, webhook: Webhook, delivery_id: int) -> DeliveryView:
    """Make a finished delivery of the endpoint (delivered, or failed for good) due again at once: the sender
    tries it once more at its next pass, and retries it until the event is `retry_for_s` old as before.
    `LookupError` when the endpoint has no such delivery."""
    # One statement, so that two requests cannot both reopen it, nor one reopen a delivery in flight.
    reopened = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.delivery_id == delivery_id, WebhookDelivery.webhook_id == webhook.webhook_id,
               WebhookDelivery.status != PENDING)
        .values(status=PENDING, next_attempt_at=utcnow(), finished_at=None)
        .execution_options(synchronize_session=False)).rowcount
    found = deliveries(session, webhook, 1, delivery_id=delivery_id)
    if not found:
        raise LookupError(delivery_id)
    if not reopened:
        raise DeliveryPendingError(f"delivery {delivery_id} is still pending: it is retried without asking")
    return found[0]
