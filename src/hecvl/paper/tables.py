"""The study's tables: mean ± std across seeds of the video-wise means, as CSV, Markdown and LaTeX.

What a cell means (written under every table, because the numbers move with it):
- each run (method, seed, dataset) gives the mean over test videos of per-video accuracy / macro F1;
- a cell is the mean of those over seeds ± their population std across seeds (ddof=0);
- with a single seed the std across seeds is 0 by construction, so the cell shows ± the std over that
  run's test videos instead, marked †: a single run still shows its spread;
- the `average` column averages the datasets per seed first, then takes mean ± std across seeds.
Published rows are copied from the paper (real datasets); ours are on the data params.yaml names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hecvl.errors import HecvlError
from hecvl.io import write_csv, write_text
from hecvl.paper.published import AVERAGE, PublishedTable, dataset_title

SUMMARY_COLUMNS = [
    "dataset",
    "n_seeds",
    "seeds",
    "accuracy_mean",
    "accuracy_std",
    "f1_mean",
    "f1_std",
    "accuracy_video_std",
    "f1_video_std",
]
ABLATION_COLUMNS = ["ablation", "label", "protocol", *SUMMARY_COLUMNS]
MAIN_COLUMNS = ["group", "method", "data", *SUMMARY_COLUMNS, "protocol", "source"]
PUBLISHED_PROTOCOL = "published (the paper's own)"
DECIMALS = 4
GROUPS = ("published", "released", "ours", "reference")  # row blocks of the main table, in order
DAGGER = "†"

CELL_NOTE = (
    "Cells: accuracy / F1 in %, each the mean over test videos (method.md §6). Ours: mean ± std "
    "across seeds (population std, ddof=0) of those video-wise means; the average column averages the "
    f"datasets per seed first. {DAGGER} one seed only: ± is the std over that run's test videos, "
    "not over seeds."
)


# --- aggregation ----------------------------------------------------------------------------------
def seed_summary(
    runs: pd.DataFrame, datasets: Sequence[str], keys: Sequence[str] = ("label",)
) -> pd.DataFrame:
    """Mean ± std across seeds per (keys, dataset), plus an `average` row per key where it is defined.

    `runs`: one row per (keys, seed, dataset) with accuracy_mean, accuracy_std, f1_mean, f1_std (the
    video-wise mean and std of one run). The average row uses the seeds that have every dataset.
    Row order: keys in order of appearance, datasets in the given order, average last.
    """
    keys = list(keys)
    dup = runs.duplicated([*keys, "seed", "dataset"])
    if dup.any():
        first = runs[dup].iloc[0]
        raise HecvlError(f"two results for {dict(first[[*keys, 'seed', 'dataset']])}")
    order = {ds: i for i, ds in enumerate([*datasets, AVERAGE])}
    unknown = set(runs["dataset"]) - set(datasets)
    if unknown:
        raise HecvlError(f"results for datasets outside the study: {sorted(unknown)}")
    rows = []
    for key_values, g in runs.groupby(keys, sort=False):
        key_values = key_values if isinstance(key_values, tuple) else (key_values,)
        head = dict(zip(keys, key_values, strict=True))
        for ds, d in sorted(g.groupby("dataset", sort=False), key=lambda kv: order[kv[0]]):
            rows.append({**head, **_summarise(ds, d)})
        if len(datasets) > 1:
            complete = g.groupby("seed").filter(lambda s: set(s["dataset"]) == set(datasets))
            if not complete.empty:
                avg = complete.groupby("seed", as_index=False)[["accuracy_mean", "f1_mean"]].mean()
                avg["accuracy_std"] = np.nan  # a std over videos of different datasets means nothing
                avg["f1_std"] = np.nan
                rows.append({**head, **_summarise(AVERAGE, avg)})
    out = pd.DataFrame(rows, columns=[*keys, *SUMMARY_COLUMNS])
    return _rounded(out)


def _summarise(dataset: str, d: pd.DataFrame) -> dict[str, object]:
    d = d.sort_values("seed")
    return {
        "dataset": dataset,
        "n_seeds": len(d),
        "seeds": " ".join(str(int(s)) for s in d["seed"]),
        "accuracy_mean": float(d["accuracy_mean"].mean()),
        "accuracy_std": float(np.std(d["accuracy_mean"].to_numpy(), ddof=0)),
        "f1_mean": float(d["f1_mean"].mean()),
        "f1_std": float(np.std(d["f1_mean"].to_numpy(), ddof=0)),
        # the spread over test videos, averaged over seeds (the one run's own std when single)
        "accuracy_video_std": float(d["accuracy_std"].mean()),
        "f1_video_std": float(d["f1_std"].mean()),
    }


def _rounded(df: pd.DataFrame) -> pd.DataFrame:
    num = df.select_dtypes("float").columns
    df[num] = df[num].round(DECIMALS)
    return df


def ablation_summary(name: str, runs: pd.DataFrame, datasets: Sequence[str]) -> pd.DataFrame:
    """The tidy table of one ablation (what `hecvl paper table` writes)."""
    table = seed_summary(runs, datasets, keys=["label", "protocol"])
    table.insert(0, "ablation", name)
    return table[ABLATION_COLUMNS]


def read_ablation_csv(path: str | Path) -> pd.DataFrame:
    """An ablation CSV written by `hecvl paper table`, checked for its columns."""
    path = Path(path)
    if not path.is_file():
        raise HecvlError("ablation table not found (run its `ablation_<name>` target)", path)
    try:
        df = pd.read_csv(path, dtype={"seeds": str, "label": str, "ablation": str, "dataset": str,
                                      "protocol": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise HecvlError(f"not a readable CSV: {exc}", path) from None
    lacking = [c for c in ABLATION_COLUMNS if c not in df.columns]
    if lacking:
        raise HecvlError(f"ablation table lacks column(s) {', '.join(lacking)}", path)
    return df[ABLATION_COLUMNS]


def main_table(
    ours: pd.DataFrame,
    published: PublishedTable,
    datasets: Sequence[str],
    data_desc: str,
    data_short: str,
    references: pd.DataFrame | None = None,
    released: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Published rows (real data), the released weights, our methods and reference points: tidy rows.

    `ours` / `references` / `released`: seed summaries keyed by `label`; `released` are the authors'
    released checkpoints evaluated by this pipeline on the configured data, placed right under the
    published rows they reproduce. Published averages are copied when the
    study covers the paper's datasets; otherwise they are recomputed over the datasets shown (noted
    in `source`), so every row's average is over the same columns.
    """
    rows = []
    same_datasets = list(datasets) == list(published.datasets)
    for method in published.methods:
        g = published.rows[published.rows["method"] == method].set_index("dataset")
        shown = [ds for ds in datasets if ds in g.index]
        for ds in [*shown, AVERAGE]:
            if ds == AVERAGE:
                if not shown:
                    continue
                if same_datasets:
                    acc, f1 = g.loc[AVERAGE, "accuracy"], g.loc[AVERAGE, "f1"]
                    src = f"{published.short_source}; {published.average_note}"
                else:
                    acc, f1 = g.loc[shown, "accuracy"].mean(), g.loc[shown, "f1"].mean()
                    src = f"{published.short_source}; average recomputed over the datasets shown"
            else:
                acc, f1, src = g.loc[ds, "accuracy"], g.loc[ds, "f1"], published.short_source
            rows.append(
                {
                    "group": "published",
                    "method": f"{method}, {published.label}",
                    "data": published.data,
                    "dataset": ds,
                    "accuracy_mean": float(acc),
                    "f1_mean": float(f1),
                    "protocol": PUBLISHED_PROTOCOL,
                    "source": src,
                }
            )
    groups = (("released", released), ("ours", ours), ("reference", references))
    for group, table in groups:
        if table is None or table.empty:
            continue
        for _, r in table.iterrows():
            row = {c: r[c] for c in SUMMARY_COLUMNS}
            if group == "released":  # e.g. "HecVL (released weights), local data"
                method, source = f"{r['label']}, {data_short}", "this study: the authors' released weights"
            else:
                method, source = f"{r['label']} ({group}, {data_short})", "this study"
            row.update(group=group, method=method, data=data_desc, source=source, protocol=r["protocol"])
            rows.append(row)
    out = pd.DataFrame(rows, columns=MAIN_COLUMNS)
    return _rounded(out)


