"""What the results tree is called: every folder and file name of a study, spelled in one place.

The DAG, the stages and the paper build all ask here, so a table can never look for a file under
another name than the rule that makes it. Paths are relative to the project root.
"""

from __future__ import annotations

import re

PAIRS = "data/pairs"
FRAMES = "data/frames"
STORE = "data/store"  # the training frame store: one pack per lecture per store key (hecvl.video.store)
ACQUIRED = "data/acquired.json"
NOISE_DATA = "data/noise"
CONFIG = "results/config"
MODELS = "results/models"
EVAL = "results/eval"
ABLATIONS = "results/ablations"
PAPER = "results/paper"
NOISE = "results/noise"
LOGS = "logs"
RELEASED_EVAL = f"{EVAL}/released"

RESOLVED = f"{CONFIG}/study.yaml"  # the last started invocation's configuration (for DVC)
VERSIONS = "data/versions"  # data stages' stamps, content-hash cache; not in DVC
HASH_CACHE = f"{VERSIONS}/hashes.json"
NOISE_TABLE = f"{NOISE}/narration_noise.csv"
NOISE_FINDINGS = f"{NOISE}/findings.md"
FINDINGS = f"{PAPER}/findings.md"
CORPUS_AVAILABILITY = "results/corpus/availability.md"  # `hecvl corpus report` of a downloaded public corpus
RUN_PROTOCOL_NAME = "run_protocol.md"  # the settings one study used, written beside its tables
RUN_PROTOCOL = f"{PAPER}/{RUN_PROTOCOL_NAME}"
PROTOCOLS = "results/protocols"  # `hecvl evaluate --sensitivity` sweeps, one folder per model and seed
PROTOCOL_SENSITIVITY = [f"{PAPER}/protocol_sensitivity.{ext}" for ext in ("csv", "md", "png")]
WORLD_CHECK = "results/world/check.json"  # `hecvl synth --check` of the synthetic world the study ran on
TRACKING_SPOOL = ".hecvl/tracking-spool"  # MLflow calls a job could not send (hecvl.tracking_spool)

# File names inside the folders above: writers and readers (stages, DAG, paper) name them only here.
WEIGHTS = "model.safetensors"  # a trained model's weights (hecvl.models.export.save_pretrained)
MODEL_CONFIG = "config.json"  # a trained model's resolved params beside its weights (load_pretrained)
TRAIN_CONFIG = "train_config.json"  # a pretraining run's resolved params, schedule and batch sizes
LOSSES = "losses.csv"  # a pretraining run's per-step learning rate, loss terms and gradient norm
VALIDATION = "validation.csv"  # a pretraining run's zero-shot validation during training
SUMMARY = "summary.json"  # a pretraining run's totals: steps, time, final losses
METRICS = "metrics.json"  # an evaluation's scores; written last, so its presence means the cell is complete
PREDICTIONS = "predictions.parquet"  # an evaluation's per-frame predictions, beside its metrics
PROMPTS = "prompts.json"  # the class prompts an evaluation used
CONFUSION = "confusion.png"  # an evaluation's confusion matrix
PAIR_STATS = "stats.json"  # what the pairing stage kept, changed and dropped, beside the pair manifests
PAIR_STATS_FIGURE = "stats.png"  # the same counts drawn, beside PAIR_STATS


def resolved_config(digest: str) -> str:
    """One invocation's resolved configuration, named by the SHA-256 of its text (the file jobs read)."""
    return f"{CONFIG}/study-{digest}.yaml"


RESOLVED_NAME = re.compile(r"study-([0-9a-f]{16})\.yaml")  # the name resolved_config gives


def stamp(stage: str) -> str:
    """The stamp a data stage writes beside its outputs (hecvl.provenance: how readers learn of a rerun)."""
    return f"{VERSIONS}/{stage}.stamp"


def store_pack(key: str, lecture: str, root: str = STORE) -> str:
    """One lecture's pack of the training frame store (its JSON sidecar is `<lecture>.json` beside it);
    `key` names every setting that changes the stored pixels (`StoreSettings.key()`)."""
    return f"{root}/{key}/{lecture}.pack"


def store_sidecar(key: str, lecture: str, root: str = STORE) -> str:
    """The JSON sidecar of `store_pack(key, lecture, root)`: settings, source hash, index, checksums."""
    return f"{root}/{key}/{lecture}.json"


def model_dir(variant: str, seed: int | str, root: str = MODELS) -> str:
    """A trained model's folder (`variant` is the canonical variant of its pretraining run)."""
    return f"{root}/{variant}/seed{seed}"


def eval_dir(model: str, seed: int | str, dataset: str, setting: str | None = None, root: str = EVAL) -> str:
    """An evaluation cell's folder; `setting` is "space-prompts" (None for the reference models)."""
    tail = f"/{setting}" if setting else ""
    return f"{root}/{model}/seed{seed}/{dataset}{tail}"


def metrics(folder: str) -> str:
    return f"{folder}/{METRICS}"


def predictions(metrics_path: str) -> str:
    """The per-frame predictions written beside a metrics file."""
    return metrics_path.replace(METRICS, PREDICTIONS)


def released_dir(name: str, dataset: str, setting: str) -> str:
    return f"{RELEASED_EVAL}/{name}/{dataset}/{setting}"


def protocol_sweep(model: str, seed: int | str) -> str:
    """The sensitivity.csv of one model's protocol sweep (released weights: seed `released`)."""
    return f"{PROTOCOLS}/{model}/seed{seed}/sensitivity.csv"


def ablation_table(name: str) -> str:
    return f"{ABLATIONS}/{name}.csv"


def noise_world(relevance: float | str) -> str:
    """The synthetic world regenerated at one narration relevance (its corpus, manifest and pairs)."""
    return f"{NOISE_DATA}/rel{_rel(relevance)}"


def noise_models(relevance: float | str) -> str:
    return f"{NOISE}/rel{_rel(relevance)}/models"


def noise_eval(relevance: float | str) -> str:
    return f"{NOISE}/rel{_rel(relevance)}/eval"


def _rel(relevance: float | str) -> str:
    return relevance if isinstance(relevance, str) else f"{float(relevance):g}"


_TABLES = ("main_table", "ablation_table")
PAPER_TABLES = [f"{PAPER}/{n}.{ext}" for n in _TABLES for ext in ("csv", "md", "tex")]
PAPER_TABLES += [f"{PAPER}/{n}" for n in ("paired.csv", "paired.md", "convergence.csv", RUN_PROTOCOL_NAME,
                                          "findings.md")]
PAPER_FIGURES = [f"{PAPER}/{n}.png" for n in ("accuracy_f1", "per_phase_f1", "confusion", "timelines",
                                              "convergence")]
