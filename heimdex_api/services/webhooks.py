"""Webhook endpoints of the caller's org: registered, listed, deleted, and their deliveries; the API's errors."""

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import Conflict, NotFound, Unprocessable
from heimdex_pipeline.catalog.models import Webhook, as_utc
from heimdex_pipeline.webhooks import UnsafeUrlError, endpoints
from heimdex_pipeline.webhooks.delivery import PENDING
from heimdex_pipeline.webhooks.signing import previous_in_force


def _no_such_webhook() -> NotFound:
    return NotFound("no such webhook", code="webhook_not_found")


def _iso(moment: Any) -> str | None:
    return as_utc(moment).isoformat() if moment is not None else None


def webhook_view(webhook: Webhook) -> dict[str, Any]:
    """An endpoint as answered: never with its secret."""
    expires = webhook.previous_secret_expires_at
    return {"webhook_id": webhook.webhook_id, "url": webhook.url, "events": webhook.events,
            "created_at": _iso(webhook.created_at),
            "previous_secret_expires_at": _iso(expires) if previous_in_force(expires) else None}


def create(session: Session, settings: ApiSettings, org_id: str, url: str, events: list[str]) -> dict[str, Any]:
    """Register an endpoint; the answer is the only one that carries its secret."""
    try:
        webhook = endpoints.create(session, org_id, url, events, settings.webhook_allow_private_addresses,
                                   settings.max_webhooks_per_org)
    except UnsafeUrlError as exc:
        raise Unprocessable(str(exc), code="webhook_url_not_allowed") from None
    except endpoints.WebhookLimitError as exc:
        raise Conflict(str(exc), code="webhook_limit_reached") from None
    return {**webhook_view(webhook), "secret": webhook.secret}


def rotate_secret(session: Session, webhook: Webhook, previous_valid_for_s: int) -> dict[str, Any]:
    """Give the endpoint a new secret; the answer is the only one that carries it."""
    try:
        endpoints.rotate_secret(session, webhook, timedelta(seconds=previous_valid_for_s))
    except LookupError:  # deleted while it was being rotated
        raise _no_such_webhook() from None
    return {**webhook_view(webhook), "secret": webhook.secret}


def find(session: Session, org_id: str, webhook_id: str) -> Webhook:
    """One of the org's endpoints; 404 for unknown ids and other orgs' endpoints alike."""
    webhook = endpoints.find(session, org_id, webhook_id)
    if webhook is None:
        raise _no_such_webhook()
    return webhook


def _delivery_view(view: endpoints.DeliveryView) -> dict[str, Any]:
    delivery, event = view.delivery, view.event
    return {"delivery_id": delivery.delivery_id, "event_id": event.event_id, "event_type": event.type,
            "asset_id": event.asset_id, "job_id": event.job_id, "status": delivery.status,
            "created_at": _iso(delivery.created_at),
            "next_attempt_at": _iso(delivery.next_attempt_at) if delivery.status == PENDING else None,
            "finished_at": _iso(delivery.finished_at),
            "attempts": [{"attempted_at": _iso(a.attempted_at), "status_code": a.status_code,
                          "latency_ms": a.latency_ms, "error": a.error} for a in view.attempts]}


def deliveries_view(session: Session, webhook: Webhook, limit: int, before: int | None) -> dict[str, Any]:
    """A page of the endpoint's deliveries, newest first, each with its attempts."""
    page = endpoints.deliveries(session, webhook, limit, before)
    return {"deliveries": [_delivery_view(view) for view in page],
            "next_before": page[-1].delivery.delivery_id if len(page) == limit else None}


def redeliver(session: Session, webhook: Webhook, delivery_id: int) -> dict[str, Any]:
    """Make a finished delivery of the endpoint due again; answer it as the deliveries list shows it."""
    try:
        return _delivery_view(endpoints.redeliver(session, webhook, delivery_id))
    except LookupError:
        raise NotFound("the webhook has no such delivery", code="delivery_not_found") from None
    except endpoints.DeliveryPendingError as exc:
        raise Conflict(str(exc), code="delivery_pending") from None
