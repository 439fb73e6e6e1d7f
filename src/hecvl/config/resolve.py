"""Reading, merging and validating the configuration: params.yaml -> preset -> overrides -> `Params`.

The order is the same for the DAG and for a stage run by hand: the main parameter file, then its active
preset (named by the last of file, `--configfile`s and `--config` that names one), then the `--configfile`
overrides in the order given, then `--config`, then one variant's overrides. The main file named again as a
`--configfile` (`snakemake --configfile params.yaml mine.yaml`) stays the base, and a `--configfile` with its
own `presets:` is a whole parameter file that replaces it as the base: neither is merged over the preset.
Every bad value stops with one line naming the file and the key, e.g.
`params.yaml: train.lr must be > 0, got -1.0`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hecvl import io
from hecvl.config.params import Params, apply_variant
from hecvl.config.validate import deep_merge, validate_section, validate_with
from hecvl.config.write import verify_resolved
from hecvl.errors import HecvlError

__all__ = ["apply_variant", "coerce_params", "load_params", "read_yaml", "resolve", "resolve_invocation",
           "typed_command_line"]

def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file; a missing or malformed file is a clear error naming it."""
    data = io.read_yaml(path, "parameter file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HecvlError("expected a mapping at the top level", path)
    return data


def resolve(raw: Mapping[str, Any], source: str = "params.yaml",
            overrides: Sequence[Mapping[str, Any]] = (), overrides_label: str = "the overrides") -> Params:
    """The validated `Params` of a parameter mapping: its preset applied, then `overrides` on top.

    Every preset and every variant is validated too, so a typo in one that is not used today fails now.
    """
    if not isinstance(raw, Mapping):
        raise HecvlError("expected a mapping at the top level", source)
    name = deep_merge(raw, *overrides).get("preset")
    presets = raw.get("presets") or {}
    if not isinstance(presets, Mapping):
        raise HecvlError(f"{source}: presets must be a mapping of name -> overrides")
    base = {k: v for k, v in raw.items() if k != "presets"}
    for other, spec in presets.items():
        if not isinstance(spec, Mapping | None):
            raise HecvlError(f"{source}: presets.{other} must be a mapping")
        if other != name:
            merged = deep_merge(base, spec or {}, {"preset": other})
            validate_with(Params, merged, source, f"presets.{other}: ")
    # a file without presets (e.g. a resolved one) names the preset that was applied to it already
    if name is not None and presets and name not in presets:
        known = ", ".join(sorted(presets))
        raise HecvlError(f"{source}: unknown preset {name!r} (known: {known})")
    chosen = presets.get(name) or {} if name is not None else {}
    if any(overrides):  # blame the file for its own errors, the overrides for theirs
        validate_section(Params, deep_merge(base, chosen), "", source)
        source = f"{source} with {overrides_label}"
    params = validate_section(Params, deep_merge(base, chosen, *overrides), "", source)
    for variant in params.variants:
        apply_variant(params, variant, source)
    return params


def resolve_invocation(main: str | Path, configfiles: Sequence[str | Path] = (),
                       command_line: Mapping[str, Any] | None = None) -> Any:
    """The `Params` of one invocation: `main` as the base, then the preset, `configfiles`, `command_line`."""
    base_path, base = Path(main), None
    overrides: list[Mapping[str, Any]] = []
    for name in configfiles:
        path = Path(name)
        if _same_file(path, base_path):
            continue  # the main file again: it is the base already
        data = read_yaml(path)
        if "presets" not in data:
            overrides.append(data)
        elif base is not None:
            raise HecvlError(f"{base_path} and {path} are both whole parameter files (each has `presets:`); "
                             "pass one of them, and overrides without presets")
        else:
            base_path, base = path, data
    if command_line:
        overrides.append(command_line)
    verify_resolved(base_path)
    raw = base if base is not None else read_yaml(base_path)
    return resolve(raw, str(base_path), overrides, "--configfile/--config")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return a.resolve() == b.resolve()


def typed_command_line(config: Mapping[str, Any]) -> dict[str, Any]:
    """Snakemake's `--config` values with their YAML types back.

    Snakemake reads a nested `--config 'train={"steps": 5}'` with YAML's BaseLoader, which keeps every
    scalar as text ("5"); each text is read again as YAML here, so 5 is a number, true a bool.
    """
    def typed(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: typed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [typed(v) for v in value]
        if isinstance(value, str):
            try:
                out = yaml.safe_load(value) if value.strip() else value
            except yaml.YAMLError:
                return value
            if isinstance(out, str):  # YAML 1.1 reads 1e-4 (no dot) as text; a number is meant
                with contextlib.suppress(ValueError):
                    return float(out)
            return out
        return value

    return typed(config)


def load_params(path: str | Path, overrides: Sequence[Mapping[str, Any]] = ()) -> Params:
    """`Params` from a parameter file (params.yaml, or the resolved file of a Snakemake invocation, whose
    text must still have the digest in its name)."""
    verify_resolved(path)
    return resolve(read_yaml(path), str(path), overrides)


def coerce_params(params: Params | Mapping[str, Any]) -> Params:
    """`Params` as it is, or a plain mapping validated into one (for library callers and tests)."""
    return params if isinstance(params, Params) else resolve(params, "parameters")
