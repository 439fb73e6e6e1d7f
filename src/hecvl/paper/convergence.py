"""Has the pretraining budget converged? `results/paper/convergence.csv` and the plateau criterion.

Every pretraining run scores zero-shot on the targets' validation split as it trains
(`hecvl.evaluation.validation`, the run's `validation.csv`). Gathered here into one table
(variant, seed, step, dataset, split, space, prompts, accuracy, f1), and judged by the criterion the
study fixes before it runs: a method has plateaued when its validation accuracy in its headline space,
averaged over the datasets and seeds, moves by at most `PLATEAU_POINTS` between the start of the last
quarter of training and its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from hecvl.errors import HecvlError
from hecvl.evaluation.validation import COLUMNS

PLATEAU_POINTS = 2.0  # largest move of mean validation accuracy over the last quarter (issue 13)
LAST_PART = 0.25  # the last quarter of the optimizer steps
CONVERGENCE_COLUMNS = ["variant", "seed", *COLUMNS]


def read_validation(path: str | Path) -> pd.DataFrame:
    """A run's validation.csv, checked (empty when the run validated nothing)."""
    path = Path(path)
    if not path.is_file():
        raise HecvlError("validation scores not found (did the pretraining run finish?)", path)
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise HecvlError(f"not a readable CSV: {exc}", path) from None
    lacking = [c for c in COLUMNS if c not in df.columns]
    if lacking:
        raise HecvlError(f"validation scores lack column(s) {', '.join(lacking)}", path)
    return df[COLUMNS]


def convergence_frame(runs: Mapping[tuple[str, int], str | Path]) -> pd.DataFrame:
    """{(variant, seed): validation.csv} -> the long convergence table, in the order given."""
    parts = []
    for (variant, seed), path in runs.items():
        part = read_validation(path)
        part.insert(0, "seed", int(seed))
        part.insert(0, "variant", variant)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=CONVERGENCE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[CONVERGENCE_COLUMNS]


def headline_curves(conv: pd.DataFrame, headline: Mapping[str, tuple[str, str]]) -> pd.DataFrame:
    """Per (method, seed, step): validation accuracy / F1 in the method's headline (space, prompts),
    averaged over the datasets. `headline`: {label: (variant, space)}; rows: method, seed, step, ..."""
    parts = []
    for label, (variant, space) in headline.items():
        d = conv[(conv["variant"] == variant) & (conv["space"] == space)]
        if d.empty:
            continue
        n = d["dataset"].nunique()
        mean = d.groupby(["seed", "step"])[["accuracy", "f1"]].mean()
        complete = d.groupby(["seed", "step"])["dataset"].nunique() == n
        part = mean[complete].reset_index()
        part.insert(0, "method", label)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["method", "seed", "step", "accuracy", "f1"])
    return pd.concat(parts, ignore_index=True)


def plateau(curves: pd.DataFrame, steps: Mapping[str, int]) -> pd.DataFrame:
    """The plateau criterion per method: mean accuracy (over datasets and seeds) at the first validation
    step of the last quarter and at the last step, the change, the range over the last quarter.

    `steps`: {method: its optimizer steps}. Rows: method, from_step, to_step, from_acc, to_acc, change,
    range, plateaued."""
    rows = []
    for method, d in curves.groupby("method", sort=False):
        mean = d.groupby("step")["accuracy"].mean().sort_index()
        last = steps[method]
        window = mean[mean.index >= (1 - LAST_PART) * last]
        if window.empty or window.index[-1] != mean.index[-1]:
            continue
        change = float(window.iloc[-1] - window.iloc[0])
        rows.append({
            "method": method, "from_step": int(window.index[0]), "to_step": int(window.index[-1]),
            "from_acc": round(float(window.iloc[0]), 2), "to_acc": round(float(window.iloc[-1]), 2),
            "change": round(change, 2), "range": round(float(window.max() - window.min()), 2),
            "plateaued": abs(change) <= PLATEAU_POINTS,
        })
    return pd.DataFrame(rows, columns=["method", "from_step", "to_step", "from_acc", "to_acc", "change",
                                       "range", "plateaued"])
