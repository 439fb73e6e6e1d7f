"""The paper's figures (seaborn on matplotlib's Agg backend), each a function of tidy DataFrames.

Every error bar is ± the population std (ddof=0) across seeds, the same spread the tables print, so a
figure never shows a different uncertainty than the table beside it. PNGs are written atomically and
without a Software/date stamp, so identical inputs give identical bytes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from hecvl.errors import HecvlError
from hecvl.io import atomic_path
from hecvl.paper.published import dataset_title

DPI = 100
STYLE = {"style": "whitegrid", "context": "notebook"}


def std_interval(values: Sequence[float]) -> tuple[float, float]:
    """mean ± population std (ddof=0): seaborn's `errorbar` for every figure (its "sd" uses ddof=1)."""
    v = np.asarray(values, dtype=float)
    m, s = float(v.mean()), float(v.std(ddof=0))
    return m - s, m + s


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write `fig` as PNG atomically (no metadata stamp: deterministic bytes) and close it."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    finally:
        plt.close(fig)
    return Path(path)


def palette(methods: Sequence[str]) -> dict[str, Any]:
    """One colour per method, the same in every figure."""
    colours = sns.color_palette("colorblind", max(len(methods), 1))
    return dict(zip(methods, colours, strict=False))


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    lacking = [c for c in columns if c not in df.columns]
    if lacking:
        raise HecvlError(f"{what}: data lacks column(s) {', '.join(lacking)}")
    if df.empty:
        raise HecvlError(f"{what}: no data to plot")


def _themed(func: Callable[..., Path]) -> Callable[..., Path]:
    """Apply the figures' seaborn style locally (never changing the caller's global rcParams)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Path:
        with sns.axes_style(STYLE["style"]), sns.plotting_context(STYLE["context"]):
            return func(*args, **kwargs)

    return wrapper


@_themed
def accuracy_f1_figure(runs: pd.DataFrame, out: str | Path, title: str) -> Path:
    """Bars: accuracy and F1 per dataset and method (mean over seeds), ± std across seeds, seeds as dots.

    `runs`: one row per (method, seed, dataset) with `accuracy` and `f1` (video-wise means, %).
    """
    _require(runs, ["method", "seed", "dataset", "accuracy", "f1"], "accuracy/F1 figure")
    df = runs.assign(dataset=runs["dataset"].map(dataset_title))
    methods = list(dict.fromkeys(df["method"]))
    colours = palette(methods)
    n_ds = df["dataset"].nunique()
    fig, axes = plt.subplots(1, 2, figsize=(max(9.0, 2.2 * n_ds * 2 + 2), 5.0), layout="constrained")
    for ax, metric, name in zip(axes, ("accuracy", "f1"), ("accuracy (%)", "macro F1 (%)"), strict=True):
        sns.barplot(
            df,
            x="dataset",
            y=metric,
            hue="method",
            hue_order=methods,
            palette=colours,
            errorbar=std_interval,
            capsize=0.15,
            err_kws={"linewidth": 1.2},
            ax=ax,
            legend=False,
        )
        sns.stripplot(
            df,
            x="dataset",
            y=metric,
            hue="method",
            hue_order=methods,
            palette=colours,
            dodge=True,
            jitter=False,  # seaborn's jitter is random: bytes would differ between identical builds
            color="black",
            edgecolor="black",
            linewidth=0.6,
            size=3.5,
            alpha=0.7,
            legend=False,
            ax=ax,
        )
        ax.set_xlabel("target dataset")
        ax.set_ylabel(name)
        ax.set_title(name.split(" (")[0])
        ax.set_ylim(0, 100)
    handles = [Patch(color=colours[m], label=m) for m in methods]
    fig.legend(
        handles=handles,
        title="method (dots: single seeds)",
        loc="outside lower center",
        ncols=min(len(methods), 4),
        fontsize="small",
    )
    fig.suptitle(title)
    return save_figure(fig, out)


@_themed
def per_phase_f1_figure(
    per_phase: pd.DataFrame, datasets: Sequence[str], out: str | Path, title: str
) -> Path:
    """Heatmaps, one per dataset: methods x phases, per-phase F1 (pooled over frames, mean over seeds).

    `per_phase`: one row per (method, seed, dataset, phase) with `phase_id`, `phase`, `f1` (NaN: undefined).
    """
    _require(per_phase, ["method", "seed", "dataset", "phase_id", "phase", "f1"], "per-phase F1 figure")
    present = [d for d in datasets if d in set(per_phase["dataset"])]
    methods = list(dict.fromkeys(per_phase["method"]))
    widths = [per_phase.loc[per_phase["dataset"] == d, "phase_id"].nunique() for d in present]
    fig, axes = plt.subplots(
        len(present),
        1,
        squeeze=False,
        figsize=(max(7.0, 0.85 * max(widths) + 3), (0.45 * len(methods) + 2.4) * len(present)),
    )
    for ax, ds in zip(axes[:, 0], present, strict=True):
        d = per_phase[per_phase["dataset"] == ds]
        names = d.drop_duplicates("phase_id").set_index("phase_id")["phase"]
        grid = d.groupby(["method", "phase_id"], sort=False)["f1"].mean().unstack("phase_id")
        grid = grid.reindex(index=[m for m in methods if m in grid.index], columns=sorted(names.index))
        sns.heatmap(
            grid,
            ax=ax,
            vmin=0,
            vmax=100,
            cmap="viridis",
            annot=True,
            fmt=".0f",
            annot_kws={"size": 8},
            cbar_kws={"label": "F1 (%)"},
            linewidths=0.5,
            linecolor="white",
        )
        ax.set_xticks(
            np.arange(grid.shape[1]) + 0.5,
            labels=[str(names[c]) for c in grid.columns],
            rotation=40,
            ha="right",
            fontsize=8,
        )
        ax.set_xlabel("phase (blank: F1 undefined, phase neither present nor predicted)")
        ax.set_ylabel("method")
        ax.set_title(dataset_title(ds))
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)


def row_normalised(cm: np.ndarray) -> np.ndarray:
    """Fraction of each true phase's frames per predicted phase (rows of absent phases stay 0)."""
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)


