"""Build the paper's outputs from the study's results: tables, paired differences, figures, protocol note.

    hecvl paper table --params params.yaml --name NAME --out results/ablations/NAME.csv LABEL=PATH ...
    hecvl paper build --params params.yaml --out results/paper

Which file is which row comes from the study design (hecvl.study.Study), the same object the
Snakefile asks, so a table can only contain runs the DAG made.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hecvl.config import REFERENCES, Params
from hecvl.datasets.registry import TargetDataset
from hecvl.errors import HecvlError
from hecvl.io import read_json, write_csv, write_text
from hecvl.layout import LOSSES, PAIR_STATS, PAIRS, RUN_PROTOCOL_NAME, VALIDATION, WORLD_CHECK
from hecvl.paper import figures
from hecvl.paper.collect import (
    Result,
    load_results,
    losses_frame,
    match_entries,
    per_phase_frame,
    predictions_path,
    read_predictions,
    resolve,
    runs_frame,
)
from hecvl.paper.convergence import LAST_PART, convergence_frame, headline_curves, plateau
from hecvl.paper.findings import findings_markdown, write_findings
from hecvl.paper.overlap import overlaps
from hecvl.paper.protocol import data_description, params_digest, protocol_markdown
from hecvl.paper.published import PublishedTable, dataset_title, load_published
from hecvl.paper.tables import (
    ABLATION_COLUMNS,
    PUBLISHED_PROTOCOL,
    ablation_summary,
    main_table,
    paired_differences,
    read_ablation_csv,
    seed_summary,
    write_ablation_table,
    write_main_table,
    write_paired_table,
)
from hecvl.released_runs import ReleasedRuns
from hecvl.study import Study

log = logging.getLogger(__name__)

TIMELINE_VIDEOS = 2  # test videos per dataset in timelines.png


def ablation_table(
    study: Study, name: str, rows: Sequence[tuple[str, str]], out: Path, root: Path = Path(".")
) -> pd.DataFrame:
    """Aggregate one ablation's metrics files (rows: label, path) into its tidy CSV at `out`."""
    if not rows:
        raise HecvlError(f"ablation {name!r}: no LABEL=PATH rows given")
    entries = match_entries(rows, study.ablation_entries(name), f"ablation {name!r}")
    runs = runs_frame(load_results(entries, root))
    table = ablation_summary(name, runs, study.datasets)
    write_csv(out, table)
    return table


def _reference_results(study: Study, root: Path) -> list[Result]:
    """The untrained and linear-probe results of the ablations that define them (once each)."""
    seen: dict[str, Any] = {}
    for name in study.ablations:
        for e in study.ablation_entries(name):
            if e.variant in REFERENCES:
                seen.setdefault(e.path, e)
    return load_results(list(seen.values()), root)


def _released_note(study: Study, released: Sequence[Result], data_long: str) -> str | None:
    """What the released-weights rows are, for the tables' notes (None without such rows)."""
    if not released:
        return None
    names = ", ".join(dict.fromkeys(r.entry.label for r in released))
    transform = (released[0].metrics.get("run") or {}).get("transform", "?")
    return (
        f"Released-weights rows ({names}): the authors' checkpoints evaluated by this pipeline on "
        f"{data_long}, with their own frame transform ({transform}) and forward pass, our prompts and "
        "metrics; one deterministic run each. Independent re-evaluations of the released weights on "
        "Cholec80 report HecVL 44.8 / 25.1, SurgVLP 41.6 / 27.8, PeskaVLP 45.2 / 34.2 (method.md §8)."
    )


def _notes(study: Study, published: PublishedTable, data_long: str) -> list[str]:
    others = published.other_reports
    other = "; ".join(
        f"{m} on {', '.join(f'{dataset_title(r.dataset)} {r.accuracy:g} / {r.f1:g}' for r in g.itertuples())}"
        f" ({g['source'].iloc[0]})"
        for (m, _src), g in others.groupby(["method", "source"], sort=False)
    )
    notes = [
        f"Published rows: {published.data} ({published.source}). Our rows: {data_long}. The two are on "
        "different data and are not comparable number for number; the published rows give the scale.",
        f"Protocol: run_protocol.md beside this table (settings digest {params_digest(study.params)}).",
    ]
    if list(study.datasets) != list(published.datasets):
        notes.append(
            "The published average column is recomputed over the datasets shown; the paper's own averages "
            f"are over {', '.join(dataset_title(d) for d in published.datasets)}."
        )
    if other:
        notes.append(f"Other reports of the released weights, on their own protocols: {other}.")
    return notes


