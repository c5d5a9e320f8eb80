"""Webhooks: events about an org's videos, POSTed signed to the org's endpoints from a durable outbox.

    events.py      the events (`asset.ready`, ...) and their bodies; recording one in the outbox
    endpoints.py   an org's endpoints and their deliveries, for the API
    delivery.py    the outbox's sender: leases, attempts, backoff with jitter, order per video
    sender.py      one POST and what came of it
    addresses.py   which URLs and addresses may be called
    signing.py     the `Heimdex-Signature` header

The Dagster side, which turns run outcomes into events and runs the sender, is
`heimdex_pipeline.sensors.webhooks`.
"""

from heimdex_pipeline.webhooks.addresses import UnsafeUrlError
from heimdex_pipeline.webhooks.delivery import DeliveryPolicy, DeliveryReport, deliver_due, forget_old
from heimdex_pipeline.webhooks.events import EVENT_TYPES, Event, record
from heimdex_pipeline.webhooks.signing import SIGNATURE_HEADER, sign, verify

__all__ = ["EVENT_TYPES", "SIGNATURE_HEADER", "DeliveryPolicy", "DeliveryReport", "Event", "UnsafeUrlError",
           "deliver_due", "forget_old", "record", "sign", "verify"]
