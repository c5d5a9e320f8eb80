"""The outbox's sender against a real receiver on 127.0.0.1, on SQLite and PostgreSQL: signatures, retries
after 500s and timeouts, a receiver down then up, order per video, redirects and refused addresses."""

import math
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import WebhookAttempt, WebhookDelivery, WebhookEvent, as_utc, utcnow
from heimdex_pipeline.webhooks import SIGNATURE_HEADER, DeliveryPolicy, deliver_due, forget_old, verify
from heimdex_pipeline.webhooks.delivery import CONCURRENCY
from heimdex_pipeline.webhooks.sender import MAX_ERROR_CHARS, post
from tests.dagster_home import free_port
from tests.webhooks.connections import no_connection
from tests.webhooks.inward import INWARD_HOSTS
from tests.webhooks.outbox import FAST, deliveries
from tests.webhooks.receiver import HOLD_LIMIT_S, Receiver


def _send_until_settled(catalog_url: str, policy: DeliveryPolicy, passes: int = 20) -> None:
    for _ in range(passes):
        deliver_due(catalog_url, policy, budget_s=30)
        if all(row.status != "pending" for row, _ in deliveries(catalog_url)):
            return
        time.sleep(0.01)
    pytest.fail(f"deliveries still pending after {passes} passes: {deliveries(catalog_url)}")


def _timed(call: Callable[[], object]) -> tuple[object, int]:
    """What `call` answers, and the milliseconds it took, rounded up: no attempt made within it took longer."""
    started = time.monotonic()
    result = call()
    return result, math.ceil((time.monotonic() - started) * 1000)


def test_a_delivery_is_signed_and_recorded(catalog_url: str, receiver: Receiver, register: Callable,
                                           happen: Callable) -> None:
    webhook_id, secret = register(receiver.url)
    event_id = happen("v_" + "a" * 32)
    receiver.answer = lambda _: (200, 0.25)  # the receiver takes a quarter of a second to answer
    report, pass_ms = _timed(lambda: deliver_due(catalog_url, FAST, budget_s=30))
    assert report.delivered == 1
    [request] = receiver.received
    assert request.path == "/hooks/heimdex"
    assert verify(secret, request.headers[SIGNATURE_HEADER], request.body)
    assert not verify(secret, request.headers[SIGNATURE_HEADER], request.body + b" ")
    assert not verify("whsec_another", request.headers[SIGNATURE_HEADER], request.body)
    assert request.headers["Heimdex-Event-Id"] == event_id and request.headers["Content-Type"] == "application/json"
    event = request.event
    assert {key: event[key] for key in ("id", "type", "org_id", "asset_id")} == {
        "id": event_id, "type": "asset.ready", "org_id": "org-hooks", "asset_id": "v_" + "a" * 32}
    assert event["job_id"] and event["created_at"] and event["data"]["status"] == "succeeded"
    [(delivery, [attempt])] = deliveries(catalog_url)
    assert (delivery.status, delivery.attempts, delivery.webhook_id) == ("delivered", 1, webhook_id)
    # The latency recorded is the attempt's: at least the receiver's wait, at most the whole pass.
    assert attempt.status_code == 200 and attempt.error is None and 250 <= attempt.latency_ms <= pass_ms
    # Delivered is done: a later pass sends nothing again.
    assert deliver_due(catalog_url, FAST, budget_s=30).answers == []
    assert len(receiver.received) == 1


def test_500s_are_retried_with_the_same_body_until_a_2xx(catalog_url: str, receiver: Receiver, register: Callable,
                                                          happen: Callable) -> None:
    _, secret = register(receiver.url)
    receiver.answer_with(500, 503, 404)
    happen("v_" + "b" * 32)
    _send_until_settled(catalog_url, FAST)
    [(delivery, attempts)] = deliveries(catalog_url)
    assert delivery.status == "delivered" and delivery.attempts == 4
    assert [a.status_code for a in attempts] == [500, 503, 404, 200]
    assert [a.error for a in attempts] == ["HTTP 500", "HTTP 503", "HTTP 404", None]
    bodies = {request.body for request in receiver.received}
    assert len(bodies) == 1, "every attempt carries the same event"
    assert all(verify(secret, r.headers[SIGNATURE_HEADER], r.body) for r in receiver.received)


def test_a_retry_waits_its_backoff(catalog_url: str, receiver: Receiver, register: Callable,
                                   happen: Callable) -> None:
    register(receiver.url)
    receiver.answer_with(500)
    happen("v_" + "c" * 32)
    policy = DeliveryPolicy(timeout_s=2.0, retry_base_s=60.0, allow_private=True)
    before = utcnow()
    assert deliver_due(catalog_url, policy, budget_s=30).retrying == 1
    [(delivery, _)] = deliveries(catalog_url)
    # The first retry comes 30 to 60 s later (the base, drawn in its upper half): not in this pass, nor the next.
    assert timedelta(seconds=29) < as_utc(delivery.next_attempt_at) - before < timedelta(seconds=61)
    assert deliver_due(catalog_url, policy, budget_s=30).answers == []
    assert len(receiver.received) == 1


