# Shared helpers of the DAG: validated settings, the study design, paths and the MLflow parent run.
# Functions only; the rules live in one file per stage.

import os
import shlex
import sys

from hecvl import layout
from hecvl.config import read_yaml, resolve, typed_command_line, write_resolved
from hecvl.config.identity import validation_datasets
from hecvl.errors import HecvlError
from hecvl.layout import FRAMES, LOGS, NOISE, PAIRS, PAPER
from hecvl.released_runs import ReleasedRuns
from hecvl.resources import gpu_cap
from hecvl.study import Study, expose_cli

expose_cli()  # rules call the `hecvl` installed beside this Snakemake

# The configuration, resolved once: params.yaml, its active preset, then --configfile / --config (which
# beat the preset). Every job reads the file written here, so what this DAG says is what the jobs run.
PARAMS_FILE = "params.yaml"
try:
    _overrides = [read_yaml(f) for f in workflow.config_settings.configfiles]
    _overrides.append(typed_command_line(workflow.config_settings.config))
    P = resolve(read_yaml(PARAMS_FILE), PARAMS_FILE, _overrides, "--configfile/--config")
    STUDY = Study(P)
    RELEASED = ReleasedRuns(P)
except HecvlError as exc:  # one line naming the file and the key, no traceback
    sys.exit(f"hecvl: {exc}")
RESOLVED = layout.RESOLVED
write_resolved(P, RESOLVED, f"resolved by the DAG from {PARAMS_FILE}, preset {P.preset}, with the "
               "command line's overrides; what every job reads")
CORPUS = P.data.corpus
MAIN = STUDY.main
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
    return STUDY.resolved(variant).train.gpus


# GPUs: the profile's `resources: gpu=N` caps every job's request (workflow/profiles/slurm-local: gpu=0, a
# cluster without GPUs, which refuses a --gpus it cannot give), also in jobs that read this workflow again
# on a cluster node (hecvl.resources: the cap travels in HECVL_MAX_GPUS).
_gpus_there = workflow.global_resources.get("gpu")
try:
    MAX_GPUS = gpu_cap(_gpus_there.value if _gpus_there is not None else None)
except HecvlError as _exc:
    sys.exit(f"hecvl: {_exc}")


def gpu_request(n):
    """The GPUs a job asks its executor for: n, capped by the GPUs there are (HECVL_MAX_GPUS)."""
    return n if MAX_GPUS is None else min(n, MAX_GPUS)


def validation_frames(variant):
    """The frame-cache records of the datasets a pretraining run validates on (train.validation)."""
    params = STUDY.resolved(variant)
    if not params.train.validation.every:
        return []
    return [f"{FRAMES}/{d}.json" for d in validation_datasets(params)]


def launcher(variant):
    n = gpus(variant)
    return f"torchrun --standalone --nproc_per_node {n} -m hecvl.cli" if n > 1 else "hecvl"


def paper_inputs():
    main = STUDY.main_entries()
    return {
        "main": paths(main),
        "predictions": sorted({layout.predictions(e.path) for e in main}),
        "ablations": [layout.ablation_table(a) for a in STUDY.ablations],
        "losses": sorted({f"{STUDY.model_dir(e.variant, e.seed)}/losses.csv" for e in main}),
        "validation": [f"{STUDY.model_dir(v, s)}/validation.csv" for v, s in STUDY.trained_models()],
        "pairs": f"{PAIRS}/stats.json",
        "released": paths(RELEASED.entries()),
        "world_check": [layout.WORLD_CHECK] if P.data.source == "synthetic" else [],
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
        f"{who} --dataset {' '.join(job.datasets)} {settings} "
        f"--out {shlex.quote(job.out_template)}"
    )


def evaluate_weights(job, model_dir=STUDY.model_dir):
    if job.model == "untrained":
        return []
    model = MAIN if job.model == "linear_probe" else job.model
    return [f"{model_dir(model, job.seed)}/model.safetensors"]


def evaluate_predictions(job):
    return [layout.predictions(m) for m in job.metrics]


def noise_model_dir(rel):
    return lambda variant, seed: layout.model_dir(STUDY.canonical(variant), seed, layout.noise_models(rel))


PAPER_TABLES = layout.PAPER_TABLES
PAPER_FIGURES = layout.PAPER_FIGURES


def paper_outputs():
    return PAPER_TABLES + PAPER_FIGURES


# --- MLflow: one experiment per study, a parent run per Snakemake invocation -------------------
onstart:
    from hecvl import tracking

    # the parent run is named after the invocation's targets: `snakemake`, `snakemake protocol_sensitivity`
    targets = sorted(getattr(workflow.dag_settings, "targets", None) or [])
    tracking.begin_invocation(STUDY.name, " ".join(["snakemake", *targets]))


onsuccess:
    from hecvl import tracking

    tracking.end_invocation("FINISHED")


onerror:
    from hecvl import tracking

    tracking.end_invocation("FAILED")
