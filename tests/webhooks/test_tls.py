"""Webhooks to HTTPS receivers: a real TLS server on 127.0.0.1 with certificates of a test authority (trustme).

The sender connects to the address it checked, yet verifies the certificate against the URL's
name and sends that name in SNI and `Host`; an untrusted authority or a certificate for another
name gets no request at all. A private authority is trusted the OpenSSL way, with SSL_CERT_FILE.
"""

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from heimdex_pipeline.webhooks import SIGNATURE_HEADER, deliver_due, verify
from tests.dagster_home import free_port
from tests.webhooks.outbox import FAST, deliveries
from tests.webhooks.receiver import Receiver


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusted(authority: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test authority is trusted as an operator trusts a private one: SSL_CERT_FILE names its certificate."""
    bundle = tmp_path / "authority.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))


@pytest.fixture
def https_receiver(authority: trustme.CA) -> Iterator[Callable[[str], tuple[Receiver, list[str]]]]:
    """Start a receiver at https://localhost:<port> whose certificate is for `name`; answer it and the SNI names seen."""
    started: list[Receiver] = []

    def start(name: str) -> tuple[Receiver, list[str]]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert(name).configure_cert(context)
        server_names: list[str] = []
        context.sni_callback = lambda _socket, server_name, _context: server_names.append(server_name)
        receiver = Receiver(free_port(), tls=context, host="localhost").start()
        started.append(receiver)
        return receiver, server_names

    yield start
    for receiver in started:
        receiver.stop()


@pytest.mark.usefixtures("trusted")
def test_an_https_receiver_gets_the_signed_event_under_its_name(catalog_url: str, register: Callable,
                                                               happen: Callable, https_receiver: Callable) -> None:
    receiver, server_names = https_receiver("localhost")
    _, secret = register(receiver.url)
    happen("v_" + "e" * 32)
    assert deliver_due(catalog_url, FAST, budget_s=30).delivered == 1
    [request] = receiver.received
    assert verify(secret, request.headers[SIGNATURE_HEADER], request.body)
    # Connected to 127.0.0.1, the address checked, but as `localhost` for TLS and HTTP alike.
    assert server_names == ["localhost"]
    assert request.headers["Host"] == f"localhost:{receiver.port}"
    [(delivery, [attempt])] = deliveries(catalog_url)
    assert (delivery.status, attempt.status_code, attempt.error) == ("delivered", 200, None)


@pytest.mark.usefixtures("trusted")
def test_a_certificate_for_another_name_gets_no_request_and_holds_up_no_one(
        catalog_url: str, register: Callable, happen: Callable, https_receiver: Callable, receiver: Receiver) -> None:
    impostor, _ = https_receiver("hooks.example.com")
    register(impostor.url, org_id="org-impostor")
    register(receiver.url, org_id="org-other")
    happen("v_" + "c" * 32, org_id="org-impostor")
    happen("v_" + "d" * 32, org_id="org-other")
    # One pass: the other org's event goes out although the first receiver's certificate fails.
    report = deliver_due(catalog_url, FAST, budget_s=30)
    assert (report.delivered, report.retrying) == (1, 1)
    assert impostor.received == [] and len(receiver.received) == 1
    attempt = next(attempts[0] for delivery, attempts in deliveries(catalog_url) if delivery.status == "pending")
    assert attempt.status_code is None
    assert "CertificateError: hostname 'localhost' doesn't match 'hooks.example.com'" in attempt.error, attempt.error


def test_an_untrusted_authority_gets_no_request_and_is_retried(catalog_url: str, register: Callable,
                                                               happen: Callable, https_receiver: Callable) -> None:
    receiver, _ = https_receiver("localhost")
    register(receiver.url)
    happen("v_" + "f" * 32)
    report = deliver_due(catalog_url, FAST, budget_s=30)
    assert (report.delivered, report.retrying) == (0, 1)
    assert receiver.received == []
    [(delivery, [attempt])] = deliveries(catalog_url)
    assert delivery.status == "pending" and attempt.status_code is None
    assert "CERTIFICATE_VERIFY_FAILED" in attempt.error, attempt.error