def test_a_receiver_too_slow_is_a_timeout_then_retried(catalog_url: str, receiver: Receiver, register: Callable,
                                                       happen: Callable) -> None:
    register(receiver.url)
    # The first request is answered only once the pass that sent it is over; later ones at once.
    release = threading.Event()
    held = iter([(200, release)])
    receiver.answer = lambda _: next(held, (200, 0.0))
    happen("v_" + "d" * 32)
    policy = DeliveryPolicy(timeout_s=0.5, retry_base_s=0.001, retry_max_delay_s=0.001, allow_private=True)
    try:
        report, pass_ms = _timed(lambda: deliver_due(catalog_url, policy, budget_s=30))
    finally:
        release.set()
    # The attempt ended at its timeout while the receiver still held its answer (a sender waiting for it
    # would have waited HOLD_LIMIT_S, then got a 200).
    assert report.retrying == 1 and pass_ms < HOLD_LIMIT_S * 1000
    [(_, [first])] = deliveries(catalog_url)
    assert (first.status_code, first.error) == (None, "timed out after 0.5 s")
    assert 500 <= first.latency_ms <= pass_ms
    _send_until_settled(catalog_url, policy)
    [(delivery, attempts)] = deliveries(catalog_url)
    assert delivery.status == "delivered" and attempts[-1].status_code == 200


def test_a_receiver_down_then_up_gets_every_event_in_order_per_video(catalog_url: str, register: Callable,
                                                                     happen: Callable) -> None:
    receiver = Receiver(free_port())  # not started: connections are refused
    register(receiver.url)
    videos = ["v_" + c * 32 for c in "0123"]
    sequence = [(video, kind) for _ in range(3) for video in videos
                for kind in ("job.failed", "asset.failed", "job.succeeded", "asset.ready")]
    ids = [happen(video, kind) for video, kind in sequence]
    for _ in range(3):  # down: every attempt refused, and only the first event of each video tried
        report = deliver_due(catalog_url, FAST, budget_s=30)
        assert report.retrying == len(videos) and report.delivered == 0
        assert all(a.status_code is None and a.error for a in report.answers)
    receiver.start()
    try:
        _send_until_settled(catalog_url, FAST)
    finally:
        receiver.stop()
    got = receiver.events()
    assert sorted(e["id"] for e in got) == sorted(ids), "every event arrived, each once"
    for video in videos:
        assert [e["id"] for e in got if e["asset_id"] == video] == [i for i, (v, _) in zip(ids, sequence) if v == video]
    first_attempts = [attempts for _, attempts in deliveries(catalog_url)]
    assert sum(len(attempts) for attempts in first_attempts) == len(ids) + 3 * len(videos)


def test_a_later_event_of_a_video_waits_for_an_earlier_one(catalog_url: str, receiver: Receiver, register: Callable,
                                                           happen: Callable) -> None:
    register(receiver.url)
    first, second = happen("v_" + "e" * 32, "job.succeeded"), happen("v_" + "e" * 32, "asset.ready")
    other = happen("v_" + "f" * 32, "asset.ready")
    answers = iter([500])
    receiver.answer = lambda request: (next(answers, 200) if request.event["id"] == first else 200, 0.0)
    policy = DeliveryPolicy(timeout_s=2.0, retry_base_s=60.0, allow_private=True)
    deliver_due(catalog_url, policy, budget_s=30)
    # The first event of v_e… failed and waits its retry; its second waits behind it; v_f… is not held up.
    assert sorted(r.event["id"] for r in receiver.received) == sorted([first, other])
    with session_scope(catalog_url) as session:  # the retry's time comes
        session.execute(update(WebhookDelivery).values(next_attempt_at=utcnow()))
    _send_until_settled(catalog_url, FAST)
    assert [r.event["id"] for r in receiver.received if r.event["asset_id"] == "v_" + "e" * 32] == [first, first, second]


def test_a_redirect_is_not_followed(catalog_url: str, receiver: Receiver, register: Callable,
                                    happen: Callable) -> None:
    elsewhere = Receiver(free_port()).start()
    try:
        receiver.extra_headers = {"Location": elsewhere.url}
        receiver.answer_with(307)
        register(receiver.url)
        happen("v_" + "1" * 32)
        report = deliver_due(catalog_url, FAST, budget_s=30)
        assert report.retrying == 1 and report.answers[0].status_code == 307
        assert report.answers[0].error == "a redirect, not followed"
        assert elsewhere.received == []
    finally:
        elsewhere.stop()


