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
import copy
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hecvl import io
from hecvl.errors import HecvlError

T = TypeVar("T", bound=BaseModel)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file; a missing or malformed file is a clear error naming it."""
    data = io.read_yaml(path, "parameter file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HecvlError("expected a mapping at the top level", path)
    return data


def deep_merge(base: Mapping[str, Any], *overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with each override merged in turn; mappings merge recursively, everything else replaces."""
    out = copy.deepcopy(dict(base))
    for override in overrides:
        for key, value in override.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def resolve(raw: Mapping[str, Any], source: str = "params.yaml",
            overrides: Sequence[Mapping[str, Any]] = (), overrides_label: str = "the overrides") -> Any:
    """The validated `Params` of a parameter mapping: its preset applied, then `overrides` on top.

    Every preset and every variant is validated too, so a typo in one that is not used today fails now.
    """
    from hecvl.config.params import Params

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
            _validate_with(Params, merged, source, f"presets.{other}: ")
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
    from hecvl.config.write import verify_resolved

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


def load_params(path: str | Path, overrides: Sequence[Mapping[str, Any]] = ()) -> Any:
    """`Params` from a parameter file (params.yaml, or the resolved file of a Snakemake invocation, whose
    text must still have the digest in its name)."""
    from hecvl.config.write import verify_resolved

    verify_resolved(path)
    return resolve(read_yaml(path), str(path), overrides)


def coerce_params(params: Any) -> Any:
    """`Params` as it is, or a plain mapping validated into one (for library callers and tests)."""
    from hecvl.config.params import Params

    return params if isinstance(params, Params) else resolve(params, "parameters")


def apply_variant(params: Any, name: str | None, source: str = "params.yaml") -> Any:
    """The configuration of variant `name`: the main one plus its overrides (None or "main": unchanged)."""
    if name in (None, "main"):
        return params
    cache = getattr(params, "_variant_cache", None)
    if cache is not None and name in cache:
        return cache[name]
    if name not in params.variants:
        known = ", ".join(sorted(params.variants)) or "none"
        raise HecvlError(f"{source}: unknown variant {name!r} (known: {known})")
    merged = deep_merge(params.to_dict(), params.variants[name] or {})
    out = _validate_with(type(params), merged, source, f"variants.{name}: ")
    if cache is not None:
        cache[name] = out
    return out


def validate_section(cls: type[T], data: Any, where: str, source: str = "params.yaml") -> T:
    """`cls` validated from plain data at key path `where` (e.g. "model"); errors name file and key."""
    return _validate_with(cls, data, source, "", where)


def _non_finite(value: Any, path: str) -> str | None:
    """The key path of the first infinite or NaN number (JSON, hence the validation, cannot carry them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items: Any = value.items() if isinstance(value, Mapping) else ()
    if isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _validate_with(cls: type[T], data: Any, source: str, prefix: str, where: str = "") -> T:
    bad = _non_finite(data, where)
    if bad is not None:
        raise HecvlError(f"{source}: {prefix}{bad} must be a finite number")
    try:
        blob = json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise HecvlError(f"{source}: {prefix}{where or 'the parameters'} hold a value that is not plain "
                         f"YAML data: {exc}") from None
    try:
        # JSON mode + strict: lists are accepted for tuples and ints for floats, but "false" is not a
        # bool and 256.5 is not an int (YAML typos must not train silently)
        return cls.model_validate_json(blob, strict=True)
    except ValidationError as exc:
        raise HecvlError(f"{source}: {prefix}{format_error(exc, where)}") from None


_MESSAGES = {
    "missing": "is required",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}


def format_error(exc: ValidationError, where: str = "") -> str:
    """One line for the first problem: the dotted key path, what is wrong, and the value found."""
    errors = exc.errors(include_url=False)
    e = errors[0]
    loc = ".".join(str(p) for p in ((where,) if where else ()) + tuple(e["loc"]))
    kind, ctx, value = e["type"], e.get("ctx") or {}, e.get("input")
    if kind == "extra_forbidden":
        text = f"{loc} is not a setting"
    elif kind == "literal_error":
        text = f"{loc} must be one of {ctx.get('expected')}, got {value!r}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
              "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()))
        text = f"{loc} must be {op} {bound:g}, got {value!r}"
    elif kind == "too_short":
        text = f"{loc} must have at least {ctx.get('min_length')} item(s), got {value!r}"
    elif kind == "too_long":
        text = f"{loc} must have at most {ctx.get('max_length')} item(s), got {value!r}"
    elif kind == "value_error":
        msg = str(e["msg"]).removeprefix("Value error, ")
        text = f"{loc}: {msg}" if loc else msg
    elif kind in _MESSAGES:
        text = f"{loc} {_MESSAGES[kind]}" + ("" if kind == "missing" else f", got {value!r}")
    else:
        text = f"{loc}: {e['msg']}" + (f", got {value!r}" if value is not None else "")
    more = len(errors) - 1
    return text + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
