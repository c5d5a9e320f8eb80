"""A write is committed before its answer is sent: a client that reads right after a 201 or a 204 sees it.

schemathesis against a served API (tests/api/test_openapi.py) found it the other way: the session's
commit ran once the answer had gone out, so that a webhook just created could answer 404 and one
just deleted still 200. The order is watched at the ASGI boundary, where the server sends the
answer, so the test does not depend on winning a race.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from dagster import DagsterInstance
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from heimdex_api.core.config import ApiSettings
from heimdex_api.main import create_app
from tests.api.support import bearer, make_token


@pytest.fixture
def seen() -> Iterator[list[str]]:
    """What happened, in order: `commit` for each committed session, `answer` when a response starts."""
    happened: list[str] = []

    def committed(_: Session) -> None:
        happened.append("commit")

    event.listen(Session, "after_commit", committed)
    yield happened
    event.remove(Session, "after_commit", committed)


def _watched(app: Any, seen: list[str]) -> Any:
    async def watched(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                seen.append("answer")
            await send(message)

        await app(scope, receive, sending)

    return watched


def test_a_webhook_is_stored_before_the_201_and_gone_before_the_204(settings: ApiSettings,
                                                                     dagster_instance: DagsterInstance, org: str,
                                                                     seen: list[str]) -> None:
    hooks = bearer(make_token(org, ["webhooks:write"]))
    with TestClient(_watched(create_app(settings, instance=dagster_instance), seen)) as client:
        seen.clear()
        created = client.post("/v1/webhooks", headers=hooks,
                              json={"url": "https://hooks.example.com/heimdex", "events": ["job.failed"]})
        assert created.status_code == 201, created.text
        assert seen == ["commit", "answer"]
        seen.clear()
        assert client.delete(f"/v1/webhooks/{created.json()['webhook_id']}", headers=hooks).status_code == 204
        assert seen == ["commit", "answer"]
