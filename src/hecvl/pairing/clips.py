"""Clip level: one pair per narration, a 3-5 s clip inside the narration's window <-> the ASR text.

The manifest keeps the narration's window (where a clip may be drawn in training) and the fixed clip
and frame times used for validation. Narrations shorter than a clip are widened symmetrically to the
minimum clip length (shifted to stay inside the video) with `short_window: extend`: the narration is
spoken over a moment and the frames around it show the same scene; `short_window: drop` drops them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from hecvl.config.pairing import PairingRules
from hecvl.pairing.sampling import clamp_times, clip_span, clip_times
from hecvl.pairing.spans import clean_segments
from hecvl.pairing.stats import Tally
from hecvl.pairing.text import apply_text_limits, word_count

_EPS = 1e-6


def clip_pair_id(lecture_id: str, row: int) -> str:
    """Stable id: the lecture and the narration's row in narration.csv."""
    return f"{lecture_id}:n{row:05d}"


def extend_window(start: float, end: float, length: float, duration_s: float) -> tuple[float, float]:
    """A window of `length` s centred on [start, end), shifted to lie inside [0, duration_s]."""
    centre = 0.5 * (start + end)
    lo = min(max(centre - 0.5 * length, 0.0), duration_s - length)
    return round(lo, 3), round(lo + length, 3)


def clip_pairs(
    lecture_id: str,
    video: str,
    narrations: pd.DataFrame,
    duration_s: float,
    last_frame_s: float,
    rules: PairingRules,
    tally: Tally,
) -> list[dict[str, Any]]:
    """The clip pairs of one lecture (records of the clip manifest), drops and changes counted in `tally`."""
    cfg = rules.clip
    tally.seen("clip", len(narrations))
    segments = clean_segments(
        narrations, duration_s, rules.transcript, tally, "clip", lecture_id, "narrations"
    )
    pairs = []
    for seg in segments:
        text, reason, truncated = apply_text_limits(
            seg.data.get("text"), cfg.min_words, cfg.max_chars, rules.long_text
        )
        if text is None:
            tally.drop("clip", reason or "empty_text")
            continue
        notes = [*seg.notes, *(["truncated"] if truncated else [])]
        window = (seg.start, seg.end)
        if seg.duration < cfg.min_s - _EPS:
            if cfg.short_window == "drop":
                tally.drop("clip", "short_window")
                continue
            if duration_s < cfg.min_s - _EPS:
                tally.drop("clip", "video_shorter_than_clip")
                continue
            window = extend_window(seg.start, seg.end, cfg.min_s, duration_s)
            notes.append("extended")
        start, end = clip_span(window[0], window[1], cfg.min_s, cfg.max_s)
        times = clamp_times(clip_times(start, end, cfg.fps, cfg.frames), last_frame_s)
        tally.adjust("clip", notes)
        pairs.append(
            {
                "pair_id": clip_pair_id(lecture_id, seg.row),
                "lecture_id": lecture_id,
                "video": video,
                "start": start,
                "end": end,
                "window_start": round(window[0], 3),
                "window_end": round(window[1], 3),
                "narration_start": round(seg.start, 3),
                "narration_end": round(seg.end, 3),
                "text": text,
                "n_words": word_count(text),
                "n_chars": len(text),
                "sampling": "clip_grid",
                "frames": cfg.frames,
                "fps": cfg.fps,
                "frame_times": times.tolist(),
                "notes": notes,
            }
        )
    return pairs
