"""Which webhook URLs Heimdex may call: `http(s)` only, and public addresses only unless a setting allows more.

A webhook URL is chosen by a client, so a request to it must not reach what only Heimdex can reach
(the cloud's metadata service, the database, an admin port on the local network). The check is
made twice: on the URL when the endpoint is registered, and on every address its host resolves
to when a delivery is made, and the connection then goes to the address checked (a name that
resolves elsewhere the second time cannot slip through).

An address is judged where the network delivers it: an IPv6 address that carries an IPv4 one
(`64:ff9b::7f00:1` is 127.0.0.1 through NAT64) by that IPv4 address, and a host the resolver reads
as a number (`0x7f000001`, `127.1`, `0`) by the address it reads.
"""

import ipaddress
import re
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")
# Names that mean this machine without any lookup (RFC 6761).
_LOCAL_NAMES = ("localhost", "localhost.localdomain")
# What a host that is no address (in any form the resolver reads as one) may be made of: letters, digits,
# hyphens and dots. Anything else (`*`, `_`, `%`) names no host a resolver looks up, and the API's document
# refuses it.
_HOST_NAME = re.compile(r"[A-Za-z0-9.-]+")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
# IPv6 forms whose last 32 bits are an IPv4 address the packet is delivered to: translated (SIIT,
# RFC 7915), compatible (RFC 4291, deprecated; an automatic tunnel sends it to the IPv4 address),
# and NAT64's well-known prefix (RFC 6052), through which an IPv6-only network reaches every IPv4
# address (DNS64 answers such addresses for a name that has only IPv4 ones, so a public one is allowed).
_LAST_32_BITS = (("IPv4-translated", ipaddress.IPv6Network("::ffff:0:0:0/96")),
                 ("IPv4-compatible", ipaddress.IPv6Network("::/96")),
                 ("NAT64", ipaddress.IPv6Network("64:ff9b::/96")))
# An ISATAP interface id (RFC 5214): 0000:5efe, its u and g bits free, then the IPv4 address.
_ISATAP_MASK, _ISATAP_ID = 0xFCFF_FFFF, 0x0000_5EFE
# IPv6 ranges that lead to no public receiver but that the `ipaddress` of some Python versions calls global.
_NOT_PUBLIC_V6 = tuple(ipaddress.IPv6Network(network) for network in (
    "fec0::/10",       # site-local (RFC 3879): deprecated, still routed inside a site that uses it
    "64:ff9b:1::/48",  # NAT64 for local use (RFC 8215): where the IPv4 address sits in it is the network's choice
    "5f00::/16",       # SRv6 segment ids (RFC 9602)
    "3fff::/20",       # documentation (RFC 9637)
))


class UnsafeUrlError(ValueError):
    """A webhook URL Heimdex will not call: its form, its scheme or where it leads."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses a packet to `address` is delivered to by the form of IPv6 address that carries
    them, each with the form's name: none for an address that carries none."""
    if address.is_unspecified or address.is_loopback:
        return []  # `::` and `::1` are themselves, not IPv4-compatible forms of 0.0.0.0 and 0.0.0.1
    if address in _IPV4_MAPPED:
        return [("IPv4-mapped", ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))]
    for form, network in _LAST_32_BITS:
        if address in network:
            return [(form, ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))]
    if address.sixtofour is not None:  # 2002::/16: the 6to4 router at the IPv4 address
        return [("6to4", address.sixtofour)]
    if address.teredo is not None:  # 2001::/32: the relay reaches the client through the server
        server, client = address.teredo
        return [("Teredo server", server), ("Teredo client", client)]
    if (int(address) >> 32) & _ISATAP_MASK == _ISATAP_ID:
        return [("ISATAP", ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))]
    return []


