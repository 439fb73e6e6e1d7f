# Shared helpers of the DAG: validated settings, the study design, paths and the MLflow parent run.
# Functions only; the rules live in one file per stage.

import os
import shlex
import sys
from pathlib import Path

from hecvl import layout
from hecvl.config import invocation_config, resolve_invocation, typed_command_line, write_text_once
from hecvl.config.identity import validation_datasets
from hecvl.errors import HecvlError
from hecvl.layout import FRAMES, LOGS, NOISE, PAIRS, PAPER
from hecvl.provenance import DataVersions, adopt_stamps
from hecvl.recovery import clear_stale_locks, remove_debris
from hecvl.released_runs import ReleasedRuns
from hecvl.resources import gpu_cap
from hecvl.study import Study, expose_cli
from hecvl.video.store import StoreSettings

expose_cli()  # rules call the `hecvl` installed beside this Snakemake

# The configuration of this invocation, resolved once (hecvl.config.resolve): params.yaml as the base (also
# when named again by --configfile), its preset, the --configfile overrides in order, then --config.
PARAMS_FILE = "params.yaml"
try:
    P = resolve_invocation(PARAMS_FILE, workflow.config_settings.configfiles,
                           typed_command_line(workflow.config_settings.config))
    STUDY = Study(P)
    RELEASED = ReleasedRuns(P)
except HecvlError as exc:  # one line naming the file and the key, no traceback
    sys.exit(f"hecvl: {exc}")
# Every job reads CONFIG (`--params {params.file}`, from config_file): the file is named by the SHA-256 of
# its text and written when the invocation starts (onstart, after Snakemake holds its lock), so a dry run,
# a refused invocation or another study's settings never change what this one's jobs read.
CONFIG, CONFIG_TEXT = invocation_config(
    P, f"The configuration one Snakemake invocation resolved (preset {P.preset}) and its jobs read.\n"
       "Named by the SHA-256 of this text; a job refuses the file if the text changed.")
# Data versions by content (hecvl.provenance): each rule that reads data has the hash of the part it reads
# as a param, and its data inputs are ancient(): a dvc pull of the same bytes reruns nothing, a change of
# content reruns exactly the rules that read it. Stamps carry a data stage's rerun to its readers.
DATA = DataVersions(P)
STAMP_ACQUIRE = layout.stamp("acquire")
STAMP_PAIR = layout.stamp("pair")
PAIR_FILES = [f"{PAIRS}/{level}.parquet" for level in ("clip", "phase", "video")]
adopt_stamps({STAMP_ACQUIRE: [layout.ACQUIRED], STAMP_PAIR: PAIR_FILES})

# After a kill, the same command runs again unchanged (hecvl.recovery): the lock of a Snakemake that is no
# longer running is cleared here, before Snakemake takes its own; profiles/default reruns incomplete outputs.
if workflow.is_main_process and not workflow.dryrun:
    if _stale := clear_stale_locks():
        print(f"hecvl: cleared {_stale} stale lock(s) of a Snakemake of this folder that is no longer running",
              file=sys.stderr)
    if _debris := remove_debris(["results", "data", "logs"]):
        print(f"hecvl: removed {_debris} temporary folder(s) of writes a killed job left", file=sys.stderr)
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
    store_key=r"[A-Za-z0-9_.\-]+",
    lecture=r"[^/]+",


def config_file(wildcards, input):
    """This invocation's configuration file. A function of the input, so Snakemake does not track it as a
    param: which jobs rerun is decided by the settings each rule declares, not by the file's name."""
    return CONFIG


def acquired(*parts):
    """The data inputs of a reader of acquired data: the inventory (ancient, so times never count),
    acquire's stamp (its rerun reaches the reader), and with `data.source: local` the user's own files of
    `parts` ("corpus" or a dataset name), which no rule makes, also ancient."""
    out = [ancient(layout.ACQUIRED), STAMP_ACQUIRE]
    if P.data.source == "local":
        own = [p for p in parts if p != "corpus" or P.data.corpus_source is None]  # not a fetched corpus
        out += [ancient(f) for part in own for f in local_files(part)]
    return out