def confusion_panel(
    dataset: str, metrics: Mapping[str, Any], source: str | Path | None = None
) -> tuple[str, np.ndarray, list[str]]:
    """(dataset, counts, class names) of one metrics.json, restricted to the classes its metrics score.

    The run's `ignored_classes` (MultiBypass140's other_intervention by default) lost their seconds from
    the ground truth and were never predicted: their row and column hold only zeros that no metric
    scores. A metrics file that records none (e.g. `hecvl score`) scored every class: all are kept.
    """
    classes = [str(c) for c in metrics["classes"]]
    cm = np.asarray(metrics["confusion_matrix"])
    ignored = [str(c) for c in (metrics.get("run") or {}).get("ignored_classes") or []]
    unknown = [c for c in ignored if c not in classes]
    if unknown:
        raise HecvlError(f"confusion figure: {dataset}: ignored class(es) {', '.join(unknown)} are not "
                         f"among its classes ({', '.join(classes)})", source)
    drop = [classes.index(c) for c in ignored]
    counted = [classes[i] for i in drop if cm[i, :].any() or cm[:, i].any()]
    if counted:
        raise HecvlError(f"confusion figure: {dataset}: ignored class(es) {', '.join(counted)} have frames "
                         "in the confusion matrix (the protocol neither labels nor predicts them)", source)
    keep = [i for i in range(len(classes)) if i not in drop]
    return dataset, cm[np.ix_(keep, keep)], [classes[i] for i in keep]


