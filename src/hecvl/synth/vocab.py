"""The world's data files (data/*.yaml): anatomy, instruments, phases, language, presets.

Kept as data so a reader can see, and extend, everything the generator knows without reading code.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from typing import Any

import yaml

from hecvl.errors import HecvlError

DATA_FILES = ("world.yaml", "language.yaml", "presets.yaml")


def _data_text(name: str) -> str:
    return resources.files("hecvl.synth").joinpath("data").joinpath(name).read_text(encoding="utf-8")


@functools.cache
def load_data(name: str) -> dict[str, Any]:
    """One data file as a dict (cached: the files are read once per process)."""
    if name not in DATA_FILES:
        raise HecvlError(f"unknown synth data file {name!r}")
    try:
        data = yaml.safe_load(_data_text(name))
    except yaml.YAMLError as exc:
        raise HecvlError(f"not valid YAML: {exc}", f"hecvl/synth/data/{name}") from None
    if not isinstance(data, dict):
        raise HecvlError("expected a mapping at the top level", f"hecvl/synth/data/{name}")
    return data


def world() -> dict[str, Any]:
    return load_data("world.yaml")


def language() -> dict[str, Any]:
    return load_data("language.yaml")


def presets() -> dict[str, Any]:
    return load_data("presets.yaml")


def data_digest() -> str:
    """SHA-256 over the data files: recorded in the manifest so a changed vocabulary is a new world."""
    h = hashlib.sha256()
    for name in DATA_FILES:
        h.update(name.encode())
        h.update(_data_text(name).encode())
    return h.hexdigest()


def procedure_phases(procedure: str) -> list[str]:
    """The class names of a procedure family, in the target dataset's id order."""
    try:
        return [p["name"] for p in world()["procedures"][procedure]["phases"]]
    except KeyError:
        raise HecvlError(f"unknown procedure {procedure!r}") from None