def _class_name_note(ablations: pd.DataFrame, study: Study, root: Path) -> str | None:
    """Where class-name prompt rows exist: how many class names were verbatim phase-level training texts."""
    if not ablations["label"].astype(str).str.contains("class_name").any():
        return None
    path = resolve(root, f"{PAIRS}/phase.parquet")
    if not path.is_file():
        return None
    texts = pd.read_parquet(path, columns=["text"])["text"].astype(str).tolist()
    left_out = {d: [ds.classes[i] for i in ds.ignored] for d in study.datasets
                for ds in [TargetDataset.from_params(d, study.params)]}
    found = overlaps(study.datasets, texts, left_out)
    return ("Class-name prompts: plain class names that occur verbatim in the phase-level training texts "
            f"({found[0].texts} texts; such a class is matched to a text seen in training, not described): "
            + "; ".join(o.sentence(dataset_title(o.dataset)) for o in found) + ".")


def _world_check(params: Params, root: Path) -> dict[str, Any] | None:
    """The synthetic world's `hecvl synth --check` report (rule world_check), or None on real data."""
    if params.data.source != "synthetic":
        return None
    path = resolve(root, WORLD_CHECK)
    if not path.is_file():
        raise HecvlError("the world check is missing (snakemake runs rule world_check first)", path)
    return read_json(path, "world check report")


def build(params: Params, out: Path, root: Path = Path(".")) -> list[Path]:
    """Write every output of the paper into `out`; returns the paths written."""
    study = Study(params)
    params = study.params
    published = load_published()
    data_long, data_short = data_description(params)
    out = Path(out)

    main_results = load_results(study.main_entries(), root)
    ref_results = _reference_results(study, root)
    released_runs = ReleasedRuns(params)
    released_results = load_results(released_runs.entries(root), root)
    released_notes = released_runs.notes(root)
    for note in released_notes:
        log.info("%s", note)
    released = None
    if released_results:
        released = seed_summary(runs_frame(released_results), study.datasets, keys=["label", "protocol"])
    main_runs = runs_frame(main_results)
    ours = seed_summary(main_runs, study.datasets, keys=["label", "protocol"])

    ablation_tables = [read_ablation_csv(resolve(root, study.ablation_table(a))) for a in study.ablations]
    ablations = (
        pd.concat(ablation_tables, ignore_index=True)
        if ablation_tables
        else pd.DataFrame(columns=ABLATION_COLUMNS)
    )
    refs = ablations[ablations["label"].isin(REFERENCES)].drop_duplicates(["label", "dataset"])
    table = main_table(
        ours, published, study.datasets, data_long, data_short, references=refs, released=released
    )
    notes = _notes(study, published, data_long)
    released_note = _released_note(study, released_results, data_long)
    main_notes = [*notes, released_note] if released_note else notes
    used = [p for p in table["protocol"].drop_duplicates() if p != PUBLISHED_PROTOCOL]
    main_notes.append(f"Evaluation protocol of this study's rows: {', '.join(used)} (name, version and "
                      "settings hash; `hecvl protocols NAME` shows the settings).")
    written = write_main_table(table, study.datasets, out, main_notes)
    written += write_ablation_table(ablations, study.datasets, out, notes[1:])
    paired = paired_differences(main_runs, study.datasets, study.main, study.baseline)
    written += write_paired_table(paired, out, [f"Data: {data_long}.", notes[1]])  # notes[1]: protocol
    seeds_txt = ", ".join(map(str, study.seeds))
    context = (f"From `make study` ({data_long}; main comparison over seeds {seeds_txt}, ablations over "
               f"seed(s) {', '.join(map(str, study.ablation_seeds))}; accuracy / F1 in %, mean ± std over "
               "seeds of the video-wise means; † = one seed, ± over test videos). Generated by "
               "`hecvl paper build` into results/paper/findings.md.")
    conv = convergence_frame({
        (variant, seed): resolve(root, f"{study.model_dir(variant, seed)}/{VALIDATION}")
        for variant, seed in study.trained_models()
    })
    write_csv(out / "convergence.csv", conv)
    written.append(out / "convergence.csv")
    curves = headline_curves(conv, {m: (study.canonical(m), study.eval_settings(m)[0])
                                    for m in (study.baseline, study.main)})
    steps = {m: study.resolved(m).train.steps for m in (study.baseline, study.main)}
    converged = plateau(curves, steps)
    findings = findings_markdown(ours, refs, paired, ablations, study.datasets, study.main, study.baseline,
                                 context, converged, _class_name_note(ablations, study, root),
                                 _world_check(params, root))
    written.append(write_findings(findings, out))

    all_results = main_results + ref_results
    runs = runs_frame(all_results).rename(
        columns={"label": "method", "accuracy_mean": "accuracy", "f1_mean": "f1"}
    )
    written.append(
        figures.accuracy_f1_figure(
            runs,
            out / "accuracy_f1.png",
            f"Zero-shot phase recognition on {data_short} data (ours): mean ± std over seeds ({seeds_txt})",
        )
    )
    phases = per_phase_frame(all_results).rename(columns={"label": "method"})
    written.append(
        figures.per_phase_f1_figure(
            phases,
            study.datasets,
            out / "per_phase_f1.png",
            f"Per-phase F1 (pooled over test frames, mean over seeds), {data_short} data",
        )
    )

    seed0 = study.seeds[0]
    shown = [r for r in main_results if r.entry.label == study.main and r.entry.seed == seed0]
    written.append(
        figures.confusion_figure(
            [figures.confusion_panel(r.entry.dataset, r.metrics, r.path) for r in shown],
            out / "confusion.png",
            f"{study.main} (seed {seed0}): confusion matrices, rows normalised",
        )
    )
    timelines = []
    for r in shown:
        pred = read_predictions(predictions_path(r.path))
        for video in sorted(pred["video"].unique())[:TIMELINE_VIDEOS]:
            timelines.append((r.entry.dataset, video, pred[pred["video"] == video], r.metrics["classes"]))
    written.append(
        figures.timelines_figure(
            timelines,
            out / "timelines.png",
            f"{study.main} (seed {seed0}): ground truth vs prediction, test videos",
        )
    )

    loss_files = {
        (e.label, e.seed): resolve(root, f"{study.model_dir(e.variant, e.seed)}/{LOSSES}")
        for e in study.main_entries()
    }
    val_by_dataset = conv.merge(pd.DataFrame(
        [{"variant": study.canonical(m), "space": study.eval_settings(m)[0], "method": m}
         for m in (study.baseline, study.main)]), on=["variant", "space"])
    cols = ["method", "seed", "step", "dataset", "accuracy"]
    val_shown = pd.concat([val_by_dataset[cols], curves.assign(dataset="average")[cols]])
    written.append(
        figures.convergence_figure(
            val_shown, losses_frame(loss_files), (1 - LAST_PART) * max(steps.values()),
            out / "convergence.png",
            f"Convergence of the main comparison (mean ± std over seeds {seeds_txt})",
        )
    )

    stats_path = resolve(root, f"{PAIRS}/{PAIR_STATS}")
    stats = read_json(stats_path, "pair statistics") if stats_path.is_file() else None
    protocol = protocol_markdown(
        study, all_results + released_results, published, stats, released_notes=released_notes
    )
    write_text(out / RUN_PROTOCOL_NAME, protocol)
    written.append(out / RUN_PROTOCOL_NAME)
    _track(study, table, written)
    return written


