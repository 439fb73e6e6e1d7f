"""A small but complete results tree for the paper tests, made by the project's own code.

params.yaml is the project's, with a two-dataset, two-seed study and three small ablations. Every
metrics.json is computed by EVAL's `align` + `score_predictions` from constructed 1 fps predictions
(better variants make fewer mistakes), predictions.parquet has the columns `hecvl evaluate` writes,
and losses.csv follows the trainer's layout over the variant's real schedule (`build_schedule`).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from hecvl.config import TrainSettings, load_params, read_yaml
from hecvl.datasets.classes import CLASSES
from hecvl.evaluation.metrics import align, score_predictions
from hecvl.io import write_csv, write_json, write_parquet
from hecvl.layout import PAIRS, WORLD_CHECK
from hecvl.study import Study
from hecvl.training.schedules import build_schedule

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"cholec80": "cholec80", "strasbypass70": "multibypass140"}
VIDEOS = {"cholec80": ["video49", "video50", "video51"], "strasbypass70": ["SBP01", "SBP02", "SBP03"]}
ERROR_RATE = {"hecvl": 0.25, "clip_only": 0.5, "shared_heads": 0.35, "untrained": 0.85, "linear_probe": 0.15}
STEPS = 40


PROTOCOL_HASH = "0123456789ab"  # what a metrics file scored under the study protocol records


def study_params() -> dict[str, Any]:
    """The project's params.yaml with a small study: 2 datasets, 2 seeds, three ablations."""
    params = read_yaml(ROOT / "params.yaml")
    params["preset"] = "default"
    params["study"].update(seeds=[0, 1], ablation_seeds=[0], datasets=list(DATASETS))
    params["ablations"] = {
        "heads": {"variants": ["hecvl", "shared_heads"], "seeds": [0, 1]},
        "space": {"variants": ["hecvl"], "spaces": ["clip", "ensemble"]},
        "references": {"references": ["untrained", "linear_probe"], "seeds": "ablation"},
    }
    params["study"]["ablations"] = list(params["ablations"])
    for preset in (params.get("presets") or {}).values():  # every preset is validated: keep them to these
        chosen = (preset or {}).get("study", {}).get("ablations")
        if chosen is not None:
            preset["study"]["ablations"] = [a for a in chosen if a in params["ablations"]]
    params.setdefault("train", {})["steps"] = STEPS  # params.yaml keeps the defaults in hecvl.config
    params["train"]["validation"] = {"every": 8}
    return params


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


