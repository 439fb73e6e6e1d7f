"""The study's design, read from params.yaml: which runs exist and where their results land.

The Snakefile asks this module which outputs to build; `hecvl paper` asks it which results to
gather. One definition serves both, so a table can never list a run the DAG did not make.
Paths are relative to the project root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from hecvl.errors import HecvlError
from hecvl.params import resolve_variant

PAIRS = "data/pairs"
FRAMES = "data/frames"
MODELS = "results/models"
EVAL = "results/eval"
ABLATIONS = "results/ablations"
PAPER = "results/paper"
NOISE = "results/noise"
NOISE_DATA = "data/noise"
REFERENCES = ("untrained", "linear_probe")
# The authors' released checkpoints (params.yaml `released:`): key -> the model's published name.
RELEASED_MODELS = {"surgvlp": "SurgVLP", "hecvl": "HecVL", "peskavlp": "PeskaVLP"}
RELEASED_EVAL = f"{EVAL}/released"
RELEASED_SPACE = "joint"  # the released models have one embedding space for every level of text


def expose_cli() -> None:
    """Put this interpreter's scripts folder first on PATH, so that the workflow's rules run the
    `hecvl` installed beside the running Snakemake (`.venv/bin/snakemake` works without activating)."""
    scripts = os.path.dirname(sys.executable)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != scripts:
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


@dataclass(frozen=True)
class Entry:
    """One evaluated result: a row label of a table and the metrics file behind it."""

    label: str
    variant: str
    seed: int
    dataset: str
    space: str
    prompts: str
    path: str


@dataclass(frozen=True)
class EvalJob:
    """What one evaluation process does: one model on every dataset and test-time setting asked of it.

    `model` is a canonical variant (a trained model of `seed`) or a reference (untrained,
    linear_probe); `settings` are "space-prompts" pairs (empty for references, whose folders have
    none). Grouping per model matters on a CPU: starting Python, torch and MLflow costs ten times
    scoring one table cell, and the frame embeddings are shared by every setting.
    """

    model: str
    seed: int
    datasets: tuple[str, ...]
    settings: tuple[str, ...]
    metrics: tuple[str, ...]
    root: str = EVAL  # the results tree (the narration-noise sweep has one per relevance level)
    prefix: str = "evaluate"  # of the rule name

    @property
    def name(self) -> str:
        return f"{self.prefix}_{self.model}_seed{self.seed}"

    @property
    def reference(self) -> bool:
        return self.model in REFERENCES

    @property
    def out_template(self) -> str:
        """The `hecvl evaluate --out` template whose expansions are exactly `metrics`' folders."""
        tail = "/{space}-{prompts}" if self.settings else ""
        return f"{self.root}/{self.model}/seed{self.seed}/{{dataset}}{tail}"


