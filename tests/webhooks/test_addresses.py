"""Which webhook URLs may be registered and called: http(s) only, no credentials, public addresses only
unless allowed."""

import ipaddress
import socket

import pytest

from heimdex_pipeline.webhooks.addresses import (UnsafeUrlError, embedded_ipv4, is_public, numeric_address, parse_url,
                                                 resolve)
from tests.webhooks.inward import INWARD_HOSTS


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "255.255.255.255", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::",
    # IPv6 addresses carrying a non-public IPv4 address, and scopes the old check took as public.
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b:1::808:808", "::127.0.0.1", "::a00:1",
    "::ffff:0:7f00:1", "2002:7f00:1::", "2002:a9fe:a9fe::1", "2001:0:7f00:1::f7f7:f7f7",
    "2001:0:808:808:8000:63bf:80ff:fffe", "2606:4700::5efe:7f00:1", "2606:4700::300:5efe:a00:1", "fec0::1",
    "ff0e::1", "fe80::1%lo", "2606:4700:4700::1111%lo", "5f00::1", "3fff::1",
])
def test_non_public_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     # DNS64's answer for a name with only IPv4 addresses, on an IPv6-only network
                                     "64:ff9b::808:808", "2606:4700::5efe:808:808"])
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(("address", "carried"), [
    ("::ffff:127.0.0.1", [("IPv4-mapped", "127.0.0.1")]),
    ("::ffff:0:a9fe:a9fe", [("IPv4-translated", "169.254.169.254")]),
    ("::10.0.0.1", [("IPv4-compatible", "10.0.0.1")]),
    ("64:ff9b::a9fe:a9fe", [("NAT64", "169.254.169.254")]),
    ("2002:a9fe:a9fe:1::1", [("6to4", "169.254.169.254")]),
    ("2001:0:a00:1:8000:63bf:80ff:fffe", [("Teredo server", "10.0.0.1"), ("Teredo client", "127.0.0.1")]),
    ("fe80::5efe:a00:1", [("ISATAP", "10.0.0.1")]),
    ("2606:4700::200:5efe:808:808", [("ISATAP", "8.8.8.8")]),
    ("::", []), ("::1", []), ("2606:4700:4700::1111", []), ("64:ff9b:1::a00:1", []), ("2606:4700::5eff:a00:1", []),
])
def test_the_ipv4_address_an_ipv6_one_carries(address: str, carried: list[tuple[str, str]]) -> None:
    assert embedded_ipv4(ipaddress.IPv6Address(address)) == [(form, ipaddress.IPv4Address(ipv4))
                                                              for form, ipv4 in carried]


@pytest.mark.parametrize("host", [host.strip("[]") for host in INWARD_HOSTS if "%" not in host] + [
    "8.8.8.8", "134744072", "0x8080808", "010.010.010.010", "8.8.2056", "８.８.８.８", "64:FF9B::8.8.8.8"])
def test_a_number_is_read_as_the_resolver_reads_it(host: str) -> None:
    """The resolver itself, told to read numbers only (no lookup), says which address each host is."""
    read = numeric_address(host)
    if host.endswith("."):  # glibc looks such a host up as a name; other resolvers read the number
        assert read == numeric_address(host[:-1]) and read is not None
        return
    [(*_, (answered, *_))] = {info for info in socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM,
                                                                   flags=socket.AI_NUMERICHOST)}
    assert read == ipaddress.ip_address(answered)


@pytest.mark.parametrize("host", ["hooks.example.com", "08.0.0.1", "4294967296", "127.0.0.256", "1.2.3.4.5",
                                  "0x", "1.2.3.4..", "127.0.0.1x", "::1::1"])
def test_a_name_is_no_number(host: str) -> None:
    assert numeric_address(host) is None
    with pytest.raises((socket.gaierror, UnicodeError)):
        socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)


@pytest.mark.parametrize(("host", "leads_to"), INWARD_HOSTS.items())
def test_a_host_leading_inward_is_refused_in_every_form(host: str, leads_to: str) -> None:
    with pytest.raises(UnsafeUrlError, match="not a public address") as refused:
        parse_url(f"http://{host}:8080/hooks", allow_private=False)
    assert leads_to in str(refused.value)
    assert parse_url(f"http://{host}:8080/hooks", allow_private=True).port == 8080  # the setting lifts it


@pytest.mark.parametrize("host", [host.strip("[]") for host in INWARD_HOSTS
                                  if host.startswith("[") and "%" not in host])
def test_the_address_a_name_resolves_to_is_judged_where_it_leads(host: str) -> None:
    """At delivery the resolver's answer is judged: what an AAAA record (or DNS64) of a name could answer."""
    with pytest.raises(UnsafeUrlError, match=f"resolves to .*{INWARD_HOSTS[f'[{host}]']}.*not a public address"):
        resolve(host, 80, allow_private=False)


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
    ("http://[::1/x", "cannot be parsed"),
    ("http://：：１/x", "cannot be parsed"),
    ("https://bbxk14t.oxsqbhfm.info*", "no host name or address"),  # schemathesis's, against the document
    ("https://hooks_example.com/x", "no host name or address"),
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