def is_public(address: Address) -> bool:
    """Whether `address` is a public unicast address: not loopback, private, link-local, shared or reserved,
    nor an IPv6 address that carries such an IPv4 address or names an interface (a zone id)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _IPV4_MAPPED:
            # The socket itself connects to the IPv4 address: ::ffff:8.8.8.8 is 8.8.8.8.
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
        if address.scope_id is not None or any(address in network for network in _NOT_PUBLIC_V6):
            return False
        if not all(is_public(ipv4) for _, ipv4 in embedded_ipv4(address)):
            return False
    return address.is_global and not address.is_multicast


def _leads_to(address: Address) -> str:
    """`, which leads to 127.0.0.1 by NAT64` when `address` is refused for an IPv4 address it carries; else ''."""
    if isinstance(address, ipaddress.IPv6Address):
        for form, ipv4 in embedded_ipv4(address):
            if not is_public(ipv4):
                return f", which leads to {ipv4} by {form}"
    return ""


def numeric_address(host: str) -> Address | None:
    """The address the resolver reads `host` as without any lookup, or None for a name.

    The socket module hands the resolver the host's IDNA form (`１２７.０.０.１` is 127.0.0.1); IPv6 is read
    by `inet_pton` and IPv4 by the C library's own `inet_aton`, which takes one to four parts in decimal,
    octal or hex (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`, `0`). A trailing dot is read past:
    no top-level domain is all digits, so `127.0.0.1.` can be no name, and resolvers that read it
    as the address exist.
    """
    try:
        text = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None  # no resolver is handed it: it does not resolve
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)  # a zone id after `%` is kept, to be refused
        except ValueError:
            return None
    for candidate in (text, text[:-1]) if text.endswith(".") else (text,):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(candidate))
        except OSError:
            continue
    return None


def parse_url(url: str, allow_private: bool) -> SplitResult:
    """The parts of a webhook URL that may be registered; `UnsafeUrlError` says why one may not.

    Without `allow_private`, a host that is a non-public address (in any form the resolver reads
    as one), or `localhost`, is refused here; names are resolved and checked at each delivery (`resolve`).
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise UnsafeUrlError("the URL has a space or a control character")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed `[`, a host that is no host once NFKC-normalised
        raise UnsafeUrlError(f"the URL cannot be parsed: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeUrlError("only http and https URLs are called")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrlError("the URL may not carry credentials: the signature authenticates Heimdex")
    try:
        port = parts.port
    except ValueError:
        raise UnsafeUrlError("the URL's port is not a number from 0 to 65535") from None
    host = parts.hostname
    if not host or port == 0:
        raise UnsafeUrlError("the URL names no host, or port 0")
    if not allow_private:
        literal = numeric_address(host)
        if literal is not None and not is_public(literal):
            what = ("" if str(literal) == host else f" is {literal}") + _leads_to(literal)
            detail = f"{host}{what}, not a public address" if what else f"{host} is not a public address"
            raise UnsafeUrlError(f"{detail} (HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)")
        if host.rstrip(".").lower().endswith(_LOCAL_NAMES):
            raise UnsafeUrlError(f"{host} is not a public address (HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)")
    if numeric_address(host) is None and not _HOST_NAME.fullmatch(host):
        raise UnsafeUrlError(f"{host} is no host name or address")
    return parts


def _lookup(host: str, port: int, timeout_s: float) -> list[tuple]:
    """`getaddrinfo` given at most `timeout_s`: a name server that is slow to answer (the client's own,
    for a name of the client's domain) must not hold a delivery past its time limit."""
    found: Future[list[tuple]] = Future()

    def look_up() -> None:
        try:
            found.set_result(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the caller as is
            found.set_exception(exc)

    # A daemon thread, since a lookup cannot be cut short: one still waiting ends with the resolver's own timeout.
    threading.Thread(target=look_up, name="heimdex-webhook-lookup", daemon=True).start()
    try:
        return found.result(timeout=timeout_s)
    except FutureTimeoutError:
        raise UnsafeUrlError(f"{host} did not resolve within {timeout_s:g} s") from None


def resolve(host: str, port: int, allow_private: bool, timeout_s: float = 10.0) -> str:
    """The address to connect to for `host`: the first it resolves to, once every one of them is allowed."""
    try:
        infos = _lookup(host, port, timeout_s)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrlError(f"{host} does not resolve: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not allow_private and (refused := [a for a in addresses if not is_public(a)]):
        # One non-public address is enough to refuse: which one a client connects to is not ours to choose.
        raise UnsafeUrlError(f"{host} resolves to {refused[0]}{_leads_to(refused[0])}, not a public address "
                             "(HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)")
    return str(addresses[0])
