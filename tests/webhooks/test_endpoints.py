"""Endpoints' secrets rotated in turn: a rotation that raced another keeps the winner's secret as the previous
one, so no caller is answered a secret that never signs; on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Webhook
from heimdex_pipeline.webhooks import endpoints

DAY = timedelta(days=1)


def _made(catalog_url: str) -> Webhook:
    with session_scope(catalog_url) as session:
        webhook = endpoints.create(session, "org-rotate", "https://hooks.example.com/h", ["asset.ready"],
                                   allow_private=False, max_per_org=20)
        session.expunge(webhook)
    return webhook


def test_a_rotation_that_read_a_secret_since_replaced_keeps_the_newer_one(catalog_url: str) -> None:
    original = _made(catalog_url).webhook_id
    with session_scope(catalog_url) as late:
        stale = late.get(Webhook, original)
        first_read = stale.secret
        # Another caller rotates, and is answered its secret, while this one holds what it read before.
        with session_scope(catalog_url) as early:
            answered_first = endpoints.rotate_secret(early, early.get(Webhook, original), DAY).secret
        answered_second = endpoints.rotate_secret(late, stale, DAY).secret
    with session_scope(catalog_url) as session:
        row = session.get(Webhook, original)
        assert row.secret == answered_second
        assert row.previous_secret == answered_first, "the first caller's secret still signs"
        assert first_read not in (row.secret, row.previous_secret)


def test_no_overlap_keeps_no_previous_secret(catalog_url: str) -> None:
    original = _made(catalog_url)
    with session_scope(catalog_url) as session:
        rotated = endpoints.rotate_secret(session, session.get(Webhook, original.webhook_id), timedelta(0))
        assert (rotated.previous_secret, rotated.previous_secret_expires_at) == (None, None)
        assert rotated.secret != original.secret


def test_a_webhook_deleted_meanwhile_cannot_be_rotated(catalog_url: str) -> None:
    original = _made(catalog_url)
    with session_scope(catalog_url) as late:
        stale = late.get(Webhook, original.webhook_id)
        with session_scope(catalog_url) as other:
            endpoints.remove(other, other.get(Webhook, original.webhook_id))
        with pytest.raises(LookupError):
            endpoints.rotate_secret(late, stale, DAY)
