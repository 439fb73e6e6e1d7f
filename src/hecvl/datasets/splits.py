"""Train/val/test splits as lists of video ids: official ones, the datasets' JSON files, and the
MultiBypass140 split pickles (read with the restricted unpickler, never `pickle.load`).

A split file is JSON `{"train": [ids], "test": [ids]}` (optionally "val" or other names); a video in
two splits is an error, because it would leak training data into the test set unnoticed.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hecvl.datasets.classes import check_format
from hecvl.datasets.safe_pickle import load_restricted
from hecvl.errors import HecvlError
from hecvl.io import read_json

SPLIT_ORDER = ("train", "val", "test")
CENTRE_PREFIX: dict[str, str] = {"strasbourg": "SBP", "bern": "BBP"}
# MultiBypass140's published split pickles, per fold k, relative to labels/<centre>/labels_by70_splits/labels.
MULTIBYPASS_PICKLES: dict[str, str] = {
    "train": "train/1fps_100_{fold}.pickle",
    "val": "val/1fps_{fold}.pickle",
    "test": "test/1fps_{fold}.pickle",
}


def check_splits(splits: Any, path: str | Path | None = None) -> dict[str, list[str]]:
    """Validate {split: [video ids]} (strings, no repeats, no video in two splits); return it ordered."""
    if not isinstance(splits, Mapping) or not splits:
        raise HecvlError("expected an object {split name: [video ids]}", path)
    seen: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for name, ids in splits.items():
        if not isinstance(name, str) or not isinstance(ids, list):
            raise HecvlError(f"split {name!r}: expected a list of video ids", path)
        for vid in ids:
            if not isinstance(vid, str) or not vid:
                raise HecvlError(f"split {name!r}: video ids must be non-empty strings, got {vid!r}", path)
            if vid in seen:
                where = "twice" if seen[vid] == name else f"in both {seen[vid]!r} and {name!r}"
                raise HecvlError(f"video {vid} is listed {where}", path)
            seen[vid] = name
        out[name] = list(ids)
    order = [s for s in SPLIT_ORDER if s in out] + sorted(s for s in out if s not in SPLIT_ORDER)
    return {s: out[s] for s in order}


def read_splits_json(path: str | Path) -> dict[str, list[str]]:
    """Read and validate a splits JSON file such as `splits.json` of the dataset layouts."""
    return check_splits(read_json(path, "splits file"), Path(path))


def official_splits(fmt: str) -> dict[str, list[str]]:
    """The official split of Cholec80 or AutoLaparo from the package's `splits_official.yaml`.

    MultiBypass140's folds are not bundled: use `multibypass_official_splits` on the published pickles.
    """
    check_format(fmt)
    source = resources.files("hecvl.datasets").joinpath("splits_official.yaml")
    table = yaml.safe_load(source.read_text(encoding="utf-8"))
    if fmt not in table:
        raise HecvlError(
            f"no bundled official split for {fmt}: its official folds are the published split pickles "
            "(set the target's splits to 'official' with a fold, or run `hecvl labels splits`)"
        )
    return check_splits(table[fmt], str(source))


def read_split_pickle(path: str | Path) -> list[str]:
    """Video ids of one MultiBypass140 split pickle ({video id: [per-frame records]}), sorted."""
    data = load_restricted(path)
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise HecvlError("expected a split pickle mapping video ids to their frame records", path)
    bad = [k for k, v in data.items() if not isinstance(v, list | tuple)]
    if bad:
        raise HecvlError(f"video {bad[0]}: expected a list of frame records", path)
    return sorted(data)


def multibypass_pickle_paths(folder: str | Path, fold: int) -> dict[str, Path]:
    """The train/val/test pickles of one fold under a `labels_by70_splits` folder (or its `labels/`)."""
    folder = Path(folder)
    if not isinstance(fold, int) or isinstance(fold, bool) or fold < 0:
        raise HecvlError(f"fold must be a non-negative integer, got {fold!r}")
    base = folder / "labels" if (folder / "labels").is_dir() else folder
    if not base.is_dir():
        raise HecvlError("MultiBypass140 split folder not found", folder)
    paths = {split: base / rel.format(fold=fold) for split, rel in MULTIBYPASS_PICKLES.items()}
    for split, path in paths.items():
        if not path.is_file():
            raise HecvlError(f"{split} pickle of fold {fold} not found", path)
    return paths


def multibypass_official_splits(folder: str | Path, fold: int = 0) -> dict[str, list[str]]:
    """{train, val, test: [video ids]} of one official MultiBypass140 fold, from the published pickles."""
    paths = multibypass_pickle_paths(folder, fold)
    return check_splits({split: read_split_pickle(path) for split, path in paths.items()}, folder)


def filter_centre(ids: list[str], centre: str | None) -> list[str]:
    """Keep the MultiBypass140 videos of one centre (`SBPnn` Strasbourg, `BBPnn` Bern); None keeps all."""
    if centre is None:
        return list(ids)
    if centre not in CENTRE_PREFIX:
        raise HecvlError(f"unknown MultiBypass140 centre {centre!r} (known: {', '.join(CENTRE_PREFIX)})")
    return [v for v in ids if v.startswith(CENTRE_PREFIX[centre])]
