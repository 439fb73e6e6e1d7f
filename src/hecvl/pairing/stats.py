"""What the pairing stage kept, changed and dropped, and why: stats.json and stats.png.

A researcher reads these before spending GPU hours: how many pairs per level, how long, how wordy,
which rule dropped how many segments, which lectures were excluded and why. Every segment read is
accounted for: at each level, `input == pairs + sum(dropped)`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hecvl.io import atomic_path, write_json
from hecvl.layout import PAIR_STATS, PAIR_STATS_FIGURE

log = logging.getLogger(__name__)

LEVELS = ("clip", "phase", "video")


class Tally:
    """Counts gathered while pairing: inputs, drops by reason, adjustments, warnings, excluded lectures."""

    def __init__(self) -> None:
        self.inputs: Counter[str] = Counter()
        self.drops: dict[str, Counter[str]] = {level: Counter() for level in LEVELS}
        self.adjusted: dict[str, Counter[str]] = {level: Counter() for level in LEVELS}
        self.warnings: list[dict[str, str]] = []
        self.excluded: list[dict[str, str]] = []
        self.lectures: Counter[str] = Counter()

    def seen(self, level: str, n: int = 1) -> None:
        self.inputs[level] += n

    def drop(self, level: str, reason: str, n: int = 1) -> None:
        self.drops[level][reason] += n

    def adjust(self, level: str, notes: Sequence[str]) -> None:
        self.adjusted[level].update(notes)

    def warn(self, lecture: str, message: str) -> None:
        log.warning("lecture %s: %s", lecture, message)
        self.warnings.append({"lecture": lecture, "message": message})

    def exclude(self, lecture: str, reason: str) -> None:
        log.error("lecture %s excluded: %s", lecture, reason)
        self.excluded.append({"lecture": lecture, "reason": reason})


def _summary(values: Sequence[float]) -> dict[str, float]:
    if len(values) == 0:
        return {"count": 0}
    arr = np.asarray(values, dtype=float)
    return {
        "count": int(arr.size),
        "min": round(float(arr.min()), 3),
        "median": round(float(np.median(arr)), 3),
        "mean": round(float(arr.mean()), 3),
        "max": round(float(arr.max()), 3),
        "total": round(float(arr.sum()), 3),
    }


def build_stats(
    tally: Tally, tables: Mapping[str, Mapping[str, list]], rules: Mapping[str, Any], corpus: str
) -> dict[str, Any]:
    """The stats.json document from the tally and the three manifests (as column dicts)."""
    levels: dict[str, Any] = {}
    for level in LEVELS:
        cols = tables[level]
        n = len(cols["pair_id"])
        dur = [e - s for s, e in zip(cols["start"], cols["end"], strict=True)]
        entry: dict[str, Any] = {
            "input": tally.inputs[level],
            "pairs": n,
            "dropped": dict(sorted(tally.drops[level].items())),
            "adjusted": dict(sorted(tally.adjusted[level].items())),
            "duration_s": _summary(dur),
            "words": _summary(cols["n_words"]),
            "chars": _summary(cols["n_chars"]),
            "lectures": len(set(cols["lecture_id"])),
        }
        if level == "clip":
            entry["window_s"] = _summary(
                [e - s for s, e in zip(cols["window_start"], cols["window_end"], strict=True)]
            )
        else:
            children = cols["clip_ids"] if level == "phase" else cols["phase_ids"]
            entry["children"] = _summary([len(c) for c in children])
            entry["derived"] = int(sum(cols["derived"]))
        levels[level] = entry
    return {
        "corpus": corpus,
        "rules": rules,
        "lectures": {
            **{k: v for k, v in sorted(tally.lectures.items())},
            "excluded": sorted(tally.excluded, key=lambda d: d["lecture"]),
        },
        "levels": levels,
        "warnings": tally.warnings,
    }


def check_accounting(stats: Mapping[str, Any]) -> list[str]:
    """Levels where input != pairs + dropped (a bug in the pairing code, never in the data)."""
    bad = []
    for level, entry in stats["levels"].items():
        if entry["input"] != entry["pairs"] + sum(entry["dropped"].values()):
            bad.append(f"{level}: input {entry['input']} != {entry['pairs']} pairs + {entry['dropped']}")
    return bad


def write_stats(out_dir: Path, stats: Mapping[str, Any], tables: Mapping[str, Mapping[str, list]]) -> None:
    write_json(out_dir / PAIR_STATS, stats)
    write_figure(out_dir / PAIR_STATS_FIGURE, stats, tables)


def write_figure(path: Path, stats: Mapping[str, Any], tables: Mapping[str, Mapping[str, list]]) -> None:
    """Six panels: pairs per level, drops by reason, durations per level, words per level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    levels = stats["levels"]
    ax = axes[0, 0]
    bars = ax.bar(list(LEVELS), [levels[lv]["pairs"] for lv in LEVELS], color=["C0", "C1", "C2"])
    ax.bar_label(bars)
    ax.set_title("pairs per level")

    ax = axes[0, 1]
    drops = [(f"{lv}: {r}", n) for lv in LEVELS for r, n in levels[lv]["dropped"].items()]
    excluded = len(stats["lectures"]["excluded"])
    if excluded:
        drops.append(("lectures excluded", excluded))
    if drops:
        ax.bar_label(ax.barh([d[0] for d in drops], [d[1] for d in drops], color="C3"))
        ax.invert_yaxis()
    else:
        ax.text(0.5, 0.5, "nothing dropped", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("dropped, by reason")

    ax = axes[0, 2]
    clip = tables["clip"]
    windows = [e - s for s, e in zip(clip["window_start"], clip["window_end"], strict=True)]
    _hist(ax, windows, "narration window (s)", "C0")

    for ax, level, color in ((axes[1, 0], "phase", "C1"), (axes[1, 1], "video", "C2")):
        cols = tables[level]
        _hist(
            ax,
            [e - s for s, e in zip(cols["start"], cols["end"], strict=True)],
            f"{level} duration (s)",
            color,
        )

    ax = axes[1, 2]
    data = [tables[lv]["n_words"] or [0] for lv in LEVELS]
    ax.boxplot(data, tick_labels=list(LEVELS))
    if any(max(d) > 0 for d in data):
        ax.set_yscale("log")
    ax.set_title("words per text")
    fig.suptitle(
        f"pairing of {stats['corpus']}: {stats['lectures'].get('used', 0)} lectures used, {excluded} excluded"
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)


def _hist(ax: Any, values: Sequence[float], title: str, color: str) -> None:
    if values:
        ax.hist(values, bins=30, color=color)
    else:
        ax.text(0.5, 0.5, "no pairs", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