@_themed
def confusion_figure(
    panels: Sequence[tuple[str, np.ndarray, Sequence[str]]], out: str | Path, title: str
) -> Path:
    """Row-normalised confusion matrices, one panel per dataset: (dataset, counts K x K, class names),
    e.g. from `confusion_panel`. Constrained layout, not tight_layout: with square heatmaps and their
    colour bars tight_layout left the rotated class names and the x label below the canvas."""
    if not panels:
        raise HecvlError("confusion figure: no confusion matrix to plot")
    n = len(panels)
    cols = min(n, 2)
    nrows = int(np.ceil(n / cols))
    k_max = max(len(c) for _, _, c in panels)
    size = 2.8 + 0.55 * k_max
    fig, axes = plt.subplots(
        nrows, cols, squeeze=False, figsize=(cols * (size + 1.4), nrows * size), layout="constrained"
    )
    for ax, (ds, cm, classes) in zip(axes.flat, panels, strict=False):
        frac = row_normalised(cm)
        sns.heatmap(
            frac,
            ax=ax,
            vmin=0,
            vmax=1,
            cmap="Blues",
            square=True,
            annot=len(classes) <= 12,
            fmt=".2f",
            annot_kws={"size": 7},
            xticklabels=list(classes),
            yticklabels=list(classes),
            cbar_kws={"label": "fraction of the true phase's frames", "shrink": 0.8},
        )
        ax.set_xticklabels(ax.get_xticklabels(), rotation=45, ha="right", fontsize=7)
        ax.set_yticklabels(ax.get_yticklabels(), rotation=0, fontsize=7)
        ax.set_xlabel("predicted phase")
        ax.set_ylabel("true phase")
        ax.set_title(f"{dataset_title(ds)} ({int(np.asarray(cm).sum())} frames)")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return save_figure(fig, out)


# Unlabelled / absent seconds: a light grey that no phase colour uses (the palette holds no greys).
UNLABELLED = "lightgrey"
# Timelines layout, inches: strips, the gaps above (title) and below (time ticks) them, the margins.
_TL_WIDTH, _TL_LEFT, _TL_STRIPS, _TL_LEGEND_GAP = 12.0, 1.0, 8.2, 0.2
_TL_STRIP_H, _TL_ABOVE, _TL_BELOW = 0.5, 0.3, 0.45
_TL_TOP, _TL_BOTTOM, _TL_GROUP_GAP = 0.6, 0.25, 0.2
_TL_LEGEND_ROW = 0.165  # one legend entry at fontsize 7


def phase_colours(k: int) -> list[Any]:
    """One colour per phase id, never grey (grey means unlabelled): tab10's nine hues, then their light
    tab20 partners; beyond 18 phases, evenly spaced hues. Phase i has the same colour in every dataset."""
    tab10 = sns.color_palette("tab10", 10)
    tab20 = sns.color_palette("tab20", 20)
    grey = 7  # tab10's grey; tab20's greys are 14 and 15
    base = [c for i, c in enumerate(tab10) if i != grey] + [tab20[2 * i + 1] for i in range(10) if i != grey]
    return base[:k] if k <= len(base) else sns.color_palette("husl", k)


