"""Field maps: which field of a corpus' JSON records feeds which of our files.

Why a map rather than code: SurgAtlas' layout was not published when the importer was written, so the
shipped map (`surgatlas_map.yaml`) is a documented guess and a user fixes it in YAML, not in Python.
A map names a dotted path per field; a trailing `?` makes the field optional. Each level section
(`segments`, `phases`, `steps`) names the list of items in a record (`.`: the record is one item), the
item fields start, end, text (and an optional title), and optionally `where: {field: value}` to take
only the records whose field has that value (flat files mixing levels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hecvl.errors import HecvlError
from hecvl.io import read_yaml, sha256_file

DEFAULT_MAP = Path(__file__).with_name("surgatlas_map.yaml")
LEVEL_SECTIONS = ("segments", "phases", "steps")
VIDEO_FIELDS = ("id", "youtube_id", "url", "title", "procedure", "duration", "abstract")
LEVEL_FIELDS = ("list", "start", "end", "text", "title", "where")
TIME_UNITS = {"seconds": 1.0, "milliseconds": 0.001}


@dataclass(frozen=True)
class FieldSpec:
    """A dotted path and whether a record may lack it."""

    path: str
    optional: bool

    @classmethod
    def parse(cls, spec: str) -> FieldSpec:
        spec = spec.strip()
        return cls(spec[:-1].strip(), True) if spec.endswith("?") else cls(spec, False)

    def __str__(self) -> str:
        return self.path + ("?" if self.optional else "")


@dataclass(frozen=True)
class LevelMap:
    """Where one level's items are in a record and which of their fields we read."""

    name: str
    items: FieldSpec
    start: FieldSpec
    end: FieldSpec
    text: FieldSpec
    title: FieldSpec | None
    where: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class FieldMap:
    """A loaded, checked field map, with its file's name and hash for the manifests."""

    file: str
    sha256: str
    records: str
    time_unit: float
    video: dict[str, FieldSpec]
    levels: dict[str, LevelMap]
    content: dict[str, Any]


def _spec(value: Any, where: str, path: Path) -> FieldSpec:
    if not isinstance(value, str) or not value.strip().rstrip("?").strip():
        raise HecvlError(f"{where}: expected a dotted field path (text), got {value!r}", path)
    return FieldSpec.parse(value)


def _section(data: dict, key: str, allowed: tuple[str, ...], path: Path) -> dict:
    section = data.get(key)
    if not isinstance(section, dict):
        raise HecvlError(f"{key}: expected a mapping of fields", path)
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise HecvlError(f"{key}: unknown key(s) {', '.join(unknown)} (known: {', '.join(allowed)})", path)
    return section


def _level(data: dict, name: str, path: Path) -> LevelMap:
    section = _section(data, name, LEVEL_FIELDS, path)
    for key in ("list", "start", "end", "text"):
        if key not in section:
            raise HecvlError(f"{name}.{key}: missing (a level needs list, start, end and text)", path)
    where = section.get("where") or {}
    if not isinstance(where, dict):
        raise HecvlError(f"{name}.where: expected a mapping field: value", path)
    spec = {k: _spec(section[k], f"{name}.{k}", path) for k in ("list", "start", "end", "text")}
    title = _spec(section["title"], f"{name}.title", path) if section.get("title") is not None else None
    return LevelMap(
        name,
        spec["list"],
        spec["start"],
        spec["end"],
        spec["text"],
        title,
        tuple(sorted((str(k), v) for k, v in where.items())),
    )


def load_fieldmap(path: str | Path | None = None) -> FieldMap:
    """A field map file (the shipped default when None), checked key by key."""
    path = Path(path) if path is not None else DEFAULT_MAP
    data = read_yaml(path, "field map")
    if not isinstance(data, dict):
        raise HecvlError(
            "a field map is a YAML mapping (records, times, video, segments, phases, steps)", path
        )
    known = ("records", "times", "video", *LEVEL_SECTIONS)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise HecvlError(f"unknown key(s) {', '.join(map(str, unknown))} (known: {', '.join(known)})", path)
    records = data.get("records", ".")
    if not isinstance(records, str):
        raise HecvlError(f"records: expected a dotted path (text), got {records!r}", path)
    unit = data.get("times", "seconds")
    if unit not in TIME_UNITS:
        raise HecvlError(f"times: expected {' or '.join(TIME_UNITS)}, got {unit!r}", path)
    video = _section(data, "video", VIDEO_FIELDS, path)
    if "id" not in video:
        raise HecvlError("video.id: missing (records are grouped into lectures by it)", path)
    if "youtube_id" not in video and "url" not in video:
        raise HecvlError("video: name youtube_id or url (where each video is fetched from)", path)
    specs = {k: _spec(v, f"video.{k}", path) for k, v in video.items() if v is not None}
    if "segments" not in data:
        raise HecvlError("segments: missing (the clip level that feeds narration.csv)", path)
    levels = {name: _level(data, name, path) for name in LEVEL_SECTIONS if data.get(name) is not None}
    return FieldMap(path.name, sha256_file(path), records.strip(), TIME_UNITS[unit], specs, levels, data)
