"""Fault 10: the daemon killed while a webhook delivery waits its retry, then started again.

A file dropped in the bucket is ingested by a run the upload sensor starts. Its two events
(`job.succeeded`, then `asset.ready`) go to a real receiver on 127.0.0.1 that answers 500. Once
the first has failed and waits its backoff, `dagster-daemon` is SIGKILLed; the receiver is mended
while the daemon is down. The restarted daemon sends both events, in order, each answered 200
once: nothing recorded in the outbox was lost, and nothing was recorded twice.
"""

import os
import signal
import time

from sqlalchemy import func, select

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import WebhookAttempt, WebhookDelivery, WebhookEvent, as_utc, utcnow
from heimdex_pipeline.webhooks import SIGNATURE_HEADER, endpoints, verify
from tests.dagster_home import free_port
from tests.faults.dagster_site import DagsterSite
from tests.webhooks.receiver import Receiver

ORG = "org-hooked"


def _deliveries(catalog_url: str) -> list[tuple[str, str, int, object]]:
    with session_scope(catalog_url) as session:
        return [tuple(row) for row in session.execute(
            select(WebhookEvent.type, WebhookDelivery.status, WebhookDelivery.attempts, WebhookDelivery.next_attempt_at)
            .join(WebhookEvent, WebhookEvent.event_id == WebhookDelivery.event_id)
            .order_by(WebhookDelivery.delivery_id))]


def test_daemon_killed_mid_backoff_then_every_event_is_delivered(dagster_site: DagsterSite, start_daemon,
                                                                 clips) -> None:
    dagster_site.env.update({"HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true", "HEIMDEX_WEBHOOK_INTERVAL_S": "1",
                             "HEIMDEX_WEBHOOK_RETRY_BASE_S": "6", "HEIMDEX_WEBHOOK_RETRY_MAX_DELAY_S": "6"})
    receiver = Receiver(free_port()).start()
    receiver.answer_with(then=500)
    with session_scope(dagster_site.catalog_url) as session:
        secret = endpoints.create(session, ORG, receiver.url, ["job.succeeded", "asset.ready"], allow_private=True,
                                  max_per_org=20).secret
    try:
        daemon = start_daemon()
        dagster_site.drop(clips((1.0, 1.0), size="160x120")[0], ORG, "clip.mp4")

        def waiting_its_retry() -> bool:
            rows = _deliveries(dagster_site.catalog_url)
            return bool(rows) and rows[0][1:3] == ("pending", 1) and as_utc(rows[0][3]) > utcnow()

        dagster_site.wait_until(waiting_its_retry, 180, "first delivery failed once and waiting its retry")
        os.kill(-daemon.pid, signal.SIGKILL)  # the daemon and its code server
        daemon.wait(timeout=10)
        receiver.answer_with(then=200)
        refused = len(receiver.received)
        time.sleep(8)
        assert len(receiver.received) == refused, "nothing is sent while the daemon is down"
        start_daemon()
        dagster_site.wait_until(lambda: {row[1] for row in _deliveries(dagster_site.catalog_url)} == {"delivered"},
                                180, "both deliveries delivered by the restarted daemon")
    finally:
        receiver.stop()

    rows = _deliveries(dagster_site.catalog_url)
    assert [(kind, status) for kind, status, _, _ in rows] == [("job.succeeded", "delivered"),
                                                               ("asset.ready", "delivered")]
    answered = [(r.event["type"], r.event["id"]) for r in receiver.received[refused:]]
    assert [kind for kind, _ in answered] == ["job.succeeded", "asset.ready"], "each once, in order"
    assert all(verify(secret, r.headers[SIGNATURE_HEADER], r.body) for r in receiver.received)
    assert {r.event["id"] for r in receiver.received[:refused]} <= {answered[0][1]}, \
        "before the restart only the first event was tried: the second waited behind it"
    with session_scope(dagster_site.catalog_url) as session:
        assert session.scalar(select(func.count()).select_from(WebhookEvent)) == 2
        codes = list(session.scalars(select(WebhookAttempt.status_code).order_by(WebhookAttempt.attempt_id)))
    assert codes[:refused] == [500] * refused and codes[refused:] == [200, 200]
