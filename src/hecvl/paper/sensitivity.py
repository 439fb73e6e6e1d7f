"""The protocol-sensitivity table and figure: how far each protocol, and each of its choices, moves a model.

Input: the sweeps `hecvl evaluate --sensitivity` wrote (one sensitivity.csv per model and seed). Every
row is compared with the same model's study-protocol row on the same dataset; the differences are averaged
over the datasets per seed, then summarised over seeds (mean and population std). Metric averaging has no
run of its own: its row is the study protocol's frame-pooled figure minus its video-wise one.
Outputs (results/paper): protocol_sensitivity.csv (every evaluation), protocol_sensitivity.md (the
summary) and protocol_sensitivity.png.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from hecvl.errors import HecvlError
from hecvl.evaluation.sensitivity import ALL, COLUMNS
from hecvl.io import write_csv, write_text
from hecvl.paper.figures import _themed, palette, save_figure, std_interval
from hecvl.paper.published import dataset_title, load_published
from hecvl.paper.tables import markdown_table

BASE = "hecvl"
METRIC_CHOICE = "metric"  # frame-pooled instead of video-wise averaging, read from the same files
SUMMARY_COLUMNS = ["model", "row", "protocol", "choice", "n_seeds", "d_accuracy_mean", "d_accuracy_std",
                   "d_f1_mean", "d_f1_std", "accuracy_mean", "f1_mean", "accuracy_pooled", "f1_pooled"]


def read_sweeps(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Every sweep's rows, checked for their columns and a study-protocol row per (model, seed, dataset)."""
    parts = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise HecvlError("protocol sweep not found (did `hecvl evaluate --sensitivity` run?)", path)
        df = pd.read_csv(path, dtype={"protocol_hash": str, "split": str})
        lacking = [c for c in COLUMNS if c not in df.columns]
        if lacking:
            raise HecvlError(f"protocol sweep lacks column(s) {', '.join(lacking)}", path)
        parts.append(df[COLUMNS])
    if not parts:
        raise HecvlError("no protocol sweeps to summarise")
    rows = pd.concat(parts, ignore_index=True)
    base = rows[(rows["protocol"] == BASE) & (rows["choice"] == ALL)]
    keys = ["model", "seed", "dataset"]
    missing = rows[keys].drop_duplicates().merge(base[keys], how="left", indicator=True)
    if (missing["_merge"] != "both").any():
        first = missing[missing["_merge"] != "both"].iloc[0]
        raise HecvlError(f"no study-protocol ({BASE}) row for {dict(first[keys])}")
    return rows


