"""The outbox's sender: every due delivery POSTed, signed, each attempt recorded, failures retried with
exponential backoff and jitter until the event is `retry_for_s` old.

Per endpoint and video, deliveries go out in the order their events happened: a delivery waits
while an earlier one of the same endpoint and video is pending. A delivery taken by a sender is
leased (its next attempt moved past the attempt's end) so that another sender does not take it
too; a sender that dies mid-attempt leaves it to be sent again once the lease ends: at least once.

Endpoints take turns, since they are different orgs': a batch takes every endpoint's oldest due
delivery before any endpoint's second, and an endpoint that gave no answer is set aside for the
rest of the pass, so a dead receiver costs the others at most one batch's wait.
"""

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.orm import Session, aliased

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent, as_utc, utcnow
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.webhooks.sender import Answer, post
from heimdex_pipeline.webhooks.signing import SIGNATURE_HEADER, previous_in_force, sign

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
# Receivers called at once by one sender: each delivery taken is of another endpoint or video.
CONCURRENCY = 8
_JITTER = random.Random()


@dataclass(frozen=True)
class DeliveryPolicy:
    """How deliveries are attempted and retried."""

    timeout_s: float = 10.0
    retry_base_s: float = 10.0
    retry_max_delay_s: float = 3600.0
    retry_for_s: float = 24 * 3600.0
    allow_private: bool = False
    history_s: float = 30 * 24 * 3600.0

    @property
    def lease(self) -> timedelta:
        """How long a taken delivery is left to its sender: the attempt's timeout and then some."""
        return timedelta(seconds=2 * self.timeout_s + 30)

    def retry_delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds before the attempt after `attempts` failed ones: doubling from the base up to the cap,
        drawn in its upper half so that deliveries failed together do not come back together."""
        ceiling = min(self.retry_max_delay_s, self.retry_base_s * 2 ** min(attempts - 1, 62))
        return ceiling / 2 + (rng or _JITTER).uniform(0, ceiling / 2)


@dataclass
class DeliveryReport:
    """What one pass of the sender did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    answers: list[Answer] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.delivered} delivered, {self.retrying} to retry, {self.failed} given up"


@dataclass(frozen=True)
class _Taken:
    delivery_id: int
    attempts: int
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    event_id: str
    event_type: str
    body: str
    asset_id: str
    job_id: str
    webhook_id: str
    occurred_at: datetime


def _due(session: Session, now: datetime, limit: int, skip: set[str]) -> list[_Taken]:
    earlier = aliased(WebhookDelivery)
    waiting = select(earlier.delivery_id).where(
        earlier.webhook_id == WebhookDelivery.webhook_id, earlier.asset_id == WebhookDelivery.asset_id,
        earlier.status == PENDING, earlier.delivery_id < WebhookDelivery.delivery_id)
    # Each endpoint's due deliveries numbered in turn, so that a batch takes the first of every endpoint
    # before the second of any: an endpoint with a thousand due cannot keep another's one waiting.
    heads = (select(WebhookDelivery.delivery_id,
                    func.row_number().over(partition_by=WebhookDelivery.webhook_id,
                                           order_by=WebhookDelivery.delivery_id).label("turn"))
             .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now, ~waiting.exists(),
                    WebhookDelivery.webhook_id.not_in(skip))
             .subquery())
    rows = session.execute(
        select(WebhookDelivery.delivery_id, WebhookDelivery.attempts, Webhook.url, Webhook.secret,
               Webhook.previous_secret, Webhook.previous_secret_expires_at, WebhookEvent.event_id, WebhookEvent.type,
               WebhookEvent.body, WebhookEvent.asset_id, WebhookEvent.job_id, WebhookDelivery.webhook_id,
               WebhookEvent.created_at)
        .join(heads, heads.c.delivery_id == WebhookDelivery.delivery_id)
        .join(Webhook, Webhook.webhook_id == WebhookDelivery.webhook_id)
        .join(WebhookEvent, WebhookEvent.event_id == WebhookDelivery.event_id)
        .order_by(heads.c.turn, WebhookDelivery.delivery_id).limit(limit)).all()
    return [_Taken(*row) for row in rows]


def _take(catalog_url: str, policy: DeliveryPolicy, limit: int, due_by: datetime, skip: set[str]) -> list[_Taken]:
    """Lease up to `limit` deliveries due by `due_by`, each the oldest pending one of its endpoint and video,
    none of the endpoints in `skip`."""
    now = utcnow()
    taken = []
    with session_scope(catalog_url) as session:
        for delivery in _due(session, due_by, limit, skip):
            # Only if no other sender took it since it was read.
            leased = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.delivery_id == delivery.delivery_id, WebhookDelivery.status == PENDING,
                       WebhookDelivery.attempts == delivery.attempts, WebhookDelivery.next_attempt_at <= due_by)
                .values(next_attempt_at=now + policy.lease))
            if leased.rowcount == 1:
                taken.append(delivery)
    return taken


