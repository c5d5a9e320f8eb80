"""Which webhook URLs Heimdex may call: `http(s)` only, and public addresses only unless a setting allows more.

A webhook URL is chosen by a client, so a request to it must not reach what only Heimdex can reach
(the cloud's metadata service, the database, an admin port on the local network). The check is
made twice: on the URL when the endpoint is registered, and on every address its host resolves
to when a delivery is made, and the connection then goes to the address checked (a name that
resolves elsewhere the second time cannot slip through).
"""

import ipaddress
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")
# Names that mean this machine without any lookup (RFC 6761).
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


class UnsafeUrlError(ValueError):
    """A webhook URL Heimdex will not call: its form, its scheme or where it leads."""


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `address` is a public unicast address: not loopback, private, link-local, shared or reserved."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_global and not address.is_multicast


def parse_url(url: str, allow_private: bool) -> SplitResult:
    """The parts of a webhook URL that may be registered; `UnsafeUrlError` says why one may not.

    Without `allow_private`, a host written as a non-public address, or as `localhost`, is refused
    here; names are resolved and checked at each delivery (`resolve`).
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise UnsafeUrlError("the URL has a space or a control character")
    parts = urlsplit(url)
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
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if (literal is not None and not is_public(literal)) or host.rstrip(".").lower().endswith(_LOCAL_NAMES):
            raise UnsafeUrlError(f"{host} is not a public address (HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)")
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
        raise UnsafeUrlError(f"{host} resolves to {refused[0]}, not a public address "
                             "(HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES)")
    return str(addresses[0])
