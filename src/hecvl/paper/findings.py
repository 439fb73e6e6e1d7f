"""What the study found, in numbers: `results/paper/findings.md` (and `results/noise/findings.md` for
the narration-noise sweep), also the README's result blocks.

Every sentence is generated from the run's tables (main comparison, paired differences, references,
ablations, the sweep), so the README can never claim what the run did not show. `hecvl paper readme`
copies a file between the README's `<!-- results:begin -->` / `<!-- results:end -->` markers (the
sweep: `<!-- noise:begin -->` / `<!-- noise:end -->`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hecvl.errors import HecvlError
from hecvl.io import write_text
from hecvl.layout import WORLD_CHECK
from hecvl.paper.convergence import PLATEAU_POINTS
from hecvl.paper.published import AVERAGE, dataset_title
from hecvl.paper.tables import cell, markdown_table, paired_differences

BLOCKS = ("results", "noise")  # the README's generated blocks
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def markers(block: str) -> tuple[str, str]:
    return f"<!-- {block}:begin -->", f"<!-- {block}:end -->"


def _verdict(row: pd.Series, main: str, baseline: str) -> str:
    """What a paired interval says: a difference only where the interval excludes zero."""
    if pd.isna(row["ci_low"]):
        return "one seed: no interval"
    if row["ci_low"] > 0:
        return f"{main} better"
    if row["ci_high"] < 0:
        return f"{baseline} better"
    return "no detectable difference"


def _diff(row: pd.Series) -> str:
    text = f"{row['mean_diff']:+.1f}"
    if not pd.isna(row["ci_low"]):
        text += f" [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]"
    return text.replace("-", "−")


def findings_markdown(
    summary: pd.DataFrame,
    references: pd.DataFrame,
    paired: pd.DataFrame,
    ablations: pd.DataFrame,
    datasets: Sequence[str],
    main: str,
    baseline: str,
    context: str,
    converged: pd.DataFrame | None = None,
    class_name_note: str | None = None,
    world_check: dict | None = None,
) -> str:
    """The findings of one build. `summary`: seed_summary rows of the main comparison (label, dataset);
    `references`: the untrained / linear-probe rows; `paired`: paired_differences; `ablations`: the
    ablation table's rows; `context`: what data, seeds and units the numbers are on; `converged`: the
    plateau criterion per method (`hecvl.paper.convergence.plateau`); `class_name_note`: which class names
    were training texts (`hecvl.paper.overlap`), said beside the class-name prompt rows; `world_check`: the
    synthetic world's `hecvl synth --check` report, whose criteria say whether the task was learnable."""
    columns = [*datasets, AVERAGE] if len(datasets) > 1 else list(datasets)
    titles = [dataset_title(d) if d != AVERAGE else "average" for d in columns]
    out = ["### Findings of this run", "", context, ""]

    rows = []
    for label, frame in [*summary.groupby("label", sort=False), *references.groupby("label", sort=False)]:
        by_ds = {r["dataset"]: r for _, r in frame.iterrows()}
        seeds = frame["n_seeds"].dropna()
        n = int(seeds.max()) if len(seeds) else 0
        name = f"{label}, {n} seed{'s' if n > 1 else ''}" if n else str(label)
        rows.append([name, *(cell(by_ds.get(c)) for c in columns)])
    out += [markdown_table(["method", *titles], rows)]

    out += [f"**Does the hierarchy help?** {main} − {baseline}, paired by seed (points; 95 % Student-t "
            "interval over seeds in brackets; a difference is claimed only where the interval excludes 0):",
            ""]
    rows = []
    for dataset, frame in paired.groupby("dataset", sort=False):
        by_metric = {r["metric"]: r for _, r in frame.iterrows()}
        acc, f1 = by_metric.get("accuracy"), by_metric.get("f1")
        rows.append([
            dataset_title(str(dataset)) if dataset != AVERAGE else "average",
            _diff(acc) if acc is not None else "—", _verdict(acc, main, baseline) if acc is not None else "—",
            _diff(f1) if f1 is not None else "—", _verdict(f1, main, baseline) if f1 is not None else "—",
        ])
    out += [markdown_table(["dataset", "accuracy", "", "F1", ""], rows)]
    out += [_summary_sentence(paired, main, baseline), "", _claim_sentence(paired, main, baseline), ""]
    if converged is not None and len(converged):
        out += [_convergence_sentence(converged), ""]
    if world_check is not None:
        out += [_world_sentence(world_check, datasets), ""]

    if len(ablations):
        out += ["**Ablations** (average over the datasets; accuracy / F1; the best accuracy of each block "
                "in bold):", ""]
        for name, block in ablations.groupby("ablation", sort=False):
            avg = block[block["dataset"] == (AVERAGE if len(datasets) > 1 else datasets[0])]
            if avg.empty:
                continue
            best_acc = avg["accuracy_mean"].max()
            parts = []
            for _, r in avg.iterrows():
                text = f"{r['label']} {r['accuracy_mean']:.1f} / {r['f1_mean']:.1f}"
                parts.append(f"**{text}**" if r["accuracy_mean"] == best_acc else text)
            seeds = int(avg["n_seeds"].max())
            out.append(f"- {name} ({seeds} seed{'s' if seeds > 1 else ''}): " + "; ".join(parts))
        if class_name_note:
            out.append(f"- {class_name_note}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _convergence_sentence(converged: pd.DataFrame) -> str:
    """The plateau criterion in numbers, per method (results/paper/convergence.csv, convergence.png)."""
    parts = []
    for _, r in converged.iterrows():
        state = "plateaued" if r["plateaued"] else "still moving"
        text = (f"{r['method']} {r['from_acc']:.1f} at step {r['from_step']} → {r['to_acc']:.1f} at step "
                f"{r['to_step']} ({r['change']:+.1f}; range {r['range']:.1f}): {state}")
        parts.append(text.replace("-", "−"))
    return ("**Converged?** Zero-shot accuracy on the validation split in each method's headline space, "
            "mean over datasets and seeds, over the last quarter of training (criterion: it moves by at "
            f"most {PLATEAU_POINTS:g} points): " + "; ".join(parts) + ".")


def _world_sentence(report: dict, datasets: Sequence[str]) -> str:
    """The world's learnability check in numbers: the pixel probe per dataset and the failed criteria."""
    from hecvl.synth.check import PROBE_MIN_ACCURACY, failed_criteria

    scored = [d for d in datasets if d in report["datasets"]]
    probes = ", ".join(f"{dataset_title(d)} {report['datasets'][d]['probe']['accuracy']:.1f}" for d in scored)
    chance = " / ".join(f"{report['datasets'][d]['chance']:.1f}" for d in scored)
    total = sum(len(v) if isinstance(v, dict) else 1 for v in report["criteria"].values())
    failed = failed_criteria(report)
    verdict = (f"all {total} criteria pass" if not failed
               else f"{len(failed)} of {total} criteria fail: {', '.join(failed)}")
    return (f"**Is the task learnable?** `hecvl synth --check` on the world this study ran on "
            f"({WORLD_CHECK}): a linear probe on the model's input pixels reaches {probes} % "
            f"test accuracy (criterion: at least {PROBE_MIN_ACCURACY:g} on every dataset; chance {chance}); "
            f"{verdict}.")


def _claim_sentence(paired: pd.DataFrame, main: str, baseline: str) -> str:
    """Whether the paper's claim held on this run, read off the average's paired intervals only."""
    avg = {r["metric"]: r for _, r in paired[paired["dataset"] == AVERAGE].iterrows()}
    verdicts = {m: _verdict(r, main, baseline) for m, r in avg.items()}
    head = (f"**Did the paper's claim hold?** (hierarchical pretraining, {main}, beats clip-level "
            f"pretraining, {baseline}, at zero-shot phase recognition, on average over the datasets): ")
    if not verdicts:
        return head + "Not tested: no seed has results of both methods on every dataset."
    if any(v == "one seed: no interval" for v in verdicts.values()):
        return head + "Not tested: one seed gives no interval."
    said = "; ".join(f"{'F1' if m == 'f1' else m} {_diff(avg[m])}" for m in verdicts)
    wins = sum(v == f"{main} better" for v in verdicts.values())
    losses = sum(v == f"{baseline} better" for v in verdicts.values())
    if wins == len(verdicts):
        return head + f"Yes, on both metrics: {said}."
    if wins and losses:
        return head + f"Mixed: better on one metric, worse on the other ({said})."
    if wins:
        return head + f"In part, on one metric only: {said}."
    if losses:
        return head + f"No: the baseline is better ({said})."
    return head + f"Not shown: neither metric's interval excludes 0 ({said})."


def _summary_sentence(paired: pd.DataFrame, main: str, baseline: str) -> str:
    """One sentence per metric on the average over datasets, and where the hierarchy helped or hurt."""
    if paired.empty:
        return "No seed has results of both methods."
    where = {"helps": [], "hurts": []}
    for _, r in paired[paired["dataset"] != AVERAGE].iterrows():
        verdict = _verdict(r, main, baseline)
        metric = "F1" if r["metric"] == "f1" else r["metric"]
        if verdict == f"{main} better":
            where["helps"].append(f"{dataset_title(str(r['dataset']))} {metric}")
        elif verdict == f"{baseline} better":
            where["hurts"].append(f"{dataset_title(str(r['dataset']))} {metric}")
    avg = paired[paired["dataset"] == AVERAGE]
    parts = []
    for _, r in avg.iterrows():
        metric = "F1" if r["metric"] == "f1" else r["metric"]
        parts.append(f"average {metric} {_diff(r)}: {_verdict(r, main, baseline)}")
    text = ("On this run: " + "; ".join(parts) + ". ") if parts else ""
    text += f"{main} is better on: {', '.join(where['helps']) or 'none'}; "
    text += f"{baseline} is better on: {', '.join(where['hurts']) or 'none'}."
    return text


def write_findings(text: str, out_dir: Path) -> Path:
    path = Path(out_dir) / "findings.md"
    write_text(path, text)
    return path


def refresh_readme(readme: str | Path, findings: str | Path, check: bool = False, block: str = "results"
                   ) -> bool:
    """Put `findings` between the README's `block` markers; True when the README changed (or, with
    `check`, would change). Everything outside the markers is left as it is."""
    readme, findings = Path(readme), Path(findings)
    begin, end = markers(block)
    if not findings.is_file():
        raise HecvlError("findings not found (run the study, or its `snakemake narration_noise`, first)",
                         findings)
    text = readme.read_text(encoding="utf-8")
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise HecvlError(f"expected one {begin} ... {end} block", readme)
    head, rest = text.split(begin, 1)
    _old, tail = rest.split(end, 1)
    new = f"{head}{begin}\n{findings.read_text(encoding='utf-8')}{end}{tail}"
    if new == text:
        return False
    if not check:
        write_text(readme, new)
    return True


def readme_block(readme: str | Path, block: str = "results") -> str:
    """The text between the README's `block` markers."""
    begin, end = markers(block)
    text = Path(readme).read_text(encoding="utf-8")
    return text.split(begin, 1)[1].split(end, 1)[0].removeprefix("\n")


def noise_findings_markdown(table: pd.DataFrame, datasets: Sequence[str], main: str, baseline: str,
                            main_relevance: float | None) -> str:
    """The narration-noise sweep in numbers: per relevance, each method's average over the datasets
    (mean ± population std over seeds, as the main table), and the paired difference with its interval.

    `table`: the sweep's tidy CSV (relevance, method, seed, dataset, accuracy, f1)."""
    out = ["### Narration noise: how the comparison moves with narration quality", "",
           "`snakemake narration_noise`: the synthetic world regenerated at each fraction of narrations that "
           "describe what is visible; average over the datasets, accuracy / F1 in %, mean ± std over seeds "
           "(population std, as the main table). Generated by `hecvl paper noise` into "
           "results/noise/findings.md.", ""]
    rows, sentences = [], []
    for rel, sweep in table.groupby("relevance", sort=True):
        runs = sweep.rename(columns={"method": "label", "accuracy": "accuracy_mean", "f1": "f1_mean"})
        complete = runs.groupby(["label", "seed"]).filter(lambda g: set(g["dataset"]) == set(datasets))
        avg = complete.groupby(["label", "seed"])[["accuracy_mean", "f1_mean"]].mean()
        cells = []
        for method in (baseline, main):
            m = avg.loc[method] if method in avg.index.get_level_values("label") else None
            if m is None:
                cells.append("—")
                continue
            acc, f1 = m["accuracy_mean"], m["f1_mean"]
            cells.append(f"{acc.mean():.1f} ± {acc.std(ddof=0):.1f} / {f1.mean():.1f} ± {f1.std(ddof=0):.1f}")
        name = f"{rel:g}" + (" (the default world)" if main_relevance is not None
                             and abs(rel - main_relevance) < 1e-9 else "")
        rows.append([name, *cells])
        paired = paired_differences(runs, datasets, main, baseline)
        last = paired[paired["dataset"] == paired["dataset"].iloc[-1]]  # the average (or the one dataset)
        by_metric = {r["metric"]: r for _, r in last.iterrows()}
        parts = [f"{'F1' if k == 'f1' else k} {_diff(r)} ({_verdict(r, main, baseline)})"
                 for k, r in by_metric.items()]
        means = sweep.groupby(["method", "dataset"])["accuracy"].mean()
        leads = [dataset_title(d) for d in datasets
                 if (main, d) in means and (baseline, d) in means and means[main, d] > means[baseline, d]]
        sentences.append(f"- relevance {rel:g}: {main} − {baseline}, paired by seed: {'; '.join(parts)}; "
                         f"{main} has the higher mean accuracy on: {', '.join(leads) or 'none'}.")
    out += [markdown_table(["narration relevance", baseline, main], rows), *sentences]
    return "\n".join(out).rstrip() + "\n"