# --- formatting -----------------------------------------------------------------------------------
def _fmt(mean: float, std: float, n: object, video_std: float, latex: bool) -> str:
    if mean is None or pd.isna(mean):
        return "—" if not latex else "--"
    pm = " $\\pm$ " if latex else " ± "
    if pd.isna(n):  # published: no spread reported
        return f"{mean:.1f}"
    if int(n) == 1:
        if pd.isna(video_std):
            return f"{mean:.1f}"
        mark = "$^\\dagger$" if latex else DAGGER
        return f"{mean:.1f}{pm}{video_std:.1f}{mark}"
    return f"{mean:.1f}{pm}{std:.1f}"


def cell(row: pd.Series | None, latex: bool = False) -> str:
    """`accuracy / F1` of one tidy row, formatted as the paper's tables (mean ± std, 1 decimal)."""
    if row is None:
        return "—" if not latex else "--"
    n = row.get("n_seeds")
    acc = _fmt(row["accuracy_mean"], row.get("accuracy_std"), n, row.get("accuracy_video_std"), latex)
    f1 = _fmt(row["f1_mean"], row.get("f1_std"), n, row.get("f1_video_std"), latex)
    return f"{acc} / {f1}"


def wide(
    table: pd.DataFrame, row_keys: Sequence[str], columns: Sequence[str], latex: bool = False
) -> list[list[str]]:
    """Rows of formatted cells: one row per distinct `row_keys`, one cell per dataset column."""
    out = []
    for key_values, g in table.groupby(list(row_keys), sort=False):
        key_values = key_values if isinstance(key_values, tuple) else (key_values,)
        by_ds = {r["dataset"]: r for _, r in g.iterrows()}
        n = g["n_seeds"].dropna()
        seeds = str(int(n.max())) if len(n) else "—"
        out.append([*(str(k) for k in key_values), seeds, *(cell(by_ds.get(c), latex) for c in columns)])
    return out


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    sep = "|" + "|".join("---" for _ in header) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)]) + "\n"


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "§": r"\S{}",
    "†": r"$^\dagger$",
}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX tabular."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def latex_table(
    header: Sequence[str],
    blocks: Sequence[tuple[str | None, Sequence[Sequence[str]]]],
    caption: str,
    label: str,
    escape_cells: bool = False,
) -> str:
    """A booktabs table: blocks of rows separated by \\midrule, each block optionally titled.

    Cells are written as given (already LaTeX) unless `escape_cells`; header, titles and caption are escaped.
    """
    ncol = len(header)
    lines = [
        "% requires \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        f"\\caption{{{latex_escape(caption)}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{{'l' * 2 + 'c' * (ncol - 2)}}}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in header) + " \\\\",
    ]
    for title, rows in blocks:
        lines.append("\\midrule")
        if title:
            lines.append(f"\\multicolumn{{{ncol}}}{{l}}{{\\textit{{{latex_escape(title)}}}}} \\\\")
        for r in rows:
            if len(r) != ncol:
                raise ValueError(f"row has {len(r)} cells, header {ncol}")
            cells = [latex_escape(c) for c in r] if escape_cells else [latex_escape(r[0]), *r[1:]]
            lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


