"""Fixtures of the webhook tests: a real receiver on 127.0.0.1, and endpoints and events in a real catalog."""

from collections.abc import Callable, Iterator

import pytest

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import utcnow
from heimdex_pipeline.webhooks import Event, endpoints, record
from heimdex_pipeline.webhooks.events import EVENT_TYPES
from tests.dagster_home import free_port
from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver answering 200, listening until the test ends."""
    started = Receiver(free_port()).start()
    yield started
    started.stop()


@pytest.fixture
def register(catalog_url: str) -> Callable[..., tuple[str, str]]:
    """Register an endpoint of `org_id` for `url` in the test's catalog; answer its id and secret."""

    def make(url: str, org_id: str = "org-hooks", events: tuple[str, ...] = EVENT_TYPES) -> tuple[str, str]:
        with session_scope(catalog_url) as session:
            webhook = endpoints.create(session, org_id, url, list(events), allow_private=True, max_per_org=20)
            return webhook.webhook_id, webhook.secret

    return make


@pytest.fixture
def happen(catalog_url: str) -> Callable[..., str]:
    """Record an event about `asset_id` in the test's catalog, as the webhook sensor does; answer its id."""
    counter = iter(range(1_000_000))

    def event(asset_id: str, type_: str = "asset.ready", org_id: str = "org-hooks") -> str:
        job_id = f"00000000-0000-4000-8000-{next(counter):012d}"
        with session_scope(catalog_url) as session:
            row = record(session, Event(type_, org_id, asset_id, job_id, utcnow(),
                                        {"job_type": "ingest", "job_name": "ingest_video", "status": "succeeded",
                                         "error": None}))
            assert row is not None, "no endpoint wants the event"
            return row.event_id

    return event