def test_a_private_address_is_refused_without_a_connection(catalog_url: str, receiver: Receiver,
                                                           register: Callable, happen: Callable) -> None:
    register(receiver.url)  # registered while allowed; the setting was turned off since
    register(f"http://localhost:{receiver.port}/hooks", org_id="org-other")
    happen("v_" + "2" * 32)
    happen("v_" + "3" * 32, org_id="org-other")
    report = deliver_due(catalog_url, DeliveryPolicy(timeout_s=2.0, allow_private=False), budget_s=30)
    errors = sorted(answer.error for answer in report.answers)
    assert errors == ["refused: 127.0.0.1 is not a public address (HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)",
                      "refused: localhost is not a public address (HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)"]
    assert receiver.received == []


@pytest.fixture
def loopback_port() -> Iterator[int]:
    """A port listened on at 127.0.0.1 and at ::1, where no connection may arrive."""
    for _ in range(20):
        with socket.create_server(("127.0.0.1", 0)) as ipv4:
            port = ipv4.getsockname()[1]
            try:
                ipv6 = socket.create_server(("::1", port), family=socket.AF_INET6)
            except OSError:
                continue  # ::1 has that port taken: another
            with ipv6:
                yield port
                for server in (ipv4, ipv6):
                    server.setblocking(False)
                    with pytest.raises(BlockingIOError):
                        server.accept()  # nothing connected: a connection, accepted or not, waits here
                    # The listener does count: the test's own connection is seen.
                    with socket.create_connection(server.getsockname()[:2], timeout=5):
                        server.setblocking(True)
                        server.settimeout(5)
                        server.accept()[0].close()
            return
    pytest.fail("no port free on both 127.0.0.1 and ::1")


@pytest.mark.parametrize("host", INWARD_HOSTS)
def test_a_host_leading_inward_is_refused_before_any_connection(host: str, loopback_port: int) -> None:
    """NAT64, 6to4, Teredo and site-local addresses are routed out of this machine's interface, not to the
    loopback listener: the watch on connections stops the sender's try (the old code tried)."""
    with no_connection():
        answer = post(f"http://{host}:{loopback_port}/hooks", b"{}", {}, timeout_s=2.0, allow_private=False)
    assert answer.status_code is None and answer.error.startswith("refused: ")
    assert INWARD_HOSTS[host] in answer.error and "not a public address" in answer.error