# --- the two tables of the paper ------------------------------------------------------------------
def write_main_table(
    table: pd.DataFrame, datasets: Sequence[str], out_dir: Path, notes: Sequence[str]
) -> list[Path]:
    """main_table.{csv,md,tex}: methods x (datasets + average), published rows first."""
    columns = [*datasets, AVERAGE]
    titles = [dataset_title(c) for c in columns]
    header = ["method", "data", "seeds", *titles]
    md_rows = []
    blocks = []
    for group in GROUPS:
        g = table[table["group"] == group]
        if g.empty:
            continue
        rows_md = wide(g, ["method", "data"], columns)
        rows_tex = wide(g, ["method", "data"], columns, latex=True)
        md_rows += rows_md
        blocks.append((group, [[r[0], latex_escape(r[1]), *r[2:]] for r in rows_tex]))
    text = ["# Main table: zero-shot phase recognition, accuracy / F1 (%)", ""]
    text.append(markdown_table(header, md_rows))
    text += [f"- {n}" for n in (CELL_NOTE, *notes)]
    paths = [out_dir / f"main_table.{ext}" for ext in ("csv", "md", "tex")]
    write_csv(paths[0], table)
    write_text(paths[1], "\n".join(text) + "\n")
    caption = "Zero-shot phase recognition, accuracy / F1 (%). " + CELL_NOTE + " " + " ".join(notes)
    write_text(paths[2], latex_table(header, blocks, caption, "tab:main"))
    return paths


