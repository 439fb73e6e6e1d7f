"""The study's settings: `params.yaml`, with ablations as named overrides of the main configuration.

Every stage reads its section from the resolved configuration of one variant, so a variant is
exactly "the main configuration plus these changes" and nothing else.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hecvl.errors import HecvlError


def load_params(path: str | Path, apply_preset: bool = True) -> dict[str, Any]:
    """Read params.yaml, with the active preset's overrides applied (see `apply_preset`).

    A missing or malformed file is a clear error naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise HecvlError("parameter file not found", path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise HecvlError(f"not valid YAML: {exc}", path) from None
    if not isinstance(data, dict):
        raise HecvlError("expected a mapping at the top level", path)
    return with_preset(data, path) if apply_preset else data


def with_preset(params: Mapping[str, Any], path: str | Path | None = None) -> dict[str, Any]:
    """Apply `presets[preset]` (e.g. `smoke` for tests, `default` for the study) to the main configuration.

    One file serves Snakemake, DVC and every stage, so switching `preset:` switches them all at once.
    """
    name = params.get("preset")
    presets = params.get("presets") or {}
    base = {k: v for k, v in params.items() if k != "presets"}
    if name is None:
        return copy.deepcopy(base)
    if name not in presets:
        known = ", ".join(sorted(presets)) or "none"
        raise HecvlError(f"unknown preset {name!r} (known: {known})", path)
    return deep_merge(base, presets[name] or {})


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return `base` with `override` merged in; mappings merge recursively, everything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_variant(params: Mapping[str, Any], variant: str | None) -> dict[str, Any]:
    """The main configuration with the named variant's overrides applied.

    `variants: {name: {section: {key: value}}}` in params.yaml; `None` or "main" gives the main one.
    """
    base = {k: v for k, v in params.items() if k != "variants"}
    if variant in (None, "main"):
        return copy.deepcopy(base)
    variants = params.get("variants") or {}
    if variant not in variants:
        known = ", ".join(sorted(variants)) or "none"
        raise HecvlError(f"unknown variant {variant!r} (known: {known})")
    return deep_merge(base, variants[variant] or {})


def get(cfg: Mapping[str, Any], dotted: str, default: Any = ...) -> Any:
    """Look up `a.b.c` in a nested mapping; without a default, a missing key is a clear error."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is ...:
                raise HecvlError(f"missing setting {dotted!r} in the parameters")
            return default
        node = node[part]
    return node
