"""Pauses between the tries of something that waits for another: short at first, then a slow poll."""

from collections.abc import Iterator


def doubling_pauses(first_s: float, longest_s: float) -> Iterator[float]:
    """Seconds to pause before each next try: `first_s`, doubling up to `longest_s`, then `longest_s` for good."""
    pause = first_s
    while True:
        yield pause
        pause = min(pause * 2, longest_s)
