"""Which webhook URLs may be registered and called: http(s) only, no credentials, public addresses only
unless allowed."""

import ipaddress

import pytest

from heimdex_pipeline.webhooks.addresses import UnsafeUrlError, is_public, parse_url, resolve


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "255.255.255.255", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::",
])
def test_non_public_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://hooks.example.com/x", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://hooks.example.com/", "only http and https"),
    ("hooks.example.com/x", "only http and https"),
    ("https://user:pw@hooks.example.com/x", "credentials"),
    ("https://hooks.example.com:99999/x", "port"),
    ("https://hooks.example.com:0/x", "port 0"),
    ("https:///x", "no host"),
    ("https://hooks.example.com/a b", "space"),
    ("https://hooks.example.com/\r\nX-Injected: 1", "control character"),
    ("http://127.0.0.1:8080/x", "not a public address"),
    ("http://[::1]/x", "not a public address"),
    ("http://169.254.169.254/latest/meta-data/", "not a public address"),
    ("http://10.0.0.5/x", "not a public address"),
    ("http://localhost:8080/x", "not a public address"),
    ("http://api.localhost/x", "not a public address"),
    ("https://hooks.example.com/" + "x" * 2048, "longer than"),
])
def test_refused_urls(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrlError, match=reason):
        parse_url(url, allow_private=False)


def test_private_addresses_are_allowed_by_the_setting() -> None:
    assert parse_url("http://127.0.0.1:8080/x", allow_private=True).port == 8080
    assert resolve("localhost", 80, allow_private=True) in ("127.0.0.1", "::1")
    with pytest.raises(UnsafeUrlError, match="only http"):
        parse_url("ftp://127.0.0.1/x", allow_private=True)


def test_a_name_is_checked_on_every_address_it_resolves_to() -> None:
    # `localhost` is refused by name at registration; a name that resolves to loopback is refused when called.
    with pytest.raises(UnsafeUrlError, match="resolves to .*not a public address"):
        resolve("localhost", 80, allow_private=False)
    with pytest.raises(UnsafeUrlError, match="does not resolve"):
        resolve("no-such-host.invalid", 443, allow_private=False)


def test_public_urls_are_accepted() -> None:
    parts = parse_url("https://hooks.example.com:8443/heimdex?team=a", allow_private=False)
    assert (parts.hostname, parts.port, parts.path, parts.query) == ("hooks.example.com", 8443, "/heimdex", "team=a")
    assert parse_url("http://8.8.8.8/x", allow_private=False).hostname == "8.8.8.8"
