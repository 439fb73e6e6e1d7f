"""The positive narrations of a clip for MIL-NCE: its own and those of the same lecture spoken near it.

HecVL pairs a clip with ONE narration (InfoNCE). Narration in a lecture is loosely aligned with what
is shown: the sentence before or after may describe the drawn clip better than its own. MIL-NCE
(Miech et al., CVPR 2020) treats the narrations near a clip as a bag of candidate positives, any of
which may match (`hecvl.models.losses.mil_nce`).

Rule (`PositiveRule`): the positives of a clip sample spanning [a, b] seconds are its own narration,
then every other narration of the same lecture whose (narration_start - context_s,
narration_end + context_s) overlaps (a, b), nearest first, at most `max_texts` in all. Nearest =
smallest gap between the narration and the span (0 when they overlap), then the closest centre, then
the earlier start, then the pair id: a total order, so the bag is deterministic. Repeated texts count
once (a bag is a set of sentences).

`NarrationNeighbours` indexes the FULL clip manifest (a dataset filtered to some pairs still sees the
narrations outside its filter): per lecture, the context-widened intervals sorted by start, and the
longest one. The candidates of [a, b] are then the intervals starting in [a - longest, b): two binary
searches, followed by the exact overlap test on those few, never a scan of the lecture.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from hecvl.config.train import TrainSettings


@dataclass(frozen=True)
class PositiveRule:
    """Which narrations are positives of a clip: within `context_s` of its span, `max_texts` at most."""

    context_s: float  # train.mil_nce.context_s (hecvl.config.train holds the default)
    max_texts: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.context_s) and self.context_s >= 0):
            raise ValueError(f"context_s must be a finite number >= 0, got {self.context_s!r}")
        if isinstance(self.max_texts, bool) or not isinstance(self.max_texts, int) or self.max_texts < 1:
            raise ValueError(f"max_texts must be >= 1 (an integer), got {self.max_texts!r}")


def positive_rule(train: TrainSettings) -> PositiveRule | None:
    """The MIL-NCE bag rule of the clip level, or None when `train.mil_nce.enabled` is false (InfoNCE)."""
    m = train.mil_nce
    return PositiveRule(m.context_s, m.max_texts) if m.enabled else None


@dataclass(frozen=True)
class _Lecture:
    lo: np.ndarray  # narration_start - context_s, sorted ascending
    hi: np.ndarray  # narration_end + context_s
    start: np.ndarray  # the narration itself (for the distance)
    end: np.ndarray
    texts: list[str]
    pair_ids: list[str]
    longest: float  # max(hi - lo)


class NarrationNeighbours:
    """The clip narrations of some lectures, indexed for `positives(...)` queries."""

    def __init__(
        self,
        lecture_ids: Iterable[str],
        pair_ids: Iterable[str],
        starts: Iterable[float],
        ends: Iterable[float],
        texts: Iterable[str],
        rule: PositiveRule,
    ) -> None:
        self.rule = rule
        groups: dict[str, list[tuple[float, float, str, str]]] = {}
        for lec, pid, s, e, t in zip(lecture_ids, pair_ids, starts, ends, texts, strict=True):
            groups.setdefault(lec, []).append((float(s), float(e), pid, t))
        c = float(rule.context_s)
        self._lectures: dict[str, _Lecture] = {}
        for lec, items in groups.items():
            items.sort(key=lambda x: (x[0], x[1], x[2]))
            start = np.array([x[0] for x in items], dtype=np.float64)
            end = np.array([x[1] for x in items], dtype=np.float64)
            lo, hi = start - c, end + c
            self._lectures[lec] = _Lecture(
                lo, hi, start, end, [x[3] for x in items], [x[2] for x in items], float(np.max(hi - lo))
            )

    @classmethod
    def from_table(
        cls, table: pa.Table, rule: PositiveRule, lectures: Collection[str] | None = None
    ) -> NarrationNeighbours:
        """From a clip manifest (`read_manifest(dir, "clip")`), optionally only some lectures' rows
        (neighbours never cross lectures, so the others are not needed)."""
        cols = table.select(["lecture_id", "pair_id", "narration_start", "narration_end", "text"]).to_pydict()
        keep = range(len(cols["pair_id"]))
        if lectures is not None:
            wanted = set(lectures)
            keep = [i for i, lec in enumerate(cols["lecture_id"]) if lec in wanted]
        pick = {name: [values[i] for i in keep] for name, values in cols.items()}
        return cls(pick["lecture_id"], pick["pair_id"], pick["narration_start"], pick["narration_end"],
                   pick["text"], rule)

    def positives(self, lecture_id: str, pair_id: str, text: str, start: float, end: float) -> list[str]:
        """The bag of the clip of pair `pair_id` (own `text`) drawn over [start, end] seconds."""
        bag = [text]
        lec = self._lectures.get(lecture_id)
        if lec is None or self.rule.max_texts == 1:
            return bag
        a, b = float(start), float(end)
        # hi <= lo + longest: an interval starting before a - longest cannot reach a
        first = int(np.searchsorted(lec.lo, a - lec.longest - 1e-9, side="left"))
        last = int(np.searchsorted(lec.lo, b, side="left"))  # lo < b
        centre = 0.5 * (a + b)
        near = []
        for i in range(first, last):
            if lec.hi[i] > a and lec.pair_ids[i] != pair_id:
                gap = max(0.0, lec.start[i] - b, a - lec.end[i])
                mid = abs(0.5 * (lec.start[i] + lec.end[i]) - centre)
                near.append((gap, mid, lec.start[i], lec.pair_ids[i], lec.texts[i]))
        for *_, other in sorted(near):
            if len(bag) >= self.rule.max_texts:
                break
            if other not in bag:
                bag.append(other)
        return bag

    def texts(self) -> list[str]:
        """Every indexed narration text, in index order (e.g. to fill a text-feature cache up front)."""
        return [t for lec in self._lectures.values() for t in lec.texts]

    def __len__(self) -> int:
        return sum(len(lec.texts) for lec in self._lectures.values())