class Study:
    """The design of a study: datasets, seeds, variants (deduplicated) and ablations."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params
        study = params.get("study") or {}
        try:
            self.name: str = study["name"]
            self.datasets: list[str] = list(study["datasets"])
            self.seeds: list[int] = [int(s) for s in study["seeds"]]
            self.ablation_seeds: list[int] = [int(s) for s in study.get("ablation_seeds", self.seeds[:1])]
            self.main: str = study["main_variant"]
            self.baseline: str = study["baseline_variant"]
        except KeyError as exc:
            raise HecvlError(f"params.yaml: missing study.{exc.args[0]}") from None
        self.variants: list[str] = list(params.get("variants") or {})
        defined: dict[str, dict[str, Any]] = dict(params.get("ablations") or {})
        active = study.get("ablations")  # a preset may run a subset (the smoke preset: two)
        unknown = sorted(set(active or []) - set(defined))
        if unknown:
            raise HecvlError(f"params.yaml: study.ablations names undefined ablation(s) {', '.join(unknown)}")
        # every defined ablation is a target of its own (`snakemake ablation_<name>`); the active ones
        # (study.ablations, default: all) are also built by `rule all` and fill the paper's ablation table
        self.defined_ablations = defined
        self.ablations = {n: defined[n] for n in active} if active is not None else defined
        for name in (self.main, self.baseline):
            if name not in self.variants:
                raise HecvlError(f"params.yaml: study variant {name!r} is not defined under variants:")

    # --- pretraining runs -----------------------------------------------------------------
    def resolved(self, variant: str) -> dict[str, Any]:
        return resolve_variant(self.params, variant)

    def training_settings(self, variant: str) -> dict[str, Any]:
        """The resolved settings that decide a pretraining run (model, train, pairing, seed).

        The workflow reruns a pretraining job when these change and only then: adding an ablation or a
        dataset to the study, or changing how a run executes (threads, caches, checkpoint interval),
        must not retrain every model.
        """
        from hecvl.training.settings import OPERATIONAL

        cfg = self.resolved(variant)
        out = {k: cfg.get(k) for k in ("model", "train", "pairing", "seed")}
        out["train"] = {k: v for k, v in (out["train"] or {}).items() if k not in OPERATIONAL}
        return out

    def train_key(self, variant: str) -> str:
        """A hash of what decides a pretraining run; equal keys train identical models."""
        relevant = self.training_settings(variant)
        return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()

    @cached_property
    def _canonical(self) -> dict[str, str]:
        first: dict[str, str] = {}
        for v in self.variants:
            first.setdefault(self.train_key(v), v)
        return {v: first[self.train_key(v)] for v in self.variants}

    def canonical(self, variant: str) -> str:
        """The first variant (in params.yaml order) whose pretraining is identical to `variant`'s."""
        if variant not in self._canonical:
            raise HecvlError(f"params.yaml: unknown variant {variant!r}")
        return self._canonical[variant]

    def model_dir(self, variant: str, seed: int) -> str:
        return f"{MODELS}/{self.canonical(variant)}/seed{seed}"

    # --- evaluations ----------------------------------------------------------------------
    def eval_settings(self, variant: str) -> tuple[str, str]:
        cfg = self.resolved(variant).get("eval") or {}
        return str(cfg.get("space", "ensemble")), str(cfg.get("prompts", "decomposed"))

    def metrics_path(
        self, variant: str, seed: int, dataset: str, space: str | None = None, prompts: str | None = None
    ) -> str:
        if variant in REFERENCES:
            return f"{EVAL}/{variant}/seed{seed}/{dataset}/metrics.json"
        d_space, d_prompts = self.eval_settings(variant)
        return (
            f"{EVAL}/{self.canonical(variant)}/seed{seed}/{dataset}/"
            f"{space or d_space}-{prompts or d_prompts}/metrics.json"
        )

    def entry(
        self,
        label: str,
        variant: str,
        seed: int,
        dataset: str,
        space: str | None = None,
        prompts: str | None = None,
    ) -> Entry:
        d_space, d_prompts = self.eval_settings(self.main if variant in REFERENCES else variant)
        space, prompts = space or d_space, prompts or d_prompts
        path = self.metrics_path(variant, seed, dataset, space, prompts)
        return Entry(label, variant, seed, dataset, space, prompts, path)

    def main_entries(self) -> list[Entry]:
        """Baseline vs HecVL over every seed and dataset: the study's main table."""
        methods = list(dict.fromkeys([self.baseline, self.main]))
        return [self.entry(v, v, s, d) for v in methods for s in self.seeds for d in self.datasets]

    def ablation_entries(self, name: str) -> list[Entry]:
        """The rows of one ablation: its variants x its test-time options (space, prompts) x references."""
        if name not in self.defined_ablations:
            known = ", ".join(sorted(self.defined_ablations)) or "none"
            raise HecvlError(f"params.yaml: unknown ablation {name!r} (known: {known})")
        spec = self.defined_ablations[name] or {}
        seeds = [int(s) for s in spec.get("seeds", self.ablation_seeds)]
        out: list[Entry] = []
        for variant in spec.get("variants", []):
            for space in spec.get("spaces", [None]):
                for prompts in spec.get("prompts", [None]):
                    label = "/".join(str(x) for x in (variant, space, prompts) if x is not None)
                    out += [
                        self.entry(label, variant, s, d, space, prompts) for s in seeds for d in self.datasets
                    ]
        for ref in spec.get("references", []):
            if ref not in REFERENCES:
                raise HecvlError(f"params.yaml: ablation {name!r}: unknown reference {ref!r}")
            out += [self.entry(ref, ref, s, d) for s in seeds for d in self.datasets]
        return out

    # --- the narration-noise sweep ---------------------------------------------------------
    @property
    def noise(self) -> dict[str, Any]:
        """`study.noise`: relevance levels, variants and seeds of the sweep (outside `rule all`)."""
        spec = dict((self.params.get("study") or {}).get("noise") or {})
        spec.setdefault("relevance", [0.25, 0.5, 0.8])
        spec.setdefault("variants", [self.baseline, self.main])
        spec.setdefault("seeds", self.seeds)
        return spec

    @staticmethod
    def noise_world(relevance: float) -> str:
        return f"{NOISE_DATA}/rel{relevance:g}"

    def noise_entries(self) -> list[tuple[float, Entry]]:
        """(relevance, entry) per run of the sweep; entry paths live under results/noise/rel<r>/.

        At the main world's own relevance the sweep's world IS the main world (same generator
        settings, same bytes), so a run the main study already makes is reused, not redone.
        """
        main_paths = {e.path for e in self.all_entries(defined=True)}
        out = []
        for rel in self.noise["relevance"]:
            for variant in self.noise["variants"]:
                space, prompts = self.eval_settings(variant)
                for seed in self.noise["seeds"]:
                    for dataset in self.datasets:
                        path = (
                            f"{NOISE}/rel{float(rel):g}/eval/{self.canonical(variant)}/seed{seed}/"
                            f"{dataset}/{space}-{prompts}/metrics.json"
                        )
                        main = self.metrics_path(variant, int(seed), dataset)
                        if self.is_main_world(float(rel)) and main in main_paths:
                            path = main
                        entry = Entry(variant, variant, int(seed), dataset, space, prompts, path)
                        out.append((float(rel), entry))
        return out

    def is_main_world(self, relevance: float) -> bool:
        """Whether the synthetic world at this narration relevance is the one the main study uses."""
        data = self.params.get("data") or {}
        synthetic = data.get("synthetic") or {}
        main = float(synthetic.get("narration_relevance", 0.5))
        return data.get("source", "synthetic") == "synthetic" and abs(relevance - main) < 1e-9

    # --- the authors' released weights (params.yaml `released:`) ---------------------------------
    def _released_config(self) -> tuple[str | None, dict[str, str | None]]:
        cfg = self.params.get("released") or {}
        if not isinstance(cfg, Mapping):
            raise HecvlError("params.yaml: released: must be a mapping (bert_dir, weights)")
        unknown = sorted(set(cfg) - {"bert_dir", "weights"})
        if unknown:
            raise HecvlError(f"params.yaml: unknown setting(s) released.{', released.'.join(unknown)}")
        weights = cfg.get("weights") or {}
        if not isinstance(weights, Mapping):
            raise HecvlError("params.yaml: released.weights must map model names to .pth files")
        bad = sorted(set(weights) - set(RELEASED_MODELS))
        if bad:
            known = ", ".join(RELEASED_MODELS)
            raise HecvlError(f"params.yaml: released.weights.{bad[0]}: unknown model (known: {known})")
        bert_dir = cfg.get("bert_dir")
        return (str(bert_dir) if bert_dir else None), {k: (str(v) if v else None) for k, v in weights.items()}

    def _released_status(self, root: str | Path) -> dict[str, tuple[str | None, str | None]]:
        """name -> (weights path if usable, else None; why not). Relative paths are under `root`."""
        bert_dir, weights = self._released_config()

        def exists(path: str, folder: bool = False) -> bool:
            p = Path(path) if Path(path).is_absolute() else Path(root) / path
            return p.is_dir() if folder else p.is_file()

        bert_problem = None
        if bert_dir is None:
            bert_problem = "released.bert_dir is not set (a local Bio_ClinicalBERT folder with its vocab.txt)"
        elif not exists(f"{bert_dir}/vocab.txt"):
            bert_problem = f"released.bert_dir {bert_dir} has no vocab.txt"
        out: dict[str, tuple[str | None, str | None]] = {}
        for name in RELEASED_MODELS:
            path = weights.get(name)
            if path is None:
                out[name] = (None, f"released.weights.{name} is not set")
            elif not exists(path):
                out[name] = (None, f"released.weights.{name} = {path} not found")
            elif bert_problem:
                out[name] = (None, bert_problem)
            else:
                out[name] = (path, None)
        return out

    def released_weights(self, root: str | Path = ".") -> dict[str, str]:
        """{model: .pth path as configured} of the released models that are configured and on disk."""
        return {n: path for n, (path, _why) in self._released_status(root).items() if path is not None}

    @property
    def released_bert_dir(self) -> str | None:
        """released.bert_dir as configured (the Bio_ClinicalBERT folder whose vocab.txt is needed)."""
        return self._released_config()[0]

    @staticmethod
    def released_label(name: str) -> str:
        return f"{RELEASED_MODELS[name]} (released weights)"

    def released_path(self, name: str, dataset: str) -> str:
        _space, prompts = self.eval_settings(self.main)
        return f"{RELEASED_EVAL}/{name}/{dataset}/{RELEASED_SPACE}-{prompts}/metrics.json"

    def released_entries(self, root: str | Path = ".") -> list[Entry]:
        """One row per (released model on disk, study dataset), with the main variant's prompts.

        Only what params.yaml names and what exists is listed, so an absent file never becomes a
        DAG target; `released_notes` says what was skipped. The runs are deterministic: seed 0.
        """
        _space, prompts = self.eval_settings(self.main)
        return [
            Entry(
                self.released_label(name),
                f"released_{name}",
                0,
                dataset,
                RELEASED_SPACE,
                prompts,
                self.released_path(name, dataset),
            )
            for name in self.released_weights(root)
            for dataset in self.datasets
        ]

    def released_notes(self, root: str | Path = ".", configured_only: bool = False) -> list[str]:
        """One line per released model that is not evaluated, and why (for protocol.md and the log).

        `configured_only`: only the models whose weights path is set (a misconfiguration to report
        at once, rather than the default of not using released weights at all).
        """
        configured = {n for n, path in self._released_config()[1].items() if path}
        return [
            f"{self.released_label(name)} rows skipped: {why}"
            for name, (path, why) in self._released_status(root).items()
            if path is None and (name in configured or not configured_only)
        ]

    def ablation_table(self, name: str) -> str:
        return f"{ABLATIONS}/{name}.csv"

    def evaluation_jobs(self) -> list[EvalJob]:
        """The study's evaluations grouped per model (and seed): one process each in the workflow.

        A job runs every dataset x setting of its model; the study asks for all of them (an ablation
        covers every study dataset), so the job's outputs are exactly the table cells that need it.
        Ablations outside study.ablations count too: their targets must be buildable on demand.
        """
        return self._group(self.all_entries(defined=True), EVAL, "evaluate")

    def noise_jobs(self) -> list[tuple[float, EvalJob]]:
        """The narration-noise sweep's evaluations, one job per (relevance, model, seed)."""
        out = []
        sweep = [(r, e) for r, e in self.noise_entries() if e.path.startswith(f"{NOISE}/")]  # not reused
        for rel in dict.fromkeys(r for r, _e in sweep):
            entries = [e for r, e in sweep if r == rel]
            tag = f"{rel:g}".replace(".", "p")
            out += [(rel, job) for job in self._group(entries, f"{NOISE}/rel{rel:g}/eval", f"noise_rel{tag}")]
        return out

    def _group(self, entries: list[Entry], root: str, prefix: str) -> list[EvalJob]:
        groups: dict[tuple[str, int], list[Entry]] = {}
        for e in entries:
            model = e.variant if e.variant in REFERENCES else self.canonical(e.variant)
            groups.setdefault((model, e.seed), []).append(e)
        jobs = []
        for (model, seed), group in sorted(groups.items()):
            datasets = tuple(d for d in self.datasets if any(e.dataset == d for e in group))
            reference = model in REFERENCES
            settings = () if reference else tuple(sorted({f"{e.space}-{e.prompts}" for e in group}))
            job = EvalJob(model, seed, datasets, settings, (), root, prefix)
            metrics = tuple(
                job.out_template.replace("{dataset}", d).replace("{space}-{prompts}", s) + "/metrics.json"
                for d in datasets
                for s in (settings or ("",))
            )
            jobs.append(dataclasses.replace(job, metrics=metrics))
        return jobs

    def all_entries(self, defined: bool = False) -> list[Entry]:
        """The main table's and the active ablations' entries (`defined`: every defined ablation's)."""
        ablations = self.defined_ablations if defined else self.ablations
        seen: dict[str, Entry] = {}
        for e in self.main_entries() + [e for a in ablations for e in self.ablation_entries(a)]:
            seen.setdefault(e.path, e)
        return list(seen.values())