def acquire_settings():
    """What acquire depends on: `data:` less a public corpus's import and download (corpus.smk's jobs), and
    less the synthetic lectures' video settings while none is given (the world they describe is the same)."""
    data = {k: v for k, v in P.data.to_dict().items() if k not in ("corpus_source", "download")}
    if P.data.synthetic.lecture_video.overrides() is None:
        data["synthetic"] = {k: v for k, v in data["synthetic"].items() if k != "lecture_video"}
    return data


def released_data(datasets):
    """What released weights are scored on. The synthetic world must be generated first; local datasets are read where they are (no corpus
    needed), their files declared as inputs."""
    if P.data.source == "synthetic":
        return acquired()
    return [ancient(f) for d in datasets for f in local_files(d)]


_LOCAL_FILES = {}


def local_files(part):
    """The files of a part of the user's data (listed once per invocation; the DAG never changes them)."""
    if part not in _LOCAL_FILES:
        from hecvl.provenance import corpus_files, dataset_files

        try:
            files = corpus_files(CORPUS) if part == "corpus" else dataset_files(part, P)
        except (HecvlError, OSError):
            files = []  # acquire says what is wrong, naming the file
        _LOCAL_FILES[part] = sorted(str(f) for f in files)
    return _LOCAL_FILES[part]


# --- the training frame store (store.smk): one pack per lecture and store key ----------------------------
def _store_settings(variant):
    """The frame store a variant's pretraining reads (None: train.store.enabled false, frames decoded)."""
    params = STUDY.resolved(variant)
    return StoreSettings.from_params(params) if params.train.store.enabled else None


# every store the study's variants read, by key: the variant whose settings the `store` job resolves
STORE_KEYS = {}
for _variant in STUDY.variants:
    if (_settings := _store_settings(_variant)) is not None:
        STORE_KEYS.setdefault(_settings.key(), _variant)
STORE_ROOT = P.train.store.root or layout.STORE


def corpus_lectures():
    """The corpus's lecture folders that hold a video, known once the data is acquired (acquire is a
    checkpoint; a public corpus's lectures whose video could not be fetched are left out, as pairing does)."""
    from hecvl.corpora.corpus import find_video, lecture_dirs

    checkpoints.acquire.get()
    return [d.name for d in lecture_dirs(CORPUS) if find_video(d)[0] is not None]


def lecture_video(lecture):
    """The video file of one lecture folder of the corpus: all its pack is made of (its texts are not)."""
    from hecvl.corpora.corpus import find_video

    return [str(v)] if (v := find_video(Path(CORPUS) / lecture)[0]) is not None else []


def store_packs(variant):
    """The packs a variant's pretraining reads: every lecture's, in its store (none when the store is off)."""
    settings = _store_settings(variant)
    if settings is None:
        return []
    return [layout.store_pack(settings.key(), lecture, STORE_ROOT) for lecture in corpus_lectures()]


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
        # the cells the build reads through the ablations (the untrained and linear-probe references too)
        "ablation_cells": sorted({p for a in STUDY.ablations for p in paths(STUDY.ablation_entries(a))}),
        "losses": sorted({f"{STUDY.model_dir(e.variant, e.seed)}/{layout.LOSSES}" for e in main}),
        "validation": [f"{STUDY.model_dir(v, s)}/{layout.VALIDATION}" for v, s in STUDY.trained_models()],
        "pairs": f"{PAIRS}/{layout.PAIR_STATS}",
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
    return [f"{model_dir(model, job.seed)}/{layout.WEIGHTS}"]


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

    write_text_once(CONFIG, CONFIG_TEXT)  # content-addressed: the same settings, the same file
    write_text_once(layout.RESOLVED, f"# a copy of {CONFIG}, the last invocation that started (DVC reads it)\n"
                    + CONFIG_TEXT)

    # the parent run is named after the invocation's targets: `snakemake`, `snakemake protocol_sensitivity`
    targets = sorted(getattr(workflow.dag_settings, "targets", None) or [])
    tracking.begin_invocation(STUDY.name, " ".join(["snakemake", *targets]))


onsuccess:
    from hecvl import tracking

    tracking.end_invocation("FINISHED")


onerror:
    from hecvl import tracking

    tracking.end_invocation("FAILED")