def test_an_endpoint_that_never_answers_holds_up_no_other_org(catalog_url: str, receiver: Receiver,
                                                               register: Callable, happen: Callable) -> None:
    """One org's endpoint swallows every request and has 40 videos' events due before another org's one:
    the pass sends the other's at once, and spends one batch, not its whole budget, on the silent one."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections complete, requests are taken in, nothing ever answers
        register(f"http://127.0.0.1:{silent.getsockname()[1]}/hooks", org_id="org-silent")
        for n in range(40):
            happen(f"v_{n:032x}", org_id="org-silent")
        register(receiver.url, org_id="org-other")
        happen("v_" + "9" * 32, org_id="org-other")
        report = deliver_due(catalog_url, DeliveryPolicy(timeout_s=1.0, retry_base_s=0.001, retry_max_delay_s=0.001,
                                                         allow_private=True), budget_s=6)
    assert len(receiver.received) == 1 and report.delivered == 1
    assert report.retrying == CONCURRENCY - 1
    assert all("timed out" in answer.error for answer in report.answers if not answer.delivered)
    assert sum(len(attempts) for _, attempts in deliveries(catalog_url)) == CONCURRENCY


def test_a_delivery_is_given_up_when_its_retries_run_out(catalog_url: str, receiver: Receiver, register: Callable,
                                                         happen: Callable) -> None:
    register(receiver.url)
    receiver.answer_with(then=500)
    happen("v_" + "4" * 32)
    with session_scope(catalog_url) as session:  # a day has gone by
        session.execute(update(WebhookEvent).values(created_at=utcnow() - timedelta(hours=24)))
    report = deliver_due(catalog_url, DeliveryPolicy(timeout_s=2.0, allow_private=True), budget_s=30)
    assert report.failed == 1
    [(delivery, [attempt])] = deliveries(catalog_url)
    assert delivery.status == "failed" and delivery.finished_at is not None and attempt.status_code == 500


def test_the_default_schedule_retries_for_a_day_and_at_least_hourly() -> None:
    policy = DeliveryPolicy()
    rng = random.Random(7)
    elapsed, attempts, gaps = 0.0, 0, []
    while True:
        attempts += 1
        delay = policy.retry_delay(attempts, rng)
        if elapsed + delay > policy.retry_for_s:
            break
        gaps.append(delay)
        elapsed += delay
    assert 5 <= gaps[0] <= 10 and max(gaps) <= 3600
    # A receiver down for an hour gets the event within the hour after it is back, and a day of retries
    # is about 30 attempts, not thousands.
    assert elapsed > 23 * 3600 and 25 <= attempts <= 60


@pytest.mark.parametrize(("start", "byte"), [(b"HTTP/1.", b"1"), (b"HTTP/1.1 200 OK\r\nX-Trickle: ", b"a")],
                         ids=["status line", "headers after a 200"])
def test_a_receiver_trickling_its_answer_is_cut_off_at_the_timeout(start: bytes, byte: bytes) -> None:
    """Socket timeouts bound each read: a byte of the status line, or of a header after `200 OK`, every
    0.3 s, with no end, would hold the attempt for ever without the cut-off; and an answer cut off in its
    headers is no answer, whatever its status line said (it was recorded as delivered). The receiver
    trickles until the attempt is over, or gives up after HOLD_LIMIT_S."""
    server = socket.create_server(("127.0.0.1", 0))
    stop, gave_up = threading.Event(), threading.Event()

    def trickle() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            connection.send(start)
            for _ in range(int(HOLD_LIMIT_S / 0.3)):
                if stop.wait(0.3):
                    return
                try:
                    connection.send(byte)
                except OSError:
                    return
            gave_up.set()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        answer, post_ms = _timed(lambda: post(f"http://127.0.0.1:{server.getsockname()[1]}/hook", b"{}", {},
                                              timeout_s=1.0, allow_private=True))
        trickling = not gave_up.is_set()
    finally:
        stop.set()
        server.close()
    assert trickling, "the attempt lasted as long as the receiver kept sending"
    assert (answer.status_code, answer.error) == (None, "timed out after 1 s")
    assert 1000 <= answer.latency_ms <= post_ms


def test_what_a_receiver_sends_is_quoted_short_in_the_attempts_error(catalog_url: str, register: Callable,
                                                                     happen: Callable) -> None:
    """A status line of 60 KB is not stored, logged and listed whole with every attempt."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer_garbage() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"X" * 60_000 + b"\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        register(f"http://127.0.0.1:{server.getsockname()[1]}/hook")
        happen("v_" + "8" * 32)
        assert deliver_due(catalog_url, FAST, budget_s=30).retrying == 1
    finally:
        server.close()
    [(_, [attempt])] = deliveries(catalog_url)
    assert attempt.error.startswith("BadStatusLine: XXX") and attempt.error.endswith("…")
    assert len(attempt.error) == MAX_ERROR_CHARS


def test_a_name_slow_to_resolve_is_cut_off_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The name server of a client's domain may take its time. No slow name server can be set up here,
    so the lookup waits, before the system resolver answers, until the attempt is over (HOLD_LIMIT_S at
    most); the attempt ends at its limit while the lookup still waits."""
    lookup, release = socket.getaddrinfo, threading.Event()

    def slow_lookup(*args: object, **kwargs: object) -> object:
        release.wait(HOLD_LIMIT_S)
        return lookup(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_lookup)
    try:
        with socket.create_server(("127.0.0.1", 0)) as server:
            answer, post_ms = _timed(lambda: post(f"http://localhost:{server.getsockname()[1]}/hook", b"{}", {},
                                                  timeout_s=1.0, allow_private=True))
    finally:
        release.set()
    assert (answer.status_code, answer.error) == (None, "refused: localhost did not resolve within 1 s")
    assert 1000 <= answer.latency_ms <= post_ms < HOLD_LIMIT_S * 1000


def test_finished_deliveries_are_forgotten_after_the_history(catalog_url: str, receiver: Receiver,
                                                             register: Callable, happen: Callable) -> None:
    register(receiver.url)
    old, recent = happen("v_" + "5" * 32), happen("v_" + "6" * 32)
    pending = happen("v_" + "7" * 32)
    deliver_due(catalog_url, FAST, budget_s=30)
    month_ago = utcnow() - timedelta(days=31)
    with session_scope(catalog_url) as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.event_id.in_([old, pending]))
                        .values(finished_at=month_ago))
        session.execute(update(WebhookDelivery).where(WebhookDelivery.event_id == pending).values(status="pending"))
        session.execute(update(WebhookEvent).where(WebhookEvent.event_id.in_([old, pending]))
                        .values(created_at=month_ago))
    assert forget_old(catalog_url, FAST) == 1
    with session_scope(catalog_url) as session:
        assert set(session.scalars(select(WebhookEvent.event_id))) == {recent, pending}
        assert set(session.scalars(select(WebhookDelivery.event_id))) == {recent, pending}
        assert session.scalar(select(func.count()).select_from(WebhookAttempt)) == 2
