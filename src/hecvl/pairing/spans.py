"""Repair of time segments (narrations, keysteps) before pairing, by the documented transcript rules.

Real transcripts are messy: ASR segments arrive out of order, overlap, run past the end of a video that
was trimmed after transcription, or carry an end before their start. The rule, in this order:
1. a segment with a non-finite time or `end <= start` is dropped (`invalid_span`); a negative start
   is moved to 0;
2. a segment starting at or after the video's end is dropped (`beyond_end`); one ending after it is cut
   at the end (`beyond_end: clip`) or dropped (`beyond_end: drop`);
3. segments are sorted by (start, end, row in the file) and the lecture gets a warning if that
   changed their order;
4. overlaps (a start before the latest end so far): `overlap: clip` moves the start to that end, and a
   segment left empty (it lay inside an earlier one) is dropped (`overlap`); `overlap: keep` leaves it,
   with a warning.
Gaps between segments are left alone: a phase pair needs no neighbour, so keysteps that do not cover the
whole video are fine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hecvl.config.pairing import TranscriptRules
from hecvl.pairing.stats import Tally

_EPS = 1e-6


@dataclass
class Segment:
    """One repaired segment; `row` is its position in the source file (the basis of stable pair ids)."""

    row: int
    start: float
    end: float
    orig_start: float
    orig_end: float
    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def mid(self) -> float:
        return 0.5 * (self.start + self.end)


def clean_segments(
    table: pd.DataFrame,
    duration_s: float,
    rules: TranscriptRules,
    tally: Tally,
    level: str,
    lecture: str,
    what: str,
) -> list[Segment]:
    """Apply the transcript rules to `table` (columns start, end, ...) of one lecture; drops go to `tally`."""
    kept: list[Segment] = []
    for row, record in enumerate(table.to_dict("records")):
        start, end = _as_float(record.get("start")), _as_float(record.get("end"))
        data = {k: v for k, v in record.items() if k not in ("start", "end")}
        if not (math.isfinite(start) and math.isfinite(end)) or end <= max(start, 0.0):
            tally.drop(level, "invalid_span")
            continue
        seg = Segment(row, max(start, 0.0), end, start, end, data)
        if start < 0:
            seg.notes.append("clipped_start")
        if seg.start >= duration_s - _EPS:
            tally.drop(level, "beyond_end")
            continue
        if seg.end > duration_s + _EPS:
            if rules.beyond_end == "drop":
                tally.drop(level, "beyond_end")
                continue
            seg.end = duration_s
            seg.notes.append("clipped_end")
        kept.append(seg)

    ordered = sorted(kept, key=lambda s: (s.start, s.end, s.row))
    if [s.row for s in ordered] != [s.row for s in kept]:
        moved = sum(a.row != b.row for a, b in zip(ordered, kept, strict=True))
        tally.warn(lecture, f"{moved} {what} out of order: sorted by start time")

    out: list[Segment] = []
    latest_end = -math.inf
    overlaps = 0
    for seg in ordered:
        if seg.start < latest_end - _EPS:
            overlaps += 1
            if rules.overlap == "clip":
                if seg.end <= latest_end + _EPS:
                    tally.drop(level, "overlap")
                    continue
                seg.start = latest_end
                seg.notes.append("clipped_overlap")
            else:
                seg.notes.append("overlap_kept")
        latest_end = max(latest_end, seg.end)
        out.append(seg)
    if overlaps:
        action = "clipped to the previous end" if rules.overlap == "clip" else "kept as they are"
        tally.warn(lecture, f"{overlaps} overlapping {what}: {action}")
    return out


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
