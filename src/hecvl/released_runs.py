"""The authors' released weights in a study (params.yaml `released:`): which are on disk and where they land.

Only what the configuration names and what exists is listed, so an absent file never becomes a DAG
target; `notes` says what was skipped and why. The runs are deterministic: seed 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hecvl import layout
from hecvl.config import RELEASED_MODELS, coerce_params

RELEASED_SPACE = "joint"  # the released models have one embedding space for every level of text


class ReleasedRuns:
    """The released models of a study: their files, their rows and why any is skipped."""

    def __init__(self, params: Any) -> None:
        self.params = coerce_params(params)
        self.bert_dir: str | None = self.params.released.bert_dir
        self.configured: dict[str, str | None] = self.params.released.weights.to_dict()
        main = self.params.variant(self.params.study.main_variant) if self.params.variants else self.params
        self.prompts: str = main.eval.prompts  # the main variant's prompts: rows comparable to the main table

    def _status(self, root: str | Path) -> dict[str, tuple[str | None, str | None]]:
        """name -> (weights path if usable, else None; why not). Relative paths are under `root`."""

        def exists(path: str, folder: bool = False) -> bool:
            p = Path(path) if Path(path).is_absolute() else Path(root) / path
            return p.is_dir() if folder else p.is_file()

        bert_problem = None
        if self.bert_dir is None:
            bert_problem = "released.bert_dir is not set (a local Bio_ClinicalBERT folder with its vocab.txt)"
        elif not exists(f"{self.bert_dir}/vocab.txt"):
            bert_problem = f"released.bert_dir {self.bert_dir} has no vocab.txt"
        out: dict[str, tuple[str | None, str | None]] = {}
        for name in RELEASED_MODELS:
            path = self.configured.get(name)
            if path is None:
                out[name] = (None, f"released.weights.{name} is not set")
            elif not exists(path):
                out[name] = (None, f"released.weights.{name} = {path} not found")
            elif bert_problem:
                out[name] = (None, bert_problem)
            else:
                out[name] = (path, None)
        return out

    def weights(self, root: str | Path = ".") -> dict[str, str]:
        """{model: .pth path as configured} of the released models that are configured and on disk."""
        return {n: path for n, (path, _why) in self._status(root).items() if path is not None}

    @staticmethod
    def label(name: str) -> str:
        return f"{RELEASED_MODELS[name]} (released weights)"

    def path(self, name: str, dataset: str) -> str:
        return layout.metrics(layout.released_dir(name, dataset, f"{RELEASED_SPACE}-{self.prompts}"))

    def entries(self, root: str | Path = ".") -> list[Any]:
        """One row per (released model on disk, study dataset), with the main variant's prompts."""
        from hecvl.study import Entry

        return [
            Entry(self.label(name), f"released_{name}", 0, dataset, RELEASED_SPACE, self.prompts,
                  self.path(name, dataset))
            for name in self.weights(root)
            for dataset in self.params.study.datasets
        ]

    def notes(self, root: str | Path = ".", configured_only: bool = False) -> list[str]:
        """One line per released model that is not evaluated, and why (for run_protocol.md and the log).

        `configured_only`: only the models whose weights path is set (a misconfiguration to report at
        once, rather than the default of not using released weights at all).
        """
        configured = {n for n, path in self.configured.items() if path}
        return [
            f"{self.label(name)} rows skipped: {why}"
            for name, (path, why) in self._status(root).items()
            if path is None and (name in configured or not configured_only)
        ]
