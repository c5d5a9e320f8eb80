"""`/v1/webhooks`: an org's endpoints and their deliveries, behind `webhooks:write` (or `admin`), and no org
seeing another's; the secret answered once; URLs Heimdex will not call refused."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from heimdex_api.core.config import ApiSettings
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Webhook, utcnow
from heimdex_pipeline.webhooks import SIGNATURE_HEADER, DeliveryPolicy, Event, deliver_due, record, verify
from tests.api.support import bearer, make_token
from tests.dagster_home import free_port
from tests.webhooks.inward import INWARD_HOSTS
from tests.webhooks.receiver import Received, Receiver

PUBLIC_URL = "https://hooks.example.com/heimdex"
# Checks made before the catalog is written are run on SQLite only.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def hooks(org: str) -> dict[str, str]:
    return bearer(make_token(org, ["webhooks:write"]))


@pytest.fixture
def local_client(make_client: Callable[..., TestClient], settings: ApiSettings) -> TestClient:
    """An API that lets webhooks reach this machine, as a test receiver needs."""
    return make_client(settings.model_copy(update={"webhook_allow_private_addresses": True}))


def test_create_answers_the_secret_once(client: TestClient, hooks: dict[str, str]) -> None:
    created = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["asset.ready", "job.failed"]},
                          headers=hooks)
    assert created.status_code == 201, created.text
    body = created.json()
    webhook_id = body["webhook_id"]
    assert created.headers["Location"] == f"/v1/webhooks/{webhook_id}"
    assert body["secret"].startswith("whsec_") and body["url"] == PUBLIC_URL
    assert body["events"] == ["asset.ready", "job.failed"] and body["created_at"]
    listed = client.get("/v1/webhooks", headers=hooks).json()["webhooks"]
    assert listed == [{key: body[key] for key in ("webhook_id", "url", "events", "created_at",
                                                  "previous_secret_expires_at")}]
    read = client.get(f"/v1/webhooks/{webhook_id}", headers=hooks)
    assert read.status_code == 200 and "secret" not in read.json()
    assert body["secret"] not in client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=hooks).text


def test_delete(client: TestClient, hooks: dict[str, str]) -> None:
    webhook_id = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["job.succeeded"]},
                             headers=hooks).json()["webhook_id"]
    assert client.delete(f"/v1/webhooks/{webhook_id}", headers=hooks).status_code == 204
    for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/deliveries")):
        gone = client.request(method, f"/v1/webhooks/{webhook_id}{path}", headers=hooks)
        assert (gone.status_code, gone.json()["error"]) == (404, "webhook_not_found")
    assert client.get("/v1/webhooks", headers=hooks).json() == {"webhooks": []}


def test_another_org_sees_nothing(client: TestClient, hooks: dict[str, str]) -> None:
    webhook_id = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["job.succeeded"]},
                             headers=hooks).json()["webhook_id"]
    stranger = bearer(make_token("org-stranger", ["admin"]))
    assert client.get("/v1/webhooks", headers=stranger).json() == {"webhooks": []}
    unknown = "wh_" + "0" * 24
    for path in (webhook_id, f"{webhook_id}/deliveries", unknown, "not-an-id"):
        answer = client.get(f"/v1/webhooks/{path}", headers=stranger)
        assert (answer.status_code, answer.json()["error"]) == (404, "webhook_not_found")
    assert client.delete(f"/v1/webhooks/{webhook_id}", headers=stranger).status_code == 404
    assert client.get(f"/v1/webhooks/{webhook_id}", headers=hooks).status_code == 200


@sqlite_only
@pytest.mark.parametrize("scopes", [["webhooks:write"], ["admin"]])
def test_the_scopes_that_may(client: TestClient, org: str, scopes: list[str]) -> None:
    headers = bearer(make_token(org, scopes))
    assert client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["job.succeeded"]},
                       headers=headers).status_code == 201
    assert client.get("/v1/webhooks", headers=headers).status_code == 200


@sqlite_only
def test_asset_scopes_may_not(client: TestClient, org: str, auth: dict[str, str]) -> None:
    for method, path in (("POST", ""), ("GET", ""), ("GET", "/wh_" + "0" * 24), ("DELETE", "/wh_" + "0" * 24)):
        answer = client.request(method, f"/v1/webhooks{path}", headers=auth,
                                json={"url": PUBLIC_URL, "events": ["job.succeeded"]} if method == "POST" else None)
        assert (answer.status_code, answer.json()["error"]) == (403, "missing_scope"), (method, path)
    assert client.get("/v1/webhooks").status_code == 401


@sqlite_only
@pytest.mark.parametrize("url", ["ftp://hooks.example.com/x", "http://127.0.0.1:9000/x", "http://169.254.169.254/",
                                 "http://localhost/x", "http://[::1]/x", "https://u:p@hooks.example.com/x",
                                 "not a url", "http://10.0.0.1/x", "http://[::1/x"])
def test_urls_heimdex_will_not_call(client: TestClient, hooks: dict[str, str], url: str) -> None:
    answer = client.post("/v1/webhooks", json={"url": url, "events": ["job.succeeded"]}, headers=hooks)
    assert (answer.status_code, answer.json()["error"]) == (422, "webhook_url_not_allowed")
    assert client.get("/v1/webhooks", headers=hooks).json() == {"webhooks": []}


@sqlite_only
@pytest.mark.parametrize(("host", "leads_to"), INWARD_HOSTS.items())
def test_a_host_leading_inward_is_refused_at_registration(client: TestClient, hooks: dict[str, str], host: str,
                                                           leads_to: str) -> None:
    """NAT64, 6to4, Teredo, IPv4-compatible forms and numbers the resolver reads as an address were registered
    (201) by the old check, which knew dotted IPv4 and plain IPv6 only; the sender refused some of them later."""
    answer = client.post("/v1/webhooks", json={"url": f"http://{host}:9000/hooks", "events": ["job.succeeded"]},
                         headers=hooks)
    assert (answer.status_code, answer.json()["error"]) == (422, "webhook_url_not_allowed"), answer.text
    assert leads_to in answer.json()["detail"] and "HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES" in answer.json()["detail"]
    assert client.get("/v1/webhooks", headers=hooks).json() == {"webhooks": []}


def test_the_setting_lets_every_inward_host_be_registered(make_client: Callable[..., TestClient],
                                                          settings: ApiSettings, hooks: dict[str, str]) -> None:
    client = make_client(settings.model_copy(update={"webhook_allow_private_addresses": True,
                                                     "max_webhooks_per_org": len(INWARD_HOSTS)}))
    for host in INWARD_HOSTS:
        url = f"http://{host}:9000/hooks"
        answer = client.post("/v1/webhooks", json={"url": url, "events": ["job.succeeded"]}, headers=hooks)
        assert (answer.status_code, answer.json()["url"]) == (201, url), answer.text


@sqlite_only
@pytest.mark.parametrize("events", [[], ["asset.deleted"], ["job.succeeded"] * 2, ["job.succeeded"] * 6,
                                    "job.succeeded"])
def test_events_must_be_known(client: TestClient, hooks: dict[str, str], events: object) -> None:
    answer = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": events}, headers=hooks)
    assert (answer.status_code, answer.json()["error"]) == (422, "validation_error")


def test_an_org_has_a_limited_number_of_endpoints(make_client: Callable[..., TestClient], settings: ApiSettings,
                                                  hooks: dict[str, str]) -> None:
    client = make_client(settings.model_copy(update={"max_webhooks_per_org": 2}))
    for _ in range(2):
        assert client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["job.failed"]},
                           headers=hooks).status_code == 201
    refused = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["job.failed"]}, headers=hooks)
    assert (refused.status_code, refused.json()["error"]) == (409, "webhook_limit_reached")


def test_deliveries_list_every_attempt_newest_first(local_client: TestClient, hooks: dict[str, str], org: str,
                                                    settings: ApiSettings) -> None:
    receiver = Receiver(free_port()).start()
    try:
        receiver.answer_with(500)
        webhook_id = local_client.post("/v1/webhooks", json={"url": receiver.url, "events": ["asset.ready"]},
                                       headers=hooks).json()["webhook_id"]
        with session_scope(settings.catalog_url) as session:
            for n in range(3):
                record(session, Event("asset.ready", org, "v_" + f"{n}" * 32, f"00000000-0000-4000-8000-00000000000{n}",
                                      utcnow(), {"status": "succeeded"}))
        policy = DeliveryPolicy(timeout_s=2.0, retry_base_s=0.001, retry_max_delay_s=0.001, allow_private=True)
        deliver_due(settings.catalog_url, policy, budget_s=30)
        deliver_due(settings.catalog_url, policy, budget_s=30)
    finally:
        receiver.stop()
    first = local_client.get(f"/v1/webhooks/{webhook_id}/deliveries?limit=2", headers=hooks)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [d["asset_id"] for d in page["deliveries"]] == ["v_" + "2" * 32, "v_" + "1" * 32]
    rest = local_client.get(f"/v1/webhooks/{webhook_id}/deliveries?limit=2&before={page['next_before']}",
                            headers=hooks).json()
    assert [d["asset_id"] for d in rest["deliveries"]] == ["v_" + "0" * 32] and rest["next_before"] is None
    deliveries = page["deliveries"] + rest["deliveries"]
    assert all(d["status"] == "delivered" and d["next_attempt_at"] is None and d["finished_at"] for d in deliveries)
    attempts = sorted((a["status_code"] for d in deliveries for a in d["attempts"]), key=str)
    assert attempts == [200, 200, 200, 500], "one first attempt got the 500, and was retried"
    retried = next(d for d in deliveries if len(d["attempts"]) == 2)
    assert [a["error"] for a in retried["attempts"]] == ["HTTP 500", None]
    assert all(a["latency_ms"] >= 0 and a["attempted_at"] for a in retried["attempts"])


def test_concurrent_registrations_keep_the_limit(make_client: Callable[..., TestClient], settings: ApiSettings,
                                                 hooks: dict[str, str]) -> None:
    client = make_client(settings.model_copy(update={"max_webhooks_per_org": 3}))

    def register(_: int) -> int:
        return client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["job.failed"]},
                           headers=hooks).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(register, range(16)))
    assert codes == [201] * 3 + [409] * 13
    assert len(client.get("/v1/webhooks", headers=hooks).json()["webhooks"]) == 3


def _deliver_one(settings: ApiSettings, org: str, receiver: Receiver) -> Received:
    """Record one event of the org and send it; answer the request the receiver got."""
    with session_scope(settings.catalog_url) as session:
        assert record(session, Event("asset.ready", org, "v_" + "7" * 32, str(uuid4()), utcnow(),
                                     {"status": "succeeded"})) is not None
    deliver_due(settings.catalog_url, DeliveryPolicy(timeout_s=2.0, allow_private=True), budget_s=30)
    return receiver.received[-1]


def test_a_rotated_secret_signs_beside_the_previous_one_until_it_expires(local_client: TestClient, org: str,
                                                                        hooks: dict[str, str],
                                                                        settings: ApiSettings) -> None:
    receiver = Receiver(free_port()).start()
    try:
        created = local_client.post("/v1/webhooks", json={"url": receiver.url, "events": ["asset.ready"]},
                                    headers=hooks).json()
        path = f"/v1/webhooks/{created['webhook_id']}"
        assert created["previous_secret_expires_at"] is None
        rotated = local_client.post(f"{path}/rotate-secret", headers=hooks)
        assert rotated.status_code == 200, rotated.text
        first, second = created["secret"], rotated.json()["secret"]
        assert second.startswith("whsec_") and second != first
        until = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
        assert timedelta(hours=23) < until - utcnow() <= timedelta(days=1)
        read = local_client.get(path, headers=hooks).json()
        assert "secret" not in read and read["previous_secret_expires_at"] == rotated.json()["previous_secret_expires_at"]

        # While both sign, a receiver that still checks with the old secret accepts the request, as does one
        # that has switched.
        request = _deliver_one(settings, org, receiver)
        header = request.headers[SIGNATURE_HEADER]
        assert header.count("v1=") == 2
        assert verify(first, header, request.body) and verify(second, header, request.body)

        # Once the previous secret has expired, only the current one signs.
        with session_scope(settings.catalog_url) as session:
            session.execute(update(Webhook).where(Webhook.webhook_id == created["webhook_id"])
                            .values(previous_secret_expires_at=utcnow() - timedelta(seconds=1)))
        assert local_client.get(path, headers=hooks).json()["previous_secret_expires_at"] is None
        request = _deliver_one(settings, org, receiver)
        assert request.headers[SIGNATURE_HEADER].count("v1=") == 1
        assert verify(second, request.headers[SIGNATURE_HEADER], request.body)
        assert not verify(first, request.headers[SIGNATURE_HEADER], request.body)

        # `previous_valid_for_s: 0` retires the old secret at once.
        third = local_client.post(f"{path}/rotate-secret", json={"previous_valid_for_s": 0}, headers=hooks).json()
        assert third["previous_secret_expires_at"] is None
        request = _deliver_one(settings, org, receiver)
        assert verify(third["secret"], request.headers[SIGNATURE_HEADER], request.body)
        assert not verify(second, request.headers[SIGNATURE_HEADER], request.body)
    finally:
        receiver.stop()


@sqlite_only
@pytest.mark.parametrize("body", [{"previous_valid_for_s": -1}, {"previous_valid_for_s": 7 * 86_400 + 1},
                                  {"previous_valid_for_s": "60"}, {"previous_valid_for_s": 60, "secret": "mine"}])
def test_a_rotation_body_out_of_bounds_is_refused(client: TestClient, hooks: dict[str, str], settings: ApiSettings,
                                                  body: object) -> None:
    created = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["job.failed"]}, headers=hooks).json()
    refused = client.post(f"/v1/webhooks/{created['webhook_id']}/rotate-secret", json=body, headers=hooks)
    assert (refused.status_code, refused.json()["error"]) == (422, "validation_error")
    # Nothing changed: the secret first answered is still the one that signs.
    with session_scope(settings.catalog_url) as session:
        assert session.get(Webhook, created["webhook_id"]).secret == created["secret"]


def test_another_org_or_scope_cannot_rotate_a_secret(client: TestClient, hooks: dict[str, str], org: str,
                                                    settings: ApiSettings) -> None:
    created = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["job.failed"]}, headers=hooks).json()
    other = bearer(make_token("org-someone-else", ["webhooks:write"]))
    for webhook_id in (created["webhook_id"], "wh_" + "0" * 24):
        refused = client.post(f"/v1/webhooks/{webhook_id}/rotate-secret", headers=other)
        assert (refused.status_code, refused.json()["error"]) == (404, "webhook_not_found")
    assets_only = client.post(f"/v1/webhooks/{created['webhook_id']}/rotate-secret",
                              headers=bearer(make_token(org, ["assets:read", "assets:write"])))
    assert (assets_only.status_code, assets_only.json()["error"]) == (403, "missing_scope")
    with session_scope(settings.catalog_url) as session:
        assert session.get(Webhook, created["webhook_id"]).secret == created["secret"]


def test_a_finished_delivery_is_sent_again_on_request(local_client: TestClient, org: str, hooks: dict[str, str],
                                                      settings: ApiSettings) -> None:
    receiver = Receiver(free_port()).start()
    try:
        receiver.answer_with(503, then=200)
        webhook_id = local_client.post("/v1/webhooks", json={"url": receiver.url, "events": ["asset.ready"]},
                                       headers=hooks).json()["webhook_id"]
        with session_scope(settings.catalog_url) as session:
            record(session, Event("asset.ready", org, "v_" + "6" * 32, str(uuid4()), utcnow(), {"status": "succeeded"}))
        # Retries that ran out at the first failure: the delivery is failed for good.
        deliver_due(settings.catalog_url, DeliveryPolicy(timeout_s=2.0, retry_for_s=0, allow_private=True), budget_s=30)
        path = f"/v1/webhooks/{webhook_id}/deliveries"
        [failed] = local_client.get(path, headers=hooks).json()["deliveries"]
        assert failed["status"] == "failed" and [a["status_code"] for a in failed["attempts"]] == [503]

        again = local_client.post(f"{path}/{failed['delivery_id']}/redeliver", headers=hooks)
        assert again.status_code == 202, again.text
        assert again.json()["status"] == "pending" and again.json()["next_attempt_at"]
        # Pending already: asking again changes nothing.
        twice = local_client.post(f"{path}/{failed['delivery_id']}/redeliver", headers=hooks)
        assert (twice.status_code, twice.json()["error"]) == (409, "delivery_pending")

        deliver_due(settings.catalog_url, DeliveryPolicy(timeout_s=2.0, allow_private=True), budget_s=30)
        [delivered] = local_client.get(path, headers=hooks).json()["deliveries"]
        assert delivered["status"] == "delivered" and [a["status_code"] for a in delivered["attempts"]] == [503, 200]
        assert [r.event["id"] for r in receiver.received] == [failed["event_id"]] * 2
        assert receiver.received[0].body == receiver.received[1].body

        # A delivered one may be asked for again too (a receiver that lost what it got).
        assert local_client.post(f"{path}/{failed['delivery_id']}/redeliver", headers=hooks).status_code == 202
        deliver_due(settings.catalog_url, DeliveryPolicy(timeout_s=2.0, allow_private=True), budget_s=30)
        assert len(receiver.received) == 3
    finally:
        receiver.stop()


def test_redelivery_answers_only_the_orgs_own_deliveries(local_client: TestClient, org: str, hooks: dict[str, str],
                                                         settings: ApiSettings) -> None:
    mine = local_client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["asset.ready"]},
                             headers=hooks).json()["webhook_id"]
    other_org = bearer(make_token(f"{org}-other", ["webhooks:write"]))
    theirs = local_client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["asset.ready"]},
                               headers=other_org).json()["webhook_id"]
    with session_scope(settings.catalog_url) as session:
        record(session, Event("asset.ready", f"{org}-other", "v_" + "5" * 32, str(uuid4()), utcnow(), {}))
    [their_delivery] = local_client.get(f"/v1/webhooks/{theirs}/deliveries",
                                        headers=other_org).json()["deliveries"]
    tries = {
        # Their delivery through my endpoint, and my org asking for their endpoint: nothing to see.
        f"/v1/webhooks/{mine}/deliveries/{their_delivery['delivery_id']}/redeliver": (404, "delivery_not_found"),
        f"/v1/webhooks/{theirs}/deliveries/{their_delivery['delivery_id']}/redeliver": (404, "webhook_not_found"),
        f"/v1/webhooks/{mine}/deliveries/{2**63 - 1}/redeliver": (404, "delivery_not_found"),
        f"/v1/webhooks/{mine}/deliveries/{2**63}/redeliver": (422, "validation_error"),
        f"/v1/webhooks/{mine}/deliveries/0/redeliver": (422, "validation_error"),
    }
    for path, expected in tries.items():
        answer = local_client.post(path, headers=hooks)
        assert (answer.status_code, answer.json()["error"]) == expected, path


@sqlite_only
@pytest.mark.parametrize("before", ["9223372036854775808", "99999999999999999999999", "0"])
def test_a_page_before_an_id_no_delivery_can_have_is_refused(client: TestClient, hooks: dict[str, str],
                                                              before: str) -> None:
    """An id past 64 bits reached the database, which failed on it (500)."""
    webhook_id = client.post("/v1/webhooks", json={"url": PUBLIC_URL, "events": ["job.failed"]},
                             headers=hooks).json()["webhook_id"]
    answer = client.get(f"/v1/webhooks/{webhook_id}/deliveries?before={before}", headers=hooks)
    assert (answer.status_code, answer.json()["error"]) == (422, "validation_error")
