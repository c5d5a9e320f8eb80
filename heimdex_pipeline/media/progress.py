"""Progress of a long piece of media work: units done out of a total, reported now and then."""

import time
from collections.abc import Callable

# How often work reports at most: often enough for a progress bar, rare enough to cost nothing.
REPORT_INTERVAL_S = 1.0

Report = Callable[[int, int], None]


class Progress:
    """Counts units of work (frames, tiles) out of `total` and calls `report(done, total)` at most
    every `interval_s`, and once more at the end; `done` never goes back, and reaches the total
    only at `finish` (work past the last unit, such as waiting for a helper thread, is still work)."""

    def __init__(self, total: int, report: Report | None, interval_s: float = REPORT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(1, total)
        self.done = 0
        self._report, self._interval_s, self._clock = report, interval_s, clock
        self._next = clock()

    def update(self, done: int) -> None:
        """`done` units are done (less than before counts as before)."""
        self.done = max(self.done, min(done, self.total - 1))
        self.still_working()

    def still_working(self) -> None:
        """Report where the work is, if it is time to, though no unit was done since."""
        if self._report is not None and self._clock() >= self._next:
            self._next = self._clock() + self._interval_s
            self._report(self.done, self.total)

    def finish(self) -> None:
        """All is done: report the total."""
        self.done = self.total
        if self._report is not None:
            self._report(self.total, self.total)