def video_frames(dataset: str, video: str, error_rate: float, rng: np.random.Generator) -> tuple:
    """(labels, predictions) of one video: phases in blocks; unlabelled edges for MultiBypass140."""
    k = len(CLASSES[DATASETS[dataset]])
    t = 50 + 7 * VIDEOS[dataset].index(video)
    phases = np.sort(_rng(dataset, video).choice(k, size=min(k, 5), replace=False))
    gt = phases[np.minimum(np.arange(t) * len(phases) // t, len(phases) - 1)]
    labelled = np.ones(t, bool)
    if DATASETS[dataset] == "multibypass140":
        labelled[:3] = labelled[-2:] = False  # seconds outside any phase segment are dropped (protocol §5)
    wrong = rng.random(t) < error_rate
    pred = np.where(wrong, rng.integers(0, k, t), gt)
    scores = rng.normal(0, 0.1, (t, k)).astype(np.float32)
    scores[np.arange(t), pred] += 1.0
    secs = np.arange(t)
    labels = pd.DataFrame({"video": video, "frame_sec": secs[labelled], "phase_id": gt[labelled]})
    table = pd.DataFrame({"video": video, "frame_sec": secs, "phase_id": pred})
    table["gt_phase_id"] = pd.array(np.where(labelled, gt, 0), dtype="Int64")
    table.loc[~labelled, "gt_phase_id"] = pd.NA
    for c in range(k):
        table[f"score_{c}"] = scores[:, c]
    return labels, table


def write_evaluation(root: Path, entry, seed_offset: float = 0.0) -> dict[str, Any]:
    """metrics.json + predictions.parquet of one entry, scored by EVAL's metrics code."""
    classes = CLASSES[DATASETS[entry.dataset]]
    rate = ERROR_RATE.get(entry.variant, 0.6) + 0.05 * entry.seed + seed_offset
    if entry.space == "clip":
        rate += 0.1
    rng = _rng(entry.label, entry.variant, entry.seed, entry.dataset, entry.space, entry.prompts)
    parts = [video_frames(entry.dataset, v, rate, rng) for v in VIDEOS[entry.dataset]]
    labels = pd.concat([p[0] for p in parts], ignore_index=True)
    predictions = pd.concat([p[1] for p in parts], ignore_index=True)
    frames, info = align(labels, predictions[["video", "frame_sec", "phase_id"]], pred_source="predictions")
    metrics = {"protocol": "hecvl", "protocol_version": 1, "protocol_hash": PROTOCOL_HASH}
    metrics.update(score_predictions(frames, class_names=classes))
    metrics.update(info)
    metrics["run"] = {
        "dataset": entry.dataset,
        "split": "test",
        "space": entry.space,
        "prompts": entry.prompts,
        "method": entry.variant if entry.variant in ("untrained", "linear_probe") else "zeroshot",
        "variant": entry.variant,
        "prompt_file": f"/installed/prompts/{DATASETS[entry.dataset]}.yaml",
        "prompt_sha256": "0123456789abcdef" * 4,
        "prompt_version": 1,
        "truncated_prompts": 0,
        "videos": VIDEOS[entry.dataset],
    }
    out = root / entry.path
    write_parquet(out.with_name("predictions.parquet"), predictions)
    write_json(out, metrics)
    return metrics


def write_losses(path: Path, train_cfg: TrainSettings, seed: int) -> pd.DataFrame:
    """losses.csv as the trainer writes it: step, levels, lr, loss, grad_norm, then sorted loss terms."""
    schedule = build_schedule(train_cfg, STEPS)
    rng = _rng("losses", path, seed)
    rows = []
    for step in range(STEPS):
        levels = schedule.levels_at(step)
        row: dict[str, Any] = {"step": step + 1, "levels": "+".join(levels), "lr": 1e-3, "grad_norm": 1.0}
        total = 0.0
        for i, lvl in enumerate(levels):
            value = 2.0 + i + 2.0 * np.exp(-step / 15) + 0.05 * rng.standard_normal()
            row[f"{lvl}/video_text"] = value
            row[f"{lvl}/total"] = value
            total += value
        row["loss"] = total
        rows.append(row)
    head = ["step", "levels", "lr", "loss", "grad_norm"]
    terms = sorted({k for r in rows for k in r} - set(head))
    df = pd.DataFrame(rows, columns=head + terms)
    write_csv(path, df)
    return df


def write_validation(path: Path, params: Any, variant: str, seed: int) -> pd.DataFrame:
    """validation.csv as the trainer writes it: step 0, every train.validation.every steps and the last,
    per dataset and trained space (plus ensemble); accuracy rises to a plateau set by ERROR_RATE."""
    from hecvl.evaluation.validation import COLUMNS, validation_spaces

    train = params.train
    every = train.validation.every
    steps = sorted({0, *range(every, train.steps + 1, every), train.steps})
    rng = _rng("validation", path, seed)
    ceiling = 100 * (1 - ERROR_RATE.get(variant, 0.4))
    rows = []
    for step in steps:
        for dataset in params.study.datasets:
            for space in validation_spaces(train.trained_levels):
                acc = 15 + (ceiling - 15) * (1 - np.exp(-step / 8)) + rng.normal(0, 0.3)
                rows.append({"step": step, "dataset": dataset, "split": "val", "space": space,
                             "prompts": params.eval.prompts, "accuracy": round(acc, 3),
                             "f1": round(0.8 * acc, 3)})
    df = pd.DataFrame(rows, columns=COLUMNS)
    write_csv(path, df)
    return df


def make_results_tree(root: Path) -> Study:
    """params.yaml, every evaluation of the study, the main runs' losses and the pair statistics."""
    params = study_params()
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    study = Study(load_params(root / "params.yaml"))
    for entry in study.all_entries():
        write_evaluation(root, entry)
    for e in study.main_entries():
        path = root / study.model_dir(e.variant, e.seed) / "losses.csv"
        if not path.is_file():
            write_losses(path, study.resolved(e.variant).train, e.seed)
    for variant, seed in study.trained_models():
        write_validation(root / study.model_dir(variant, seed) / "validation.csv", study.resolved(variant),
                         variant, seed)
    write_json(
        root / PAIRS / "stats.json",
        {
            "corpus": "data/world/corpus",
            "lectures": {"found": 4, "used": 4, "excluded": []},
            "levels": {"clip": {"pairs": 120}, "phase": {"pairs": 30}, "video": {"pairs": 4}},
        },
    )
    write_world_check(root / WORLD_CHECK)
    return study


def write_world_check(path: Path, strasbypass70_probe: float = 58.5) -> None:
    """The parts of `hecvl synth --check`'s report that the findings read (rule world_check)."""
    datasets = {"cholec80": {"chance": 14.29, "probe": {"accuracy": 71.5, "f1": 64.5}},
                "strasbypass70": {"chance": 9.09, "probe": {"accuracy": strasbypass70_probe, "f1": 50.0}}}
    write_json(path, {"datasets": datasets, "criteria": {
        "probe_at_least_60": {n: d["probe"]["accuracy"] >= 60 for n, d in datasets.items()},
        "tool_tips_at_least_2px": {"hook": True, "grasper": True},
        "narration_near_configured": True,
    }})


def ablation_rows(study: Study, name: str) -> list[str]:
    """The `LABEL=PATH` arguments the Snakefile passes (workflow/rules/common.smk `rows`)."""
    return [f"{e.label}={e.path}" for e in study.ablation_entries(name)]


def run_cli(argv: list[str]) -> int:
    from hecvl.cli import main

    return main(argv)


def build_tree(root: Path) -> Study:
    """The results tree, every ablation's CSV through `hecvl paper table`, then `hecvl paper build`."""
    study = make_results_tree(root)
    params = str(root / "params.yaml")
    for name in study.ablations:
        out = str(root / study.ablation_table(name))
        argv = ["paper", "table", "--params", params, "--name", name, "--out", out, "--root", str(root)]
        assert run_cli([*argv, *ablation_rows(study, name)]) == 0
    out = str(root / "results" / "paper")
    assert run_cli(["paper", "build", "--params", params, "--out", out, "--root", str(root)]) == 0
    return study


_SHARED: dict[str, tuple[Path, Study]] = {}


def shared_tree(factory: pytest.TempPathFactory) -> tuple[Path, Study]:
    """One built tree for all paper test modules (read-only for them; built once per session)."""
    if "tree" not in _SHARED:
        root = factory.mktemp("paper_tree")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HECVL_TRACKING", "off")
            _SHARED["tree"] = (root, build_tree(root))
    return _SHARED["tree"]


def findings_structure(text: str) -> list[str]:
    """The skeleton of a findings text: headings, bold leads and the paired table's header (the
    datasets and numbers differ between studies)."""
    keep = ("#", "**", "| method", "| dataset")
    return [re.sub(r"\|.*", "|", line.split(":")[0]) for line in text.splitlines() if line.startswith(keep)]