def differences(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (model, seed, protocol, choice): the dataset-averaged difference to the study protocol, in points.

    The difference is in each protocol's own headline averaging (video-wise unless the protocol's source
    reports frame-pooled figures), so a full row is the gap a reader of that source's numbers would see.
    """
    keys = ["model", "seed", "dataset"]
    base = rows[(rows["protocol"] == BASE) & (rows["choice"] == ALL)].set_index(keys)
    out = rows.copy()
    pooled = out["metric"].eq("pooled") & out["choice"].eq(ALL)
    idx = pd.MultiIndex.from_frame(out[keys])
    for m in ("accuracy", "f1"):
        value = np.where(pooled, out[f"{m}_pooled"], out[f"{m}_mean"])
        out[f"d_{m}"] = value - base[f"{m}_mean"].reindex(idx).to_numpy()
    metric = base.reset_index()
    metric = metric.assign(protocol="frame-pooled", choice=METRIC_CHOICE,
                           d_accuracy=metric["accuracy_pooled"] - metric["accuracy_mean"],
                           d_f1=metric["f1_pooled"] - metric["f1_mean"])
    out = pd.concat([out, metric], ignore_index=True)
    value_cols = ["d_accuracy", "d_f1", "accuracy_mean", "f1_mean", "accuracy_pooled", "f1_pooled"]
    return out.groupby(["model", "seed", "protocol", "choice"], sort=False, as_index=False)[value_cols].mean()


def row_label(protocol: str, choice: str) -> str:
    if choice == METRIC_CHOICE:
        return "metric: frame-pooled"
    return f"{protocol} (all)" if choice == ALL else f"{protocol}: {choice}"


def summary(diffs: pd.DataFrame) -> pd.DataFrame:
    """Mean and population std over seeds of each (model, protocol, choice) difference."""
    rows = []
    for (model, protocol, choice), g in diffs.groupby(["model", "protocol", "choice"], sort=False):
        row = {"model": model, "row": row_label(protocol, choice), "protocol": protocol, "choice": choice,
               "n_seeds": len(g)}
        for m in ("accuracy", "f1"):
            row[f"d_{m}_mean"] = float(g[f"d_{m}"].mean())
            row[f"d_{m}_std"] = float(np.std(g[f"d_{m}"].to_numpy(), ddof=0))
        for c in ("accuracy_mean", "f1_mean", "accuracy_pooled", "f1_pooled"):
            row[c] = float(g[c].mean())
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).round(4)


def _published_spread() -> str:
    """One sentence: what other harnesses reported for the released HecVL weights on Cholec80."""
    published = load_published()
    hec = published.rows[(published.rows["method"] == "HecVL") & (published.rows["dataset"] == "cholec80")]
    others = published.other_reports
    others = others[(others["method"] == "HecVL (released weights)") & (others["dataset"] == "cholec80")]
    parts = [f"{r.accuracy:g} ({r.source})" for r in others.itertuples()]
    if not hec.empty:
        parts.insert(0, f"{float(hec['accuracy'].iloc[0]):g} ({published.short_source})")
    return ("Published accuracy of the same HecVL weights on Cholec80, by harness: " + "; ".join(parts) + "."
            if parts else "")


def markdown(table: pd.DataFrame, datasets: Sequence[str], data_desc: str) -> str:
    models = list(dict.fromkeys(table["model"]))
    rows = [r for r in dict.fromkeys(table["row"]) if r != row_label(BASE, ALL)]  # all zero: the reference
    header = ["protocol / choice", *[f"{m}: Δ accuracy / Δ F1" for m in models]]
    by = table.set_index(["row", "model"])
    body = []
    for r in rows:
        cells = [r]
        for m in models:
            if (r, m) not in by.index:
                cells.append("")
                continue
            x = by.loc[(r, m)]
            cells.append(f"{x['d_accuracy_mean']:+.1f} ± {x['d_accuracy_std']:.1f} / "
                         f"{x['d_f1_mean']:+.1f} ± {x['d_f1_std']:.1f}")
        body.append(cells)
    base = table[table["row"] == row_label(BASE, ALL)]
    levels = "; ".join(f"{x.model} {x.accuracy_mean:.1f} / {x.f1_mean:.1f}" for x in base.itertuples())
    seeds = int(table["n_seeds"].max()) if len(table) else 0
    lines = [
        "**Protocol sensitivity: how far each protocol choice moves zero-shot accuracy and F1**",
        "",
        markdown_table(header, body),
        "",
        f"- Points of accuracy / macro F1 (%) relative to the study protocol ({BASE}: {levels}), "
        f"averaged over {', '.join(dataset_title(d) for d in datasets)}, then mean ± std over {seeds} "
        f"seed(s). Data: {data_desc}.",
        "- `X (all)`: protocol X with every one of its choices, in its source's headline averaging "
        "(frame-pooled where the source reports it). `X: choice`: the study protocol with only that "
        "choice of X (video-wise). `metric: frame-pooled`: the study protocol's frame-pooled minus its "
        "video-wise figure.",
        "- Each protocol's settings and sources: `hecvl protocols NAME`; every evaluation's metrics file "
        "names its protocol and hash (protocol_sensitivity.csv).",
    ]
    spread = _published_spread()
    if spread:
        lines.append(f"- {spread}")
    return "\n".join(lines) + "\n"


@_themed
def sensitivity_figure(diffs: pd.DataFrame, out: str | Path, title: str) -> Path:
    """Two panels (Δ accuracy, Δ F1): one bar per protocol row and model, ± std over seeds."""
    d = diffs.assign(row=[row_label(p, c) for p, c in zip(diffs["protocol"], diffs["choice"], strict=True)])
    d = d[d["row"] != row_label(BASE, ALL)]
    order = list(dict.fromkeys(d["row"]))
    models = list(dict.fromkeys(d["model"]))
    colours = palette(models)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.42 * len(order) + 1.8), sharey=True)
    for ax, m, name in zip(axes, ("d_accuracy", "d_f1"), ("accuracy", "macro F1"), strict=True):
        sns.barplot(d, y="row", x=m, hue="model", order=order, hue_order=models, palette=colours,
                    errorbar=std_interval, orient="h", ax=ax, legend=ax is axes[1])
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_xlabel(f"Δ {name} vs the study protocol (points)")
        ax.set_ylabel("")
    axes[1].legend(title="model", loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)


def write_sensitivity(
    paths: Sequence[str | Path], out_dir: Path, datasets: Sequence[str], data_desc: str
) -> list[Path]:
    """The three outputs; `datasets` orders the ones the sweeps scored."""
    rows = read_sweeps(paths)
    scored = set(rows["dataset"])
    datasets = [d for d in datasets if d in scored] + sorted(scored - set(datasets))
    diffs = differences(rows)
    table = summary(diffs)
    out_dir = Path(out_dir)
    written = [out_dir / "protocol_sensitivity.csv", out_dir / "protocol_sensitivity.md",
               out_dir / "protocol_sensitivity.png"]
    write_csv(written[0], rows)
    write_text(written[1], markdown(table, datasets, data_desc))
    sensitivity_figure(diffs, written[2], "How far each protocol choice moves zero-shot scores")
    return written
