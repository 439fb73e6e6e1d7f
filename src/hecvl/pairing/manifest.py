"""The pair manifests: one Parquet file per level, with a fixed schema, sorted, byte-identical on re-runs.

Columns (all levels): `pair_id` (stable: lecture id + row in the source file), `lecture_id`, `video`
(path relative to the corpus root), `start`/`end` (seconds), `text`, `n_words`, `n_chars`, the frame
plan (`sampling` rule, `frames` count, the fixed `frame_times` used for validation), `notes` (what the
rules changed: extended, clipped_end, clipped_overlap, overlap_kept, truncated, derived ...).
Level specific:
- clip: `window_start`/`window_end` (where training may draw the clip), `narration_start`/`narration_end`
  (the repaired narration), `fps` (the clip's frame grid);
- phase: `title`, `summary` (as in keysteps.csv), `clip_ids` (children), `derived`, `derived_span`;
- video: `video_fps`, `procedure` (meta.json), `phase_ids` (children), `derived`.
The schema is explicit (an all-empty list column must not change type) and written without pandas
metadata, so the bytes depend on the pairs alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hecvl.errors import HecvlError
from hecvl.io import atomic_path

FORMAT_VERSION = "1"
_STR, _F64, _I32, _BOOL = pa.string(), pa.float64(), pa.int32(), pa.bool_()

_COMMON_HEAD = [("pair_id", _STR), ("lecture_id", _STR), ("video", _STR), ("start", _F64), ("end", _F64)]
_TEXT = [("text", _STR), ("n_words", _I32), ("n_chars", _I32)]
_PLAN = [("sampling", _STR), ("frames", _I32), ("frame_times", pa.list_(_F64))]

SCHEMAS: dict[str, pa.Schema] = {
    "clip": pa.schema(
        [
            *_COMMON_HEAD,
            ("window_start", _F64),
            ("window_end", _F64),
            ("narration_start", _F64),
            ("narration_end", _F64),
            *_TEXT,
            *_PLAN,
            ("fps", _F64),
            ("notes", pa.list_(_STR)),
        ]
    ),
    "phase": pa.schema(
        [
            *_COMMON_HEAD,
            ("title", _STR),
            ("summary", _STR),
            *_TEXT,
            *_PLAN,
            ("clip_ids", pa.list_(_STR)),
            ("derived", _BOOL),
            ("derived_span", _BOOL),
            ("notes", pa.list_(_STR)),
        ]
    ),
    "video": pa.schema(
        [
            *_COMMON_HEAD,
            ("video_fps", _F64),
            ("procedure", _STR),
            *_TEXT,
            *_PLAN,
            ("phase_ids", pa.list_(_STR)),
            ("derived", _BOOL),
            ("notes", pa.list_(_STR)),
        ]
    ),
}
LEVELS = tuple(SCHEMAS)


def manifest_path(out_dir: str | Path, level: str) -> Path:
    return Path(out_dir) / f"{level}.parquet"


def to_columns(records: Sequence[Mapping[str, Any]], level: str) -> dict[str, list]:
    """Records of one level as columns, sorted by (lecture, start, end, pair id)."""
    ordered = sorted(records, key=lambda r: (r["lecture_id"], r["start"], r["end"], r["pair_id"]))
    return {name: [r[name] for r in ordered] for name in SCHEMAS[level].names}


def to_table(columns: Mapping[str, list], level: str) -> pa.Table:
    schema = SCHEMAS[level].with_metadata({"hecvl.level": level, "hecvl.format": FORMAT_VERSION})
    return pa.Table.from_pydict({name: columns[name] for name in schema.names}, schema=schema)


def write_manifest(out_dir: str | Path, level: str, columns: Mapping[str, list]) -> Path:
    """Write one level's manifest atomically; the same pairs always give the same bytes."""
    path = manifest_path(out_dir, level)
    with atomic_path(path) as tmp:
        pq.write_table(to_table(columns, level), tmp, compression="zstd")
    return path


def read_manifest(out_dir: str | Path, level: str) -> pa.Table:
    """One level's manifest, checked against the schema (a manifest from another version is an error)."""
    if level not in SCHEMAS:
        raise HecvlError(f"unknown level {level!r} (known: {', '.join(LEVELS)})")
    path = manifest_path(out_dir, level)
    if not path.is_file():
        raise HecvlError(f"no {level} manifest here: run `hecvl pair` first", path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise HecvlError(f"unreadable Parquet manifest: {exc}", path) from None
    missing = [n for n in SCHEMAS[level].names if n not in table.column_names]
    if missing:
        raise HecvlError(f"not a {level} manifest: missing columns {', '.join(missing)}", path)
    return table