def _attempt(delivery: _Taken, policy: DeliveryPolicy) -> Answer:
    body = delivery.body.encode()
    keys = [delivery.secret]
    if delivery.previous_secret and previous_in_force(delivery.previous_secret_expires_at):
        keys.append(delivery.previous_secret)
    headers = {SIGNATURE_HEADER: sign(keys, body), "Heimdex-Event-Id": delivery.event_id,
               "Heimdex-Event-Type": delivery.event_type}
    return post(delivery.url, body, headers, policy.timeout_s, policy.allow_private)


def _settle(session: Session, policy: DeliveryPolicy, delivery: _Taken, answer: Answer, report: DeliveryReport) -> None:
    """Record the attempt; mark the delivery delivered, due again after a backoff, or failed for good."""
    now = utcnow()
    attempts = delivery.attempts + 1
    values: dict[str, object] = {"attempts": attempts}
    if answer.delivered:
        values.update(status=DELIVERED, finished_at=now)
        outcome = "delivered"
    else:
        retry_at = now + timedelta(seconds=policy.retry_delay(attempts))
        if retry_at - as_utc(delivery.occurred_at) > timedelta(seconds=policy.retry_for_s):
            values.update(status=FAILED, finished_at=now)
            outcome = "failed"
        else:
            values.update(next_attempt_at=retry_at)
            outcome = "retrying"
    # Gone when its endpoint was deleted meanwhile: nothing is left to record it on.
    kept = session.execute(update(WebhookDelivery).where(
        and_(WebhookDelivery.delivery_id == delivery.delivery_id, WebhookDelivery.attempts == delivery.attempts))
        .values(**values)).rowcount
    if kept:
        session.add(WebhookAttempt(delivery_id=delivery.delivery_id, attempted_at=now, status_code=answer.status_code,
                                   latency_ms=answer.latency_ms, error=answer.error))
    setattr(report, outcome, getattr(report, outcome) + 1)
    report.answers.append(answer)
    log = get_logger("webhooks", asset_id=delivery.asset_id, job_id=delivery.job_id)
    (log.info if answer.delivered else log.warning)(
        f"webhook.{outcome}", webhook_id=delivery.webhook_id, event_id=delivery.event_id,
        event_type=delivery.event_type, attempt=attempts, status_code=answer.status_code,
        latency_ms=answer.latency_ms, error=answer.error)


def deliver_due(catalog_url: str, policy: DeliveryPolicy, budget_s: float) -> DeliveryReport:
    """Send every due delivery, as many at a time as `CONCURRENCY`, until none is due or `budget_s` is spent.

    A delivery made due by another's success (the next event of the same video) goes in the same pass;
    one that failed waits for a later pass, however short its backoff.
    """
    report = DeliveryReport()
    started = utcnow()
    deadline = time.monotonic() + budget_s
    # Endpoints that gave no answer this pass (refused, timed out, unresolvable, a certificate not
    # verified): their other deliveries wait for a later pass rather than spend the budget the same way.
    unreachable: set[str] = set()
    with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="heimdex-webhook") as pool:
        # An attempt is only begun when it can end within the budget.
        while time.monotonic() + policy.timeout_s <= deadline:
            taken = _take(catalog_url, policy, CONCURRENCY, due_by=started, skip=unreachable)
            if not taken:
                break
            answers = list(pool.map(lambda d: _attempt(d, policy), taken))
            # One transaction for the batch's outcomes.
            with session_scope(catalog_url) as session:
                for delivery, answer in zip(taken, answers, strict=True):
                    _settle(session, policy, delivery, answer, report)
            unreachable.update(delivery.webhook_id for delivery, answer in zip(taken, answers, strict=True)
                               if answer.status_code is None)
    return report


def forget_old(catalog_url: str, policy: DeliveryPolicy, limit: int = 1000) -> int:
    """Delete up to `limit` deliveries finished more than `history_s` ago, their attempts, and the events
    left with no delivery; answer how many deliveries went. The outbox keeps a month, not for ever."""
    cutoff = utcnow() - timedelta(seconds=policy.history_s)
    with session_scope(catalog_url) as session:
        old = list(session.scalars(select(WebhookDelivery.delivery_id)
                                   .where(WebhookDelivery.finished_at < cutoff, WebhookDelivery.status != PENDING)
                                   .order_by(WebhookDelivery.delivery_id).limit(limit)))
        if old:
            session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(old)))
            session.execute(delete(WebhookDelivery).where(WebhookDelivery.delivery_id.in_(old)))
        undelivered = select(WebhookDelivery.delivery_id).where(WebhookDelivery.event_id == WebhookEvent.event_id)
        orphans = list(session.scalars(select(WebhookEvent.event_id)
                                       .where(WebhookEvent.created_at < cutoff, ~undelivered.exists()).limit(limit)))
        if orphans:
            session.execute(delete(WebhookEvent).where(WebhookEvent.event_id.in_(orphans)))
    return len(old)
