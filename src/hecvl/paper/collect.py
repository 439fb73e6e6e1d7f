"""Read the study's results files into tidy DataFrames: one row per run, per video, per phase, per step.

Why tidy frames: every table and figure is then a groupby of the same few frames, so a number in a
table and the bar in a figure cannot disagree. Every file is checked as it is read; a missing or
malformed one is a HecvlError naming it, never a silently shorter table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hecvl.errors import HecvlError
from hecvl.io import read_json
from hecvl.layout import PREDICTIONS
from hecvl.study import Entry

LEVELS = ("clip", "phase", "video")
HEADLINE = ("accuracy_mean", "accuracy_std", "f1_mean", "f1_std")
REQUIRED = (*HEADLINE, "per_video", "per_phase", "confusion_matrix", "classes")
PREDICTION_COLUMNS = ("video", "frame_sec", "phase_id", "gt_phase_id")


@dataclass(frozen=True)
class Result:
    """One evaluated run: the Entry that names it and the contents of its metrics.json."""

    entry: Entry
    path: Path
    metrics: dict[str, Any] = field(repr=False)


def resolve(root: str | Path, path: str | Path) -> Path:
    """A study path (relative to the project root) as a path on disk."""
    p = Path(path)
    return p if p.is_absolute() else Path(root) / p


def read_metrics(path: str | Path) -> dict[str, Any]:
    """A metrics.json written by `hecvl evaluate` / `hecvl score`, checked for the keys the paper uses."""
    path = Path(path)
    metrics = read_json(path, "metrics file", missing="metrics file not found (did its evaluation run?)")
    if not isinstance(metrics, dict):
        raise HecvlError("metrics JSON must be an object", path)
    lacking = [k for k in REQUIRED if k not in metrics]
    if lacking:
        raise HecvlError(f"metrics JSON lacks {', '.join(lacking)}", path)
    for key in HEADLINE:
        value = metrics[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise HecvlError(f"metrics JSON: {key} must be a finite number, got {value!r}", path)
    if not isinstance(metrics["per_video"], dict) or not metrics["per_video"]:
        raise HecvlError("metrics JSON: per_video must be a non-empty object", path)
    k = len(metrics["classes"])
    cm = np.asarray(metrics["confusion_matrix"])
    if cm.shape != (k, k):
        raise HecvlError(f"metrics JSON: confusion_matrix is {cm.shape}, expected {k} x {k} classes", path)
    return metrics


def load_results(entries: Iterable[Entry], root: str | Path = ".") -> list[Result]:
    """Read the metrics of every entry (each distinct file once), in the entries' order."""
    cache: dict[Path, dict[str, Any]] = {}
    out = []
    for e in entries:
        path = resolve(root, e.path)
        if path not in cache:
            cache[path] = read_metrics(path)
        out.append(Result(e, path, cache[path]))
    return out


def _entry_columns(e: Entry) -> dict[str, Any]:
    return {
        "label": e.label,
        "variant": e.variant,
        "seed": e.seed,
        "dataset": e.dataset,
        "space": e.space,
        "prompts": e.prompts,
    }


def protocol_of(metrics: Mapping[str, Any]) -> str:
    """`hecvl v1 (fc6be5d1625f)`: the protocol a metrics file was scored under (`unrecorded` before
    protocols were recorded)."""
    if "protocol_hash" not in metrics:
        return "unrecorded"
    return f"{metrics['protocol']} v{metrics['protocol_version']} ({metrics['protocol_hash']})"


def runs_frame(results: Sequence[Result]) -> pd.DataFrame:
    """One row per run: the video-wise means (and the std over videos) of accuracy and F1, in %, and the
    protocol they were scored under."""
    rows = [
        {
            **_entry_columns(r.entry),
            "protocol": protocol_of(r.metrics),
            **{k: float(r.metrics[k]) for k in HEADLINE},
            "num_videos": len(r.metrics["per_video"]),
            "path": str(r.entry.path),
        }
        for r in results
    ]
    cols = ["label", "variant", "seed", "dataset", "space", "prompts", "protocol", *HEADLINE, "num_videos",
            "path"]
    return pd.DataFrame(rows, columns=cols)


