"""Annotation files of unknown shape: load JSON / JSON Lines / Parquet records, look fields up by dotted
path, read times, and describe what a file holds (`describe`, behind `hecvl corpus inspect`).

Why: SurgAtlas' record layout is not published. Rather than guess it in code, the importer reads
records through a field map; these helpers are what the map is applied with, and `describe` is how a
user holding the real files sees the keys to write the map from.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hecvl.errors import HecvlError
from hecvl.io import json_error

RECORD_SUFFIXES = (".json", ".jsonl", ".ndjson", ".parquet")
MISSING = object()  # a looked-up field that is absent (or null)
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:[.,]\d+)?)$")
_WIDE = 100  # an object with more keys than this is a mapping (ids as keys): described as `.*`


def source_files(path: Path) -> list[Path]:
    """The annotation files: `path` itself, or every JSON / JSONL / Parquet file under a folder, sorted."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise HecvlError("annotation file or folder not found", path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in RECORD_SUFFIXES)
    if not files:
        raise HecvlError(f"no annotation files ({', '.join(RECORD_SUFFIXES)}) in the folder", path)
    return files


def load_document(path: Path) -> Any:
    """A whole file as Python values: JSON as is, JSON Lines and Parquet as a list of rows."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise HecvlError(f"cannot read the Parquet file: {exc}", path) from None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise HecvlError(f"cannot read: {exc}", path) from None
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise HecvlError(f"line {number}: {json_error(exc)}", path) from None
        return rows
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HecvlError(json_error(exc), path) from None


def lookup(obj: Any, dotted: str) -> Any:
    """The value at a dotted path ("a.b.c"; "." or "" is `obj` itself); MISSING if absent or null."""
    if dotted in ("", "."):
        return obj
    for key in dotted.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return MISSING
        obj = obj[key]
    return MISSING if obj is None else obj


def parse_time(value: Any, unit: float = 1.0) -> float | None:
    """Seconds from a number (times `unit`), a numeric string, or a clock string [H:]MM:SS[.fff]."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value) * unit
    elif isinstance(value, str):
        text = value.strip()
        clock = _CLOCK.match(text)
        if clock:
            h, m, s = clock.groups()
            seconds = int(h or 0) * 3600 + int(m) * 60 + float(s.replace(",", "."))
        else:
            try:
                seconds = float(text) * unit
            except ValueError:
                return None
    else:
        return None
    return seconds if math.isfinite(seconds) else None


# --- inspect ---------------------------------------------------------------------------------------


@dataclass
class KeyStats:
    """What one path holds across a file: the JSON types seen (with counts) and a first example."""

    types: Counter = field(default_factory=Counter)
    example: str | None = None


# JSON type names in test order (bool before int: a bool is an int to isinstance)
_TYPE_NAMES = ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (dict, "object"), (list, "list"))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _TYPE_NAMES if isinstance(value, kind)), type(value).__name__)


def _walk(value: Any, path: str, stats: dict[str, KeyStats]) -> None:
    entry = stats.setdefault(path or "(top)", KeyStats())
    entry.types[_type_name(value)] += 1
    if isinstance(value, dict):
        wide = len(value) > _WIDE
        for key, child in value.items():
            name = "*" if wide else str(key)
            _walk(child, f"{path}.{name}" if path else name, stats)
    elif isinstance(value, list):
        for child in value:
            _walk(child, f"{path}[]", stats)
    elif entry.example is None and value is not None:
        text = repr(value)
        entry.example = text if len(text) <= 40 else text[:37] + "..."


def describe_document(document: Any) -> dict[str, KeyStats]:
    """Every path in a document (`a.b`, `list[]`, `.*` for id-keyed mappings) with its types and counts."""
    stats: dict[str, KeyStats] = {}
    _walk(document, "", stats)
    return stats


def describe_lines(stats: dict[str, KeyStats]) -> list[str]:
    """Aligned lines `path  types-with-counts  example`, in path order (nesting reads top-down)."""
    if not stats:
        return []
    width = max(len(p) for p in stats)
    lines = []
    for path in sorted(stats):
        entry = stats[path]
        types = ", ".join(f"{t} {n}" for t, n in sorted(entry.types.items()))
        example = f"  e.g. {entry.example}" if entry.example else ""
        lines.append(f"  {path:<{width}}  {types}{example}")
    return lines
