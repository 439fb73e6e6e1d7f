"""Video level: one pair per lecture, the whole video <-> the lecture's abstract.

The pair lists its phase pairs (the children whose mean text embedding the abstract is aligned with).
A lecture without an abstract has no video pair (`no_abstract`) unless derivation is on, in which case
the abstract is summarised from all its narrations and the pair is marked `derived`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hecvl.config.pairing import PairingRules
from hecvl.pairing.phases import Summarise
from hecvl.pairing.sampling import clamp_times, segment_times
from hecvl.pairing.stats import Tally
from hecvl.pairing.text import apply_text_limits, clean_text, word_count


def video_pair_id(lecture_id: str) -> str:
    return f"{lecture_id}:v"


def video_pair(
    lecture_id: str,
    video: str,
    abstract: str,
    duration_s: float,
    last_frame_s: float,
    video_fps: float,
    procedure: str,
    clips: Sequence[dict[str, Any]],
    phases: Sequence[dict[str, Any]],
    rules: PairingRules,
    tally: Tally,
    summarise: Summarise | None = None,
) -> dict[str, Any] | None:
    """The video pair of one lecture, or None (the reason counted in `tally`)."""
    cfg = rules.video
    tally.seen("video")
    if duration_s < cfg.min_s:
        tally.drop("video", "short_video")
        return None
    if len(phases) < cfg.min_children:
        tally.drop("video", "too_few_children")
        return None
    source, derived = clean_text(abstract), False
    if not source:
        if summarise is None or not clips:
            tally.drop("video", "no_abstract")
            return None
        source, derived = summarise([c["text"] for c in clips], rules.derive.video_sentences), True
    text, reason, truncated = apply_text_limits(source, cfg.min_words, cfg.max_chars, rules.long_text)
    if text is None:
        tally.drop("video", reason or "empty_text")
        return None
    notes = [*(["truncated"] if truncated else []), *(["derived"] if derived else [])]
    tally.adjust("video", notes)
    times = clamp_times(segment_times(0.0, duration_s, cfg.frames), last_frame_s)
    return {
        "pair_id": video_pair_id(lecture_id),
        "lecture_id": lecture_id,
        "video": video,
        "start": 0.0,
        "end": round(duration_s, 3),
        "video_fps": float(video_fps),
        "procedure": procedure,
        "text": text,
        "n_words": word_count(text),
        "n_chars": len(text),
        "sampling": "segments",
        "frames": cfg.frames,
        "frame_times": times.tolist(),
        "phase_ids": [p["pair_id"] for p in phases],
        "derived": derived,
        "notes": notes,
    }
