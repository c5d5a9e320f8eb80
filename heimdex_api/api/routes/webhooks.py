"""`/v1/webhooks`: the caller's org's endpoints for signed event notifications, and their deliveries."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from heimdex_api.api.deps import PrincipalDep, SessionDep, SettingsDep
from heimdex_api.api.params import MAX_DELIVERY_ID, DeliveryIdPath, WebhookIdPath
from heimdex_api.api.responses import error_responses
from heimdex_api.core.security import WEBHOOKS
from heimdex_api.schemas import (
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WebhookList,
    WebhookOut,
    WebhookSecretRotation,
)
from heimdex_api.services import webhooks
from heimdex_pipeline.webhooks import endpoints

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("", status_code=201, response_model=WebhookCreated, responses=error_responses("create_webhook"))
def create_webhook(body: WebhookCreate, principal: PrincipalDep, session: SessionDep,
                   settings: SettingsDep, response: Response) -> dict[str, Any]:
    """Register an endpoint for the org's events. The answer holds its signing secret, this once only."""
    principal.require(WEBHOOKS)
    created = webhooks.create(session, settings, principal.org_id, body.url, list(body.events))
    response.headers["Location"] = f"/v1/webhooks/{created['webhook_id']}"
    return created


@router.get("", response_model=WebhookList, responses=error_responses("list_webhooks", validates=False))
def list_webhooks(principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    """The org's endpoints, oldest first, without their secrets."""
    principal.require(WEBHOOKS)
    return {"webhooks": [webhooks.webhook_view(w) for w in endpoints.listed(session, principal.org_id)]}


@router.get("/{webhook_id}", response_model=WebhookOut, responses=error_responses("read_webhook"))
def read_webhook(webhook_id: WebhookIdPath, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    """One of the org's endpoints, without its secret."""
    principal.require(WEBHOOKS)
    return webhooks.webhook_view(webhooks.find(session, principal.org_id, webhook_id))


@router.delete("/{webhook_id}", status_code=204, response_class=Response, responses=error_responses("read_webhook"))
def delete_webhook(webhook_id: WebhookIdPath, principal: PrincipalDep, session: SessionDep) -> Response:
    """Delete the endpoint: nothing more is sent to it, and its pending deliveries are dropped."""
    principal.require(WEBHOOKS)
    endpoints.remove(session, webhooks.find(session, principal.org_id, webhook_id))
    return Response(status_code=204)


@router.post("/{webhook_id}/rotate-secret", response_model=WebhookCreated,
             responses=error_responses("rotate_webhook_secret"))
def rotate_webhook_secret(webhook_id: WebhookIdPath, principal: PrincipalDep, session: SessionDep,
                          body: WebhookSecretRotation | None = None) -> dict[str, Any]:
    """Give the endpoint a new signing secret, answered this once only. The previous one signs beside it for
    `previous_valid_for_s` (a day unless told), so that the receiver can switch without refusing a delivery."""
    principal.require(WEBHOOKS)
    webhook = webhooks.find(session, principal.org_id, webhook_id)
    return webhooks.rotate_secret(session, webhook, (body or WebhookSecretRotation()).previous_valid_for_s)


@router.get("/{webhook_id}/deliveries", response_model=WebhookDeliveryList,
            responses=error_responses("read_webhook"))
def list_deliveries(webhook_id: WebhookIdPath, principal: PrincipalDep, session: SessionDep,
                    limit: Annotated[int, Query(ge=1, le=100)] = 50,
                    before: Annotated[int | None, Query(ge=1, le=MAX_DELIVERY_ID,
                                                        description="`next_before` of the previous page")] = None,
                    ) -> dict[str, Any]:
    """The endpoint's deliveries, newest first, each with every attempt: when, the answer's status, the latency."""
    principal.require(WEBHOOKS)
    return webhooks.deliveries_view(session, webhooks.find(session, principal.org_id, webhook_id), limit, before)


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202, response_model=WebhookDeliveryOut,
             responses=error_responses("redeliver_webhook"))
def redeliver(webhook_id: WebhookIdPath, delivery_id: DeliveryIdPath, principal: PrincipalDep,
              session: SessionDep) -> dict[str, Any]:
    """Send a finished delivery (delivered, or failed once its retries ran out) again: it is due at once, and
    retried as before while its event is less than a day old. A pending one answers 409 `delivery_pending`."""
    principal.require(WEBHOOKS)
    return webhooks.redeliver(session, webhooks.find(session, principal.org_id, webhook_id), delivery_id)