def per_video_frame(results: Sequence[Result]) -> pd.DataFrame:
    """One row per (run, test video): accuracy and macro F1 in %, and the frame count."""
    rows = []
    for r in results:
        for video, v in sorted(r.metrics["per_video"].items()):
            rows.append(
                {
                    **_entry_columns(r.entry),
                    "video": str(video),
                    "accuracy": _num(v.get("accuracy")),
                    "f1": _num(v.get("f1")),
                    "frames": int(v.get("frames", 0)),
                }
            )
    return pd.DataFrame(rows)


def per_phase_frame(results: Sequence[Result]) -> pd.DataFrame:
    """One row per (run, phase): pooled and video-mean precision, recall, F1, Jaccard, % (NaN: undefined)."""
    rows = []
    for r in results:
        for pid, p in sorted(r.metrics["per_phase"].items(), key=lambda kv: int(kv[0])):
            row = {
                **_entry_columns(r.entry),
                "phase_id": int(pid),
                "phase": str(p.get("name", pid)),
                "support": int(p.get("support", 0)),
            }
            for flavour in ("pooled", "video_mean"):
                for m in ("precision", "recall", "f1", "jaccard"):
                    key = m if flavour == "pooled" else f"{m}_video_mean"
                    row[key] = _num((p.get(flavour) or {}).get(m))
            rows.append(row)
    return pd.DataFrame(rows)


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """An evaluation's predictions.parquet: video, frame_sec, phase_id (predicted), gt_phase_id (nullable)."""
    path = Path(path)
    if not path.is_file():
        raise HecvlError("predictions file not found", path)
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise HecvlError(f"not a readable Parquet file: {exc}", path) from None
    lacking = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if lacking:
        raise HecvlError(f"predictions lack column(s) {', '.join(lacking)}", path)
    df = df[list(PREDICTION_COLUMNS)].copy()
    df["video"] = df["video"].astype(str)
    return df.sort_values(["video", "frame_sec"], kind="stable").reset_index(drop=True)


def predictions_path(metrics_path: str | Path) -> Path:
    """EVAL writes predictions.parquet beside metrics.json."""
    return Path(metrics_path).with_name(PREDICTIONS)


def read_losses(path: str | Path) -> pd.DataFrame:
    """losses.csv of a pretraining run as long rows (step, level, loss): the `<level>/total` columns.

    A level appears only at the steps that trained it (fine-to-coarse alternates levels).
    """
    path = Path(path)
    if not path.is_file():
        raise HecvlError("training losses not found (did the pretraining run finish?)", path)
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise HecvlError(f"not a readable CSV: {exc}", path) from None
    levels = [lvl for lvl in LEVELS if f"{lvl}/total" in df.columns]
    if "step" not in df.columns or not levels:
        raise HecvlError("losses CSV needs a step column and at least one <level>/total column", path)
    totals = [f"{lvl}/total" for lvl in levels]
    long = df[["step", *totals]].melt(
        id_vars=["step"], value_vars=totals, var_name="level", value_name="loss"
    )
    long["level"] = long["level"].str.removesuffix("/total")
    long = long.dropna(subset=["loss"])
    return long.sort_values(["level", "step"], kind="stable").reset_index(drop=True)


def losses_frame(runs: Mapping[tuple[str, int], str | Path]) -> pd.DataFrame:
    """Long losses of several runs: {(method, seed): losses.csv} -> method, seed, step, level, loss."""
    parts = []
    for (method, seed), path in runs.items():
        part = read_losses(path)
        part.insert(0, "seed", int(seed))
        part.insert(0, "method", method)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["method", "seed", "step", "level", "loss"])
    return pd.concat(parts, ignore_index=True)


def parse_rows(args: Sequence[str]) -> list[tuple[str, str]]:
    """`LABEL=PATH` arguments (how Snakemake tells a table command which file is which row)."""
    rows = []
    for arg in args:
        label, sep, path = arg.partition("=")
        if not sep or not label or not path:
            raise HecvlError(f"expected LABEL=PATH, got {arg!r}")
        rows.append((label, path))
    return rows


def match_entries(rows: Sequence[tuple[str, str]], entries: Sequence[Entry], what: str) -> list[Entry]:
    """The study's Entry of every (label, path) row: it supplies the seed and dataset of the file.

    A row the study does not define means params.yaml and the command disagree: an error, not a guess.
    """
    by_key = {(e.label, str(Path(e.path))): e for e in entries}
    out = []
    for label, path in rows:
        entry = by_key.get((label, str(Path(path))))
        if entry is None:
            raise HecvlError(f"{label}={path} is not a row of {what} in params.yaml", path)
        out.append(entry)
    return out
