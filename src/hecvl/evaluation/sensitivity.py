"""Protocol sensitivity: one model scored under every named protocol, and under each protocol choice alone.

Why both: a protocol's full result says how far its number sits from the study protocol's; the one-choice
rows (the study protocol with only that protocol's split, frame transform, normalisation or window) say
which choice moves it. Metric averaging needs no run of its own: every metrics file holds the video-wise
and the frame-pooled figures. Frames are decoded once per transform and embedded once per
(transform, normalisation); each window is pooled from those embeddings (or encoded by a temporal model).

    hecvl evaluate --params P --weights MODEL_DIR --dataset D ... --sensitivity --out results/protocols/M
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hecvl.config import Params
from hecvl.evaluation.embed import NORMALISATIONS, pick_device
from hecvl.evaluation.evaluate import Evaluation, Options, evaluate_many
from hecvl.evaluation.protocols import (
    STUDY_PROTOCOL,
    ResolvedProtocol,
    apply_protocol,
    protocol_split,
    protocols,
)
from hecvl.evaluation.sources import ModelSource, Normalisation
from hecvl.io import write_csv
from hecvl.layout import METRICS

log = logging.getLogger(__name__)

CHOICES = ("split", "transform", "normalise", "window")  # the choices that need an evaluation of their own
ALL = "all"  # the row of a protocol with every one of its choices
SWEEP_FILE = "sensitivity.csv"
COLUMNS = ["model", "seed", "dataset", "protocol", "choice", "protocol_label", "protocol_hash", "split",
           "metric", "accuracy_mean", "f1_mean", "accuracy_pooled", "f1_pooled", "path"]


@dataclass(frozen=True)
class Variation:
    """The study's settings with all of `protocol`'s choices (`choice` = all) or only one of them."""

    protocol: str
    choice: str
    params: Params
    splits: dict[str, str]

    @property
    def resolved(self) -> ResolvedProtocol:
        """The variation as evaluation takes a protocol: its params, already applied, and its splits."""
        return ResolvedProtocol(self.params, self.splits)

    @property
    def folder(self) -> str:
        return self.protocol if self.choice == ALL else f"{self.protocol}--{self.choice}"


def variations(
    params: Params,
    datasets: Sequence[str],
    own: Normalisation | None = None,
    names: Sequence[str] | None = None,
) -> list[Variation]:
    """The study protocol, each named protocol in full, and each choice of it that differs from the study's.

    One-choice rows keep the study protocol's name (their hash says they are not it) and are skipped where
    the choice equals the study's, where it is the protocol's only difference (the full row shows it), or,
    for the normalisation, where it is the model's own (`own`, its mean and std: the rows would be equal).
    """
    names = [n for n in (names or protocols()) if n != STUDY_PROTOCOL]
    base = apply_protocol(params, STUDY_PROTOCOL)
    base_splits = {d: protocol_split(base, d) for d in datasets}
    out = [Variation(STUDY_PROTOCOL, ALL, base, base_splits)]
    for name in names:
        full = apply_protocol(params, name)
        full_splits = {d: protocol_split(full, d) for d in datasets}
        out.append(Variation(name, ALL, full, full_splits))
        ones = []
        for choice in CHOICES:
            one, splits = _one_choice(base, full, choice, base_splits, full_splits, own)
            if one is not None:
                ones.append(Variation(name, choice, one, splits))
        if len(ones) > 1:
            out += ones
    return out


def _one_choice(
    base: Params, full: Params, choice: str, base_splits: dict[str, str], full_splits: dict[str, str],
    own: Normalisation | None,
) -> tuple[Params | None, dict[str, str]]:
    if choice == "split":
        return (base if full_splits != base_splits else None), full_splits
    if choice == "transform":
        same = full.frames.transform == base.frames.transform
        return (None if same else base.updated({"frames": {"transform": full.frames.transform.to_dict()}})), \
            base_splits
    value = getattr(full.eval, choice)
    if value == getattr(base.eval, choice) or (choice == "normalise" and NORMALISATIONS.get(value) == own):
        return None, base_splits
    plain = value.to_dict() if hasattr(value, "to_dict") else value
    return base.updated({"eval": {choice: plain}}), base_splits


def run_sensitivity(
    source: ModelSource, params: Params, datasets: Sequence[str], out: Path, seed: int
) -> pd.DataFrame:
    """Every variation on every dataset; writes each evaluation under `out/<variation>/<dataset>/` and the
    sweep's table `out/sensitivity.csv` (last: its presence means the sweep is complete)."""
    rows = []
    loaded = source.load(pick_device(params.eval.device))  # once for every protocol
    own = tuple(map(tuple, loaded.model.normalisation))
    for var in variations(params, datasets, own):
        plan = [Evaluation(d, var.params.eval, out / var.folder / d) for d in datasets]
        results = evaluate_many(source, var.resolved, plan, Options(seed, light=True), loaded)
        for item, m in zip(plan, results, strict=True):
            rows.append({
                "model": source.name, "seed": seed, "dataset": item.dataset, "protocol": var.protocol,
                "choice": var.choice, "protocol_label": f"{m['protocol']} v{m['protocol_version']}",
                "protocol_hash": m["protocol_hash"], "split": m["run"]["split"],
                "metric": m["run"]["protocol"]["settings"]["metric"],
                **{k: m[k] for k in ("accuracy_mean", "f1_mean", "accuracy_pooled", "f1_pooled")},
                "path": str(item.out / METRICS),
            })
        log.info("protocol %s (%s): %d datasets scored", var.protocol, var.choice, len(plan))
    table = pd.DataFrame(rows, columns=COLUMNS)
    _track(params, table, out, source.name, seed)
    write_csv(out / SWEEP_FILE, table)
    return table


def _track(params: Params, table: pd.DataFrame, out: Path, model_name: str, seed: int) -> None:
    """One MLflow run per sweep (not one per evaluation: a sweep has dozens): per protocol row, the
    dataset-averaged video-wise accuracy and F1, and every evaluation's metrics file as artifacts."""
    from hecvl.tracking import experiment_name, mlflow_run

    means = table.groupby(["protocol", "choice"], sort=False)[["accuracy_mean", "f1_mean"]].mean()
    metrics = {}
    for (protocol, choice), row in means.iterrows():
        name = protocol if choice == ALL else f"{protocol}--{choice}"
        metrics[f"accuracy/{name}"] = float(row["accuracy_mean"])
        metrics[f"f1/{name}"] = float(row["f1_mean"])
    tags = {"stage": "protocols", "rule": "protocol_sweep", "model": model_name, "seed": seed}
    with mlflow_run(experiment=experiment_name(params), run_name=f"protocols/{model_name}/seed{seed}",
                    tags=tags) as run:
        run.log_metrics(metrics)
        for path in table["path"]:
            run.log_artifact(Path(path), artifact_path=str(Path(path).parent.relative_to(out)))
