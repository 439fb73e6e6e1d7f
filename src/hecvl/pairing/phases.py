"""Phase level: one pair per keystep, the whole keystep segment <-> its title or summary.

A phase pair lists the clip pairs whose narration (its midpoint) lies inside it: the children whose
mean text embedding the phase text is aligned with. Keysteps need not cover the video: gaps between
them are simply not paired. A keystep without a usable text is dropped, unless derivation is on, in which
case its text is summarised from its narrations and the pair is marked `derived`; a lecture without any
keystep then gets evenly spaced segments (`derived_span`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hecvl.config.pairing import PairingRules
from hecvl.pairing.sampling import clamp_times, segment_times
from hecvl.pairing.spans import clean_segments
from hecvl.pairing.stats import Tally
from hecvl.pairing.text import apply_text_limits, clean_text, word_count

Summarise = Callable[[list[str], int], str]


def phase_pair_id(lecture_id: str, row: int, derived_span: bool = False) -> str:
    """Stable id: the lecture and the keystep's row in keysteps.csv (`d` for derived segments)."""
    return f"{lecture_id}:{'d' if derived_span else 'k'}{row:03d}"


def phase_text(title: str, summary: str, rule: str) -> str:
    """The phase text from the keystep's title and summary, by the `phase.text` rule."""
    if rule == "title":
        return title
    if rule == "summary":
        return summary
    if rule == "summary_or_title":
        return summary or title
    if title and summary:
        return f"{title.rstrip('.')}. {summary}"
    return title or summary


def derived_segments(duration_s: float, window_s: float) -> pd.DataFrame:
    """Equal segments of about `window_s` seconds covering the video (for lectures without keysteps)."""
    count = max(1, round(duration_s / window_s))
    edges = np.round(np.linspace(0.0, duration_s, count + 1), 3)
    return pd.DataFrame({"start": edges[:-1], "end": edges[1:], "step": "", "text": ""})


def children_of(start: float, end: float, clips: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clip pairs whose narration midpoint lies in [start, end)."""
    return [c for c in clips if start <= 0.5 * (c["narration_start"] + c["narration_end"]) < end]


def phase_pairs(
    lecture_id: str,
    video: str,
    keysteps: pd.DataFrame,
    duration_s: float,
    last_frame_s: float,
    clips: Sequence[dict[str, Any]],
    rules: PairingRules,
    tally: Tally,
    summarise: Summarise | None = None,
) -> list[dict[str, Any]]:
    """The phase pairs of one lecture; `clips` are its clip pairs, `summarise` fills missing texts."""
    cfg = rules.phase
    derived_span = keysteps is None or len(keysteps) == 0
    if derived_span:
        if summarise is None:
            return []
        keysteps = derived_segments(duration_s, rules.derive.phase_window_s)
    tally.seen("phase", len(keysteps))
    segments = clean_segments(keysteps, duration_s, rules.transcript, tally, "phase", lecture_id, "keysteps")
    pairs = []
    for seg in segments:
        if seg.duration < cfg.min_s:
            tally.drop("phase", "short_segment")
            continue
        children = children_of(seg.start, seg.end, clips)
        if len(children) < cfg.min_children:
            tally.drop("phase", "too_few_children")
            continue
        title, summary = clean_text(seg.data.get("step")), clean_text(seg.data.get("text"))
        source = phase_text(title, summary, cfg.text)
        derived = False
        if not source and summarise is not None and children:
            source = summarise([c["text"] for c in children], rules.derive.phase_sentences)
            derived = True
        text, reason, truncated = apply_text_limits(source, cfg.min_words, cfg.max_chars, rules.long_text)
        if text is None:
            tally.drop("phase", reason or "empty_text")
            continue
        notes = [*seg.notes, *(["truncated"] if truncated else []), *(["derived"] if derived else [])]
        tally.adjust("phase", notes)
        times = clamp_times(segment_times(seg.start, seg.end, cfg.frames), last_frame_s)
        pairs.append(
            {
                "pair_id": phase_pair_id(lecture_id, seg.row, derived_span),
                "lecture_id": lecture_id,
                "video": video,
                "start": round(seg.start, 3),
                "end": round(seg.end, 3),
                "title": title,
                "summary": summary,
                "text": text,
                "n_words": word_count(text),
                "n_chars": len(text),
                "sampling": "segments",
                "frames": cfg.frames,
                "frame_times": times.tolist(),
                "clip_ids": [c["pair_id"] for c in children],
                "derived": derived,
                "derived_span": derived_span,
                "notes": notes,
            }
        )
    return pairs
