"""A watch on the TCP connections this process tries: the interpreter's audit hook sees each
`socket.connect` before the socket is asked to connect, records it and stops it with an error.

The sender must refuse some URLs before any connection, among them addresses (NAT64's, 6to4's) that this
machine routes out of its network interface, not to a loopback listener: the watch catches such a
connection without letting a packet leave, where a listener would see nothing either way."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class ConnectionTried(AssertionError):
    """A connection was tried while none may be."""


_tried: list[object] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "socket.connect" and _tried is not None:
        _tried.append(args[1])
        raise ConnectionTried(f"a connection to {args[1]} was tried")


# An audit hook cannot be removed: it is added once per process and watches only inside `no_connection`.
sys.addaudithook(_audit)


@contextmanager
def no_connection() -> Iterator[list[object]]:
    """Stop and record every connection tried inside; fail when there was one. Yields the addresses tried."""
    global _tried
    _tried = tried = []
    try:
        yield tried
    finally:
        _tried = None
    assert tried == [], f"connections tried: {tried}"
