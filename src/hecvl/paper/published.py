"""The published numbers of method.md §8, as data (published.yaml) rather than as literals in code.

Why a data file: the reference rows of every table come from one place that states its source, and a
reader can check each number against the paper without reading Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hecvl.errors import HecvlError

AVERAGE = "average"

# How the papers write the datasets' names (tables and figures use these).
DATASET_TITLES = {
    "cholec80": "Cholec80",
    "autolaparo": "AutoLaparo",
    "strasbypass70": "StrasBypass70",
    "bernbypass70": "BernBypass70",
    AVERAGE: "average",
}


def dataset_title(name: str) -> str:
    """The paper's spelling of a dataset name (unknown names are shown as given)."""
    return DATASET_TITLES.get(name, name)


@dataclass(frozen=True)
class PublishedTable:
    """A published results table: tidy rows (method, note, dataset, accuracy, f1) and their source."""

    id: str
    label: str
    short_source: str
    source: str
    data: str
    datasets: list[str]
    average_note: str
    rows: pd.DataFrame = field(repr=False)
    other_reports: pd.DataFrame = field(repr=False)
    supervised_accuracy: dict[str, float] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(self.rows["method"]))


def default_path() -> Path:
    return Path(str(resources.files("hecvl.paper") / "published.yaml"))


def load_published(path: str | Path | None = None) -> PublishedTable:
    """Read and check published.yaml; a malformed file is a HecvlError naming it."""
    path = Path(path) if path is not None else default_path()
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        table = doc["table"]
        datasets = [str(d) for d in table["datasets"]]
        rows = _tidy(table["methods"], [*datasets, AVERAGE], path, require_all=True)
        others = _tidy(doc.get("other_reports") or [], datasets, path, require_all=False)
        published = PublishedTable(
            id=str(table["id"]),
            label=str(table["label"]),
            short_source=str(table["short_source"]),
            source=" ".join(str(table["source"]).split()),
            data=str(table["data"]),
            datasets=datasets,
            average_note=" ".join(str(table.get("average_note", "")).split()),
            rows=rows,
            other_reports=others,
            supervised_accuracy={str(k): float(v) for k, v in (doc.get("supervised_accuracy") or {}).items()},
        )
    except OSError as exc:
        raise HecvlError(f"cannot read the published results: {exc}", path) from None
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise HecvlError(f"malformed published results ({type(exc).__name__}: {exc})", path) from None
    _check_averages(published, path)
    return published


def _tidy(methods: list[dict[str, Any]], datasets: list[str], path: Path, require_all: bool) -> pd.DataFrame:
    records = []
    for m in methods:
        results = m["results"]
        unknown = set(results) - set(datasets)
        if unknown or (require_all and set(results) != set(datasets)):
            raise HecvlError(f"{m['method']}: results for {sorted(results)}, expected {datasets}", path)
        for ds in datasets:
            if ds not in results:
                continue
            acc, f1 = (float(x) for x in results[ds])
            if not (0.0 <= acc <= 100.0 and 0.0 <= f1 <= 100.0):
                raise HecvlError(f"{m['method']} {ds}: values must be percentages, got {acc}, {f1}", path)
            records.append(
                {
                    "method": str(m["method"]),
                    "note": str(m.get("note", "")),
                    "source": " ".join(str(m.get("source", "")).split()),
                    "dataset": ds,
                    "accuracy": acc,
                    "f1": f1,
                }
            )
    return pd.DataFrame(records, columns=["method", "note", "source", "dataset", "accuracy", "f1"])


def _check_averages(table: PublishedTable, path: Path) -> None:
    """A transcription slip shows up as an average far from the mean of the datasets (rounding: <= 0.2)."""
    rows = table.rows
    for method, g in rows.groupby("method", sort=False):
        per = g[g["dataset"] != AVERAGE]
        avg = g[g["dataset"] == AVERAGE].iloc[0]
        for metric in ("accuracy", "f1"):
            if abs(per[metric].mean() - avg[metric]) > 0.2:
                raise HecvlError(
                    f"{method}: published {metric} average {avg[metric]} is not the mean of its datasets "
                    f"({per[metric].mean():.2f}): check the transcription",
                    path,
                )