def write_noise_table(study: Study, out: Path, root: Path = Path(".")) -> pd.DataFrame:
    """Gather the narration-noise sweep's metrics (Study.noise_entries) into its tidy CSV."""
    from hecvl.paper.collect import read_metrics, resolve

    rows = []
    for rel, e in study.noise_entries():
        m = read_metrics(resolve(root, e.path))
        rows.append(
            {
                "relevance": rel,
                "method": e.label,
                "seed": e.seed,
                "dataset": e.dataset,
                "accuracy": m["accuracy_mean"],
                "f1": m["f1_mean"],
            }
        )
    table = pd.DataFrame(rows)
    write_csv(out, table)
    return table


def read_noise_table(path: Path) -> pd.DataFrame:
    """The narration-noise sweep's tidy CSV: relevance, method, seed, dataset, accuracy, f1."""
    if not path.is_file():
        raise HecvlError("narration-noise table not found", path)
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise HecvlError(f"not a readable CSV: {exc}", path) from None
    lacking = [c for c in ("relevance", "method", "seed", "dataset", "accuracy", "f1") if c not in df.columns]
    if lacking:
        raise HecvlError(f"narration-noise table lacks column(s) {', '.join(lacking)}", path)
    return df


def _track(study: Study, table: pd.DataFrame, written: Sequence[Path]) -> None:
    """One MLflow run holding the tables and figures as artifacts, and our headline numbers as metrics."""
    from hecvl.tracking import mlflow_run

    ours = table[table["group"] != "published"]

    def name(r: Any) -> str:  # "hecvl", "untrained", ...; "released_HecVL" for the released weights
        first = r.method.split(" ")[0]
        return f"released_{first}" if r.group == "released" else first

    with mlflow_run(experiment=study.name, run_name="paper", tags={"stage": "paper", "rule": "paper"}) as run:
        run.log_metrics(
            {
                f"{name(r)}/{r.dataset}/{m}": getattr(r, m)
                for r in ours.itertuples()
                for m in ("accuracy_mean", "f1_mean")
            }
        )
        for path in written:
            run.log_artifact(path, artifact_path="paper")
