# Shared helpers of the DAG: validated settings, the study design, paths and the MLflow parent run.
# Functions only; the rules live in one file per stage.

import os
import shlex

from hecvl.params import resolve_variant, with_preset
from hecvl.study import ABLATIONS, expose_cli, EVAL, FRAMES, MODELS, NOISE, NOISE_DATA, PAIRS, PAPER, Study


validate(config, "../schemas/params.schema.yaml")
expose_cli()  # rules call the `hecvl` installed beside this Snakemake

P = with_preset(config)  # the active preset (smoke for tests, default for the study) applied
STUDY = Study(P)
PARAMS_FILE = "params.yaml"
CORPUS = P["data"]["corpus"]
MAIN = STUDY.main
LOGS = "logs"
ENV = "../envs/hecvl.yaml"


wildcard_constraints:
    variant=r"[A-Za-z0-9_]+",
    dataset=r"[A-Za-z0-9_]+",
    seed=r"\d+",
    space=r"[a-z]+",
    prompts=r"[a-z_]+",
    ablation=r"[A-Za-z0-9_]+",


def paths(entries):
    return sorted({e.path for e in entries})


def rows(entries):
    """`label=path` arguments: how a table command learns which file is which row."""
    return " ".join(f"{e.label}={e.path}" for e in entries)


def gpus(variant):
    """GPUs one pretraining job uses (train.gpus); more than one launches DDP through torchrun."""
    return int(resolve_variant(P, variant).get("train", {}).get("gpus", 1) or 1)


def launcher(variant):
    n = gpus(variant)
    return f"torchrun --standalone --nproc_per_node {n} -m hecvl.cli" if n > 1 else "hecvl"


def paper_inputs():
    main = STUDY.main_entries()
    return {
        "main": paths(main),
        "predictions": sorted({e.path.replace("metrics.json", "predictions.parquet") for e in main}),
        "ablations": [STUDY.ablation_table(a) for a in STUDY.ablations],
        "losses": sorted({f"{STUDY.model_dir(e.variant, e.seed)}/losses.csv" for e in main}),
        "pairs": f"{PAIRS}/stats.json",
        "released": paths(STUDY.released_entries()),
    }


# --- evaluation jobs (evaluate.smk, noise.smk): one `hecvl evaluate` process per model ---------
def evaluate_arguments(job, model_dir=STUDY.model_dir):
    """The `hecvl evaluate` arguments of one evaluation job (everything but --params).

    `model_dir(variant, seed)`: where the job's trained weights are (the noise sweep has its own).
    """
    if job.model == "untrained":
        who = f"--untrained --seed {job.seed} --variant {MAIN}"
    elif job.model == "linear_probe":
        who = f"--weights {model_dir(MAIN, job.seed)} --linear-probe --seed {job.seed} --variant {MAIN}"
    else:
        who = f"--weights {model_dir(job.model, job.seed)} --variant {job.model}"
    settings = " ".join(f"--setting {s}" for s in job.settings)
    return (
        f"{who} --dataset {' '.join(job.datasets)} --split test {settings} "
        f"--out {shlex.quote(job.out_template)}"
    )


def evaluate_weights(job, model_dir=STUDY.model_dir):
    if job.model == "untrained":
        return []
    model = MAIN if job.model == "linear_probe" else job.model
    return [f"{model_dir(model, job.seed)}/model.safetensors"]


def evaluate_predictions(job):
    return [m.replace("metrics.json", "predictions.parquet") for m in job.metrics]


def noise_model_dir(rel):
    return lambda variant, seed: f"{NOISE}/rel{rel:g}/models/{STUDY.canonical(variant)}/seed{seed}"


PAPER_TABLES = [
    f"{PAPER}/{name}.{ext}" for name in ("main_table", "ablation_table") for ext in ("csv", "md", "tex")
] + [f"{PAPER}/protocol.md"]
PAPER_FIGURES = [
    f"{PAPER}/{name}.png"
    for name in ("accuracy_f1", "per_phase_f1", "confusion", "timelines", "training_curves")
]


def paper_outputs():
    return PAPER_TABLES + PAPER_FIGURES


# --- MLflow: one experiment per study, a parent run per Snakemake invocation -------------------
onstart:
    from hecvl import tracking

    tracking.begin_invocation(STUDY.name)


onsuccess:
    from hecvl import tracking

    tracking.end_invocation("FINISHED")


onerror:
    from hecvl import tracking

    tracking.end_invocation("FAILED")
