"""The scoring protocol of benchmarks.shots: a detector's boundaries against an edit's truth.

A transition is found when a boundary lies within TOLERANCE frames of it: of its frame for a hard
cut, of its span (first to last changed frame) for a gradual one. One boundary finds it; any other
boundary is false. A false boundary inside a transition's reach is a double; one elsewhere is put
down to a flash or a whip pan when it lies within TOLERANCE frames of one, to the dark when it
lies in a dark shot, and otherwise to nothing known ("other").

Precision is found transitions over boundaries, recall found over transitions. Per kind, the
precision counts the boundaries within that kind's transitions (doubles are false); boundaries
outside every transition count against the overall precision only.
"""

from collections import Counter
from dataclasses import dataclass, field

from benchmarks.shot_edits import GRADUAL, Truth

TOLERANCE = 2
CAUSES = ("double", "flash", "whip pan", "dark", "other")


@dataclass
class Score:
    """What a detector found, summed over any number of edits."""

    boundaries: int = 0
    total: Counter[str] = field(default_factory=Counter)  # transitions, by kind ("dark" too)
    found: Counter[str] = field(default_factory=Counter)
    doubles: Counter[str] = field(default_factory=Counter)
    exact_hard: int = 0  # hard cuts with a boundary on their very frame
    false: Counter[str] = field(default_factory=Counter)  # by cause

    def __add__(self, other: "Score") -> "Score":
        return Score(self.boundaries + other.boundaries, self.total + other.total, self.found + other.found,
                     self.doubles + other.doubles, self.exact_hard + other.exact_hard, self.false + other.false)

    def transitions(self, kinds: tuple[str, ...]) -> tuple[int, int]:
        """Found and total transitions of these kinds."""
        return sum(self.found[k] for k in kinds), sum(self.total[k] for k in kinds)

    def precision(self) -> float:
        return _ratio(sum(self.found[k] for k in ("hard", *GRADUAL)), self.boundaries)

    def recall(self) -> float:
        return _ratio(*self.transitions(("hard", *GRADUAL)))

    def f1(self) -> float:
        return _f1(self.precision(), self.recall())

    def kind_f1(self, kind: str) -> float:
        """F1 of one kind: its found transitions against its total, and against the boundaries within
        its transitions."""
        found = self.found[kind]
        return _f1(_ratio(found, found + self.doubles[kind]), _ratio(found, self.total[kind]))


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _near(frame: int, spans: list[tuple[int, int]]) -> bool:
    return any(first - TOLERANCE <= frame <= last + TOLERANCE for first, last in spans)


def score(boundaries: list[int], truth: Truth) -> Score:
    """Score one edit's boundaries (the first frame of each new shot, the edit's first frame aside)."""
    result = Score(boundaries=0)
    hits: dict[int, list[int]] = {i: [] for i in range(len(truth.transitions))}
    for frame in sorted(set(b for b in boundaries if 0 < b < truth.frames)):
        result.boundaries += 1
        reached = [i for i, t in enumerate(truth.transitions)
                   if t.first - TOLERANCE <= frame <= t.last + TOLERANCE]
        if reached:  # the edits keep transitions far enough apart that one reach holds a frame
            hits[reached[0]].append(frame)
        elif _near(frame, truth.flashes):
            result.false["flash"] += 1
        elif _near(frame, truth.pans):
            result.false["whip pan"] += 1
        elif any(first <= frame <= last for first, last in truth.dark):
            result.false["dark"] += 1
        else:
            result.false["other"] += 1
    for i, transition in enumerate(truth.transitions):
        kinds = [transition.kind, *(["dark"] if transition.dark else [])]
        result.total.update(kinds)
        if hits[i]:
            result.found.update(kinds)
            if len(hits[i]) > 1:
                result.doubles[transition.kind] += len(hits[i]) - 1
                result.false["double"] += len(hits[i]) - 1
            if transition.kind == "hard" and transition.first in hits[i]:
                result.exact_hard += 1
    return result
