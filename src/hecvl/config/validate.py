"""Validating plain data into a typed section: one line naming the file, the key and what is wrong.

The lowest layer of `hecvl.config` (every section and `Params` validate through it; it imports none of them).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hecvl.errors import HecvlError

T = TypeVar("T", bound=BaseModel)


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


def validate_section(cls: type[T], data: Any, where: str, source: str = "params.yaml") -> T:
    """`cls` validated from plain data at key path `where` (e.g. "model"); errors name file and key."""
    return validate_with(cls, data, source, "", where)


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


def validate_with(cls: type[T], data: Any, source: str, prefix: str, where: str = "") -> T:
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