def write_ablation_table(
    table: pd.DataFrame, datasets: Sequence[str], out_dir: Path, notes: Sequence[str]
) -> list[Path]:
    """ablation_table.{csv,md,tex}: one block per ablation, rows = its labels, columns = datasets."""
    columns = [*datasets, AVERAGE]
    titles = [dataset_title(c) for c in columns]
    header = ["ablation", "setting", "seeds", *titles]
    text = ["# Ablations: zero-shot phase recognition, accuracy / F1 (%)", ""]
    blocks = []
    for name, g in table.groupby("ablation", sort=False):
        text += [f"## {name}", "", markdown_table(header, wide(g, ["ablation", "label"], columns))]
        blocks.append(
            (
                str(name),
                [
                    [r[0], latex_escape(r[1]), *r[2:]]
                    for r in wide(g, ["ablation", "label"], columns, latex=True)
                ],
            )
        )
    if not blocks:
        text.append("No ablation is defined in params.yaml.\n")
    text += [f"- {n}" for n in (CELL_NOTE, *notes)]
    paths = [out_dir / f"ablation_table.{ext}" for ext in ("csv", "md", "tex")]
    write_csv(paths[0], table)
    write_text(paths[1], "\n".join(text) + "\n")
    caption = "Ablations, accuracy / F1 (%). " + CELL_NOTE + " " + " ".join(notes)
    write_text(paths[2], latex_table(header, blocks, caption, "tab:ablations"))
    return paths