def timeline_arrays(pred: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, prediction) per second of one video as float arrays, NaN where unlabelled/absent."""
    t = int(pred["frame_sec"].max()) + 1
    gt = np.full(t, np.nan)
    pr = np.full(t, np.nan)
    secs = pred["frame_sec"].to_numpy(dtype=int)
    pr[secs] = pred["phase_id"].to_numpy(dtype=float)
    gt[secs] = pd.to_numeric(pred["gt_phase_id"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return gt, pr


@_themed
def timelines_figure(
    panels: Sequence[tuple[str, str, pd.DataFrame, Sequence[str]]], out: str | Path, title: str
) -> Path:
    """Phase strips over time, ground truth above prediction: one axis per (dataset, video, preds, classes).

    Consecutive panels of one dataset share a legend to their right. Grey marks seconds without a label
    (e.g. MultiBypass140 outside any phase); the title of each strip gives the video's accuracy over its
    labelled seconds. The layout is fixed in inches (no layout engine): a legend taller than its panels
    can never squeeze the strips away, and equal inputs give equal bytes.
    """
    if not panels:
        raise HecvlError("timelines figure: no predictions to plot")
    groups: list[list[tuple[str, str, pd.DataFrame, Sequence[str]]]] = []
    for panel in panels:  # runs of one dataset, in the given order
        if groups and groups[-1][0][0] == panel[0]:
            groups[-1].append(panel)
        else:
            groups.append([panel])
    arrays = [[timeline_arrays(pred) for _, _, pred, _ in g] for g in groups]
    greys = [any(np.isnan(gt).any() or np.isnan(pr).any() for gt, pr in arr) for arr in arrays]
    pitch = _TL_ABOVE + _TL_STRIP_H + _TL_BELOW
    heights = []  # per dataset: its panels, or its legend (phases, grey, title) where that is taller
    for g, grey in zip(groups, greys, strict=True):
        entries = len(g[0][3]) + int(grey) + 1
        heights.append(max(len(g) * pitch, entries * _TL_LEGEND_ROW + _TL_ABOVE))
    height = _TL_TOP + sum(heights) + _TL_GROUP_GAP * (len(groups) - 1) + _TL_BOTTOM
    fig = plt.figure(figsize=(_TL_WIDTH, height))
    fig.suptitle(title, y=1 - 0.2 / height)
    top = height - _TL_TOP  # inches from the bottom edge
    axes = []
    for g, arr, grey, block in zip(groups, arrays, greys, heights, strict=True):
        ds, classes = g[0][0], g[0][3]
        colours = phase_colours(len(classes))
        cmap = ListedColormap(colours).with_extremes(bad=UNLABELLED)
        for i, ((_, video, _, _), (gt, pr)) in enumerate(zip(g, arr, strict=True)):
            bottom = top - i * pitch - _TL_ABOVE - _TL_STRIP_H
            ax = fig.add_axes(
                (_TL_LEFT / _TL_WIDTH, bottom / height, _TL_STRIPS / _TL_WIDTH, _TL_STRIP_H / height)
            )
            ax.imshow(
                np.ma.masked_invalid(np.vstack([gt, pr])),
                aspect="auto",
                cmap=cmap,
                vmin=-0.5,
                vmax=len(colours) - 0.5,
                interpolation="nearest",
                extent=(0, len(gt), 1.5, -0.5),
            )
            ax.set_yticks([0, 1], labels=["ground truth", "prediction"], fontsize=8)
            ax.tick_params(axis="x", labelsize=8)
            ax.grid(False)
            labelled = ~np.isnan(gt)
            acc = 100.0 * float(np.mean(gt[labelled] == pr[labelled])) if labelled.any() else float("nan")
            ax.set_title(f"{dataset_title(ds)} · video {video} · accuracy {acc:.1f}%", fontsize=9, loc="left")
            axes.append(ax)
        handles = [Patch(color=colours[i], label=f"{i} {name}") for i, name in enumerate(classes)]
        if grey:
            handles.append(Patch(color=UNLABELLED, label="no label (not scored)"))
        fig.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=((_TL_LEFT + _TL_STRIPS + _TL_LEGEND_GAP) / _TL_WIDTH, (top - 0.05) / height),
            fontsize=7,
            title=f"{dataset_title(ds)} phases",
            title_fontsize=8,
            frameon=False,
            borderaxespad=0.0,
        )
        top -= block + _TL_GROUP_GAP
    axes[-1].set_xlabel("time (s)", fontsize=9)
    return save_figure(fig, out)


@_themed
def convergence_figure(
    validation: pd.DataFrame, losses: pd.DataFrame, last_from: float, out: str | Path, title: str
) -> Path:
    """Top: zero-shot validation accuracy against the optimizer step, one panel per dataset and one for
    their mean, each method in its headline space; bottom: the loss per level. Mean ± std over seeds;
    the last quarter, over which the plateau criterion is judged, is shaded (from step `last_from`).

    `validation`: rows (method, seed, step, dataset, accuracy), the dataset "average" included;
    `losses`: long rows (method, seed, step, level, loss)."""
    _require(validation, ["method", "seed", "step", "dataset", "accuracy"], "convergence (validation)")
    _require(losses, ["method", "seed", "step", "level", "loss"], "convergence (losses)")
    datasets = list(dict.fromkeys(validation["dataset"]))
    levels = [lvl for lvl in ("clip", "phase", "video") if lvl in set(losses["level"])]
    methods = list(dict.fromkeys([*validation["method"], *losses["method"]]))
    colours = palette(methods)
    width = 3.6 * max(len(datasets), len(levels))
    fig = plt.figure(figsize=(width, 7.6), layout="constrained")
    cols = math.lcm(len(datasets), len(levels))  # both rows fill the width, whatever their panel counts
    grid = fig.add_gridspec(2, cols)
    top = [fig.add_subplot(grid[0, i * cols // len(datasets):(i + 1) * cols // len(datasets)])
           for i in range(len(datasets))]
    bottom = [fig.add_subplot(grid[1, i * cols // len(levels):(i + 1) * cols // len(levels)])
              for i in range(len(levels))]
    for ax, dataset in zip(top, datasets, strict=True):
        d = validation[validation["dataset"] == dataset]
        ax.axvspan(last_from, d["step"].max(), color="0.92", zorder=0)
        sns.lineplot(d, x="step", y="accuracy", hue="method", palette=colours, errorbar=std_interval,
                     hue_order=[m for m in methods if m in set(d["method"])], marker="o", markersize=3,
                     linewidth=1.2, ax=ax)
        name = "mean over datasets" if dataset == "average" else dataset_title(dataset)
        ax.set_title(f"{name}: validation accuracy", fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("zero-shot accuracy (%)")
        ax.legend(fontsize="x-small")
    for ax, level in zip(bottom, levels, strict=True):
        d = losses[losses["level"] == level]
        sns.lineplot(d, x="step", y="loss", hue="method", palette=colours, errorbar=std_interval,
                     hue_order=[m for m in methods if m in set(d["method"])], linewidth=1.0, ax=ax)
        ax.set_title(f"{level} level loss", fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("contrastive loss (level total)")
        ax.legend(fontsize="x-small")
    fig.suptitle(title)
    return save_figure(fig, out)


@_themed
def noise_figure(
    df: pd.DataFrame, out: str | Path, title: str = "zero-shot accuracy vs narration relevance"
) -> Path:
    """Accuracy and F1 against the fraction of narrations that describe what is visible, per dataset.

    `df`: tidy rows relevance, method, seed, dataset, accuracy, f1 (%, video-wise means). Points are
    means over seeds, bars ± std across seeds (ddof=0): where the hierarchy helps, and where not.
    """
    _require(df, ["relevance", "method", "seed", "dataset", "accuracy", "f1"], "narration-noise figure")
    datasets = list(dict.fromkeys(df["dataset"]))
    methods = list(dict.fromkeys(df["method"]))
    colours = palette(methods)
    fig, axes = plt.subplots(
        2, len(datasets), squeeze=False, sharex=True, sharey="row", figsize=(3.8 * len(datasets) + 1, 7.0)
    )
    for j, ds in enumerate(datasets):
        d = df[df["dataset"] == ds]
        for i, (metric, name) in enumerate((("accuracy", "accuracy (%)"), ("f1", "macro F1 (%)"))):
            ax = axes[i, j]
            sns.lineplot(
                d,
                x="relevance",
                y=metric,
                hue="method",
                hue_order=methods,
                palette=colours,
                errorbar=std_interval,
                err_style="bars",
                err_kws={"capsize": 4},
                marker="o",
                ax=ax,
                legend=(i == 0 and j == 0),
            )
            ax.set_title(dataset_title(ds) if i == 0 else "")
            ax.set_xlabel("")
            ax.set_ylabel(name if j == 0 else "")
    fig.supxlabel("narration relevance: fraction of narrations describing the visible scene")
    fig.suptitle(f"{title} (mean ± std over seeds)")
    fig.tight_layout()
    return save_figure(fig, out)
