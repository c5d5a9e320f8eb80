"""The webhook outbox as the delivery tests drive and read it."""

from sqlalchemy import select

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import WebhookAttempt, WebhookDelivery
from heimdex_pipeline.webhooks import DeliveryPolicy

# Retries due at once (no wait) in tests that drive the sender pass by pass.
FAST = DeliveryPolicy(timeout_s=2.0, retry_base_s=0.001, retry_max_delay_s=0.001, allow_private=True)


def deliveries(catalog_url: str) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """Every delivery of the catalog, oldest first, each with its attempts."""
    with session_scope(catalog_url) as session:
        rows = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.delivery_id)).all()
        attempts = session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.attempt_id)).all()
        session.expunge_all()
    return [(row, [a for a in attempts if a.delivery_id == row.delivery_id]) for row in rows]
