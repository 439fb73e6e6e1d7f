"""The study's design, read from the configuration: which runs exist and where their results land.

The Snakefile asks this module which outputs to build; `hecvl paper` asks it which results to
gather. One definition serves both, so a table can never list a run the DAG did not make.
Paths come from `hecvl.layout`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from hecvl import layout
from hecvl.config import REFERENCES, Params, coerce_params, run_key, training_settings
from hecvl.errors import HecvlError


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
    root: str = layout.EVAL  # the results tree (the narration-noise sweep has one per relevance level)
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
        setting = "{space}-{prompts}" if self.settings else None
        return layout.eval_dir(self.model, self.seed, "{dataset}", setting, self.root)


class Study:
    """The design of a study: datasets, seeds, variants (deduplicated) and ablations."""

    def __init__(self, params: Params | Any) -> None:
        self.params: Params = coerce_params(params)
        study = self.params.study
        self.name: str = study.name
        self.datasets: list[str] = list(study.datasets)
        self.seeds: list[int] = list(study.seeds)
        self.ablation_seeds: list[int] = list(study.ablation_seed_list())
        self.main: str = study.main_variant
        self.baseline: str = study.baseline_variant
        self.variants: list[str] = list(self.params.variants)
        for name in (self.main, self.baseline):
            if name not in self.variants:
                raise HecvlError(f"params.yaml: study variant {name!r} is not defined under variants:")
        missing = [d for d in self.datasets if d not in self.params.data.targets]
        if missing:
            raise HecvlError(f"params.yaml: study.datasets names {missing[0]!r}, not under data.targets")
        for variant in self.variants:  # a file the jobs would only miss when they start
            prompt_file = self.resolved(variant).eval.prompt_file
            if prompt_file is not None and not Path(prompt_file).is_file():
                raise HecvlError(f"params.yaml: variant {variant}: eval.prompt_file {prompt_file} not found")
        # every defined ablation is a target of its own (`snakemake ablation_<name>`); the active ones
        # (study.ablations, default: all) are also built by `rule all` and fill the paper's ablation table
        self.defined_ablations = dict(self.params.ablations)
        active = study.ablations
        self.ablations = self.defined_ablations
        if active is not None:
            self.ablations = {n: self.defined_ablations[n] for n in active}

    # --- pretraining runs -----------------------------------------------------------------
    def resolved(self, variant: str) -> Params:
        return self.params.variant(variant)

    def training_settings(self, variant: str) -> dict[str, Any]:
        """What decides `variant`'s pretraining run (the workflow reruns a pretrain job when it changes)."""
        return training_settings(self.resolved(variant))

    def train_key(self, variant: str) -> str:
        return run_key(self.resolved(variant))

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
        return layout.model_dir(self.canonical(variant), seed)

    # --- evaluations ----------------------------------------------------------------------
    def eval_settings(self, variant: str) -> tuple[str, str]:
        cfg = self.resolved(variant).eval
        return cfg.space, cfg.prompts

    def metrics_path(
        self, variant: str, seed: int, dataset: str, space: str | None = None, prompts: str | None = None
    ) -> str:
        if variant in REFERENCES:
            return layout.metrics(layout.eval_dir(variant, seed, dataset))
        d_space, d_prompts = self.eval_settings(variant)
        setting = f"{space or d_space}-{prompts or d_prompts}"
        return layout.metrics(layout.eval_dir(self.canonical(variant), seed, dataset, setting))

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
        spec = self.defined_ablations[name]
        seeds = list(spec.seed_list(self.params.study))
        out: list[Entry] = []
        for variant in spec.variants:
            for space in spec.spaces or [None]:
                for prompts in spec.prompts or [None]:
                    label = "/".join(str(x) for x in (variant, space, prompts) if x is not None)
                    out += [
                        self.entry(label, variant, s, d, space, prompts) for s in seeds for d in self.datasets
                    ]
        for ref in spec.references:
            out += [self.entry(ref, ref, s, d) for s in seeds for d in self.datasets]
        return out

    # --- the narration-noise sweep ---------------------------------------------------------
    @property
    def noise(self) -> dict[str, Any]:
        """`study.noise` with its defaults resolved: relevance levels, variants and seeds of the sweep."""
        spec = self.params.study.noise
        return {
            "relevance": [float(r) for r in spec.relevance],
            "variants": list(spec.variants if spec.variants is not None else [self.baseline, self.main]),
            "seeds": list(spec.seeds if spec.seeds is not None else self.seeds),
        }

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
                        folder = layout.eval_dir(self.canonical(variant), seed, dataset,
                                                 f"{space}-{prompts}", layout.noise_eval(rel))
                        path = layout.metrics(folder)
                        main = self.metrics_path(variant, int(seed), dataset)
                        if self.is_main_world(float(rel)) and main in main_paths:
                            path = main
                        entry = Entry(variant, variant, int(seed), dataset, space, prompts, path)
                        out.append((float(rel), entry))
        return out

    def is_main_world(self, relevance: float) -> bool:
        """Whether the synthetic world at this narration relevance is the one the main study uses."""
        data = self.params.data
        return data.source == "synthetic" and abs(relevance - data.synthetic.narration_relevance) < 1e-9

    @staticmethod
    def ablation_table(name: str) -> str:
        return layout.ablation_table(name)

    def evaluation_jobs(self) -> list[EvalJob]:
        """The study's evaluations grouped per model (and seed): one process each in the workflow.

        A job runs every dataset x setting of its model; the study asks for all of them (an ablation
        covers every study dataset), so the job's outputs are exactly the table cells that need it.
        Ablations outside study.ablations count too: their targets must be buildable on demand.
        """
        return self._group(self.all_entries(defined=True), layout.EVAL, "evaluate")

    def noise_jobs(self) -> list[tuple[float, EvalJob]]:
        """The narration-noise sweep's evaluations, one job per (relevance, model, seed)."""
        out = []
        # the runs the main study does not already make
        sweep = [(r, e) for r, e in self.noise_entries() if e.path.startswith(f"{layout.NOISE}/")]
        for rel in dict.fromkeys(r for r, _e in sweep):
            entries = [e for r, e in sweep if r == rel]
            tag = f"{rel:g}".replace(".", "p")
            out += [(rel, job) for job in self._group(entries, layout.noise_eval(rel), f"noise_rel{tag}")]
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
                layout.metrics(layout.eval_dir(model, seed, d, s or None, root))
                for d in datasets
                for s in (settings or ("",))
            )
            jobs.append(dataclasses.replace(job, metrics=metrics))
        return jobs

    def trained_models(self) -> list[tuple[str, int]]:
        """(canonical variant, seed) of every pretraining run the study's tables read, main runs first."""
        entries = [e for e in self.all_entries() if e.variant not in REFERENCES]
        runs = [(self.canonical(e.variant), e.seed) for e in entries]
        return list(dict.fromkeys(runs))

    def all_entries(self, defined: bool = False) -> list[Entry]:
        """The main table's and the active ablations' entries (`defined`: every defined ablation's)."""
        ablations = self.defined_ablations if defined else self.ablations
        seen: dict[str, Entry] = {}
        for e in self.main_entries() + [e for a in ablations for e in self.ablation_entries(a)]:
            seen.setdefault(e.path, e)
        return list(seen.values())