# --- paired differences: main minus baseline, per seed ---------------------------------------------
PAIRED_COLUMNS = ["dataset", "metric", "n", "mean_diff", "ci_low", "ci_high", "main", "baseline"]
PAIRED_METRICS = {"accuracy": "accuracy_mean", "f1": "f1_mean"}  # metric -> the run-level column
CONFIDENCE = 0.95
_CF_EPS = 1e-15
_CF_MAXIT = 10_000


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, _CF_MAXIT + 1):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        for aa in (even, odd):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < _CF_EPS:
            return h
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """I_x(a, b), the regularised incomplete beta function; `y` is 1 - x (passed to keep its precision)."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    if t < 0:
        return 1.0 - t_sf(-t, df)
    t2 = t * t
    return 0.5 * _betainc(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` (> 0) degrees of freedom, without scipy.

    Inverts the upper tail P(T > t) = I_{df/(df+t^2)}(df/2, 1/2) / 2 by bisection, which is exact to
    the last bits of a double and the same bits on every run (t_{0.975,4} = 2.7764...).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"t quantile: p must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"t quantile: degrees of freedom must be > 0, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    q = 1.0 - p  # the upper tail to reach; the tail falls as t grows
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > q:
        lo, hi = hi, 2.0 * hi
    for _ in range(2000):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if t_sf(mid, df) > q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _paired_row(dataset: str, metric: str, diffs: np.ndarray, confidence: float) -> dict[str, object]:
    n = len(diffs)
    mean = float(np.mean(diffs))
    low = high = float("nan")  # one seed: no spread across seeds, the interval is undefined
    if n > 1:
        half = t_quantile(0.5 + confidence / 2.0, n - 1) * float(np.std(diffs, ddof=1)) / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"dataset": dataset, "metric": metric, "n": n, "mean_diff": mean, "ci_low": low, "ci_high": high}


def paired_differences(
    runs: pd.DataFrame,
    datasets: Sequence[str],
    main: str,
    baseline: str,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """`main` minus `baseline` per dataset and metric, paired by seed, with a Student-t interval.

    `runs`: one row per (label, seed, dataset) with accuracy_mean and f1_mean (a run's video-wise
    means, %). Per dataset, the seeds both methods ran give the differences d_s; a row holds their
    count n, mean, and the two-sided `confidence` interval mean ± t_{(1+c)/2, n-1} · sd(d, ddof=1) / √n
    (NaN, written empty, when n = 1). The `average` row (studies of several datasets, as in the main
    table) pairs per seed the average over datasets of each method, over the seeds that have every
    dataset for both. Rows: datasets in the given order then average; accuracy before f1.
    """
    cols = list(PAIRED_METRICS.values())
    sides = []
    for label in (main, baseline):
        d = runs[runs["label"] == label]
        dup = d.duplicated(["seed", "dataset"])
        if dup.any():
            first = d[dup].iloc[0]
            raise HecvlError(f"two results for {label} seed {first['seed']} on {first['dataset']}")
        sides.append(d.set_index(["seed", "dataset"])[cols])
    diff = (sides[0] - sides[1]).dropna().sort_index()  # only the (seed, dataset) both methods have
    unknown = set(diff.index.get_level_values("dataset")) - set(datasets)
    if unknown:
        raise HecvlError(f"results for datasets outside the study: {sorted(unknown)}")
    groups: list[tuple[str, pd.DataFrame]] = []
    by_dataset = diff.reset_index()
    for ds in datasets:
        g = by_dataset[by_dataset["dataset"] == ds].sort_values("seed")
        if not g.empty:
            groups.append((ds, g))
    if len(datasets) > 1:
        complete = by_dataset.groupby("seed").filter(lambda s: set(s["dataset"]) == set(datasets))
        if not complete.empty:
            # per seed: mean over datasets of main minus that of baseline (= mean of the differences)
            idx = complete.set_index(["seed", "dataset"]).index
            means = [side.loc[idx].groupby(level="seed").mean() for side in sides]
            per_seed = means[0] - means[1]
            groups.append((AVERAGE, per_seed.sort_index().reset_index()))
    rows = [
        {**_paired_row(ds, metric, g[col].to_numpy(dtype=float), confidence), "main": main,
         "baseline": baseline}
        for ds, g in groups
        for metric, col in PAIRED_METRICS.items()
    ]
    return _rounded(pd.DataFrame(rows, columns=PAIRED_COLUMNS))


def _signed(x: float) -> str:
    return f"{x:+.1f}".replace("-", "−")


def write_paired_table(
    table: pd.DataFrame, out_dir: Path, notes: Sequence[str], confidence: float = CONFIDENCE
) -> list[Path]:
    """paired.csv (tidy) and paired.md (readable) of `paired_differences`."""
    main = str(table["main"].iloc[0]) if len(table) else "main"
    baseline = str(table["baseline"].iloc[0]) if len(table) else "baseline"
    level = f"{confidence * 100:g} %"
    header = ["dataset", "metric", "seeds", f"{main} − {baseline}", f"{level} CI"]
    rows = []
    for r in table.itertuples():
        ci = "— (one seed)" if pd.isna(r.ci_low) else f"[{_signed(r.ci_low)}, {_signed(r.ci_high)}]"
        metric = "F1" if r.metric == "f1" else str(r.metric)
        rows.append([dataset_title(str(r.dataset)), metric, str(r.n), _signed(r.mean_diff), ci])
    text = [f"# Paired difference {main} − {baseline}: accuracy / F1 (percentage points)", ""]
    text.append(markdown_table(header, rows) if rows else "No seed has results of both methods.\n")
    explained = [
        f"Each seed's difference is {main} minus {baseline} of the run-level means over test videos "
        "(accuracy / macro F1 in %, method.md §6), both runs with that seed; the column is the mean "
        "of those differences over the seeds (n). Positive: "
        f"{main} is better.",
        f"{level} CI: two-sided Student-t interval over the per-seed differences, mean ± "
        f"t({0.5 + confidence / 2:g}, n − 1) · sd / √n (sd with ddof = 1); with one seed it is undefined "
        "and paired.csv leaves it empty.",
        f"{AVERAGE}: per seed, each method's mean over the datasets (seeds with every dataset), then paired.",
    ]
    text += [f"- {n}" for n in (*explained, *notes)]
    paths = [out_dir / "paired.csv", out_dir / "paired.md"]
    write_csv(paths[0], table)
    write_text(paths[1], "\n".join(text) + "\n")
    return paths
