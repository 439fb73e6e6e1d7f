"""SurgAtlas (JSON annotation files) -> lecture corpus, through a field map.

SurgAtlas publishes segment captions, step and phase descriptions and a video-level description per
YouTube video, but not (when this was written) its file layout, so every field is read through a
`FieldMap` (see `fieldmap`; the shipped default is a guess). The first record the map does not fit
stops the import with one line naming the file, the record and the field, so a wrong map is found at
once rather than as an empty corpus. Segments feed narration.csv, phases (or steps) keysteps.csv, the
video description abstract.txt (not derived). Texts are written as they are.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hecvl.corpora.fieldmap import DEFAULT_MAP, FieldMap, FieldSpec, LevelMap, load_fieldmap
from hecvl.corpora.records import MISSING, load_document, lookup, parse_time, source_files
from hecvl.corpora.writer import ImportedLecture, safe_lecture_id, unique_ids, write_corpus
from hecvl.corpora.youtube import resolve_url
from hecvl.errors import HecvlError
from hecvl.io import sha256_file

CORPUS = "SurgAtlas"
LICENCE = "CC BY 4.0 (annotations)"
LICENCE_NOTE = (
    "SurgAtlas annotations are licensed CC BY 4.0: attribute the authors (arXiv 2606.25905). "
    "The videos are not covered: they remain their uploaders'."
)
KEYSTEP_SOURCES = ("phases", "steps", "none")
Item = tuple[float, float, str, str]  # start, end, text, title ("" when none)


@dataclass
class _Video:
    """One video's fields and items, merged over every record that names it."""

    key: str
    file: str
    fields: dict[str, Any] = field(default_factory=dict)
    items: dict[str, list[Item]] = field(default_factory=dict)


class _Where:
    """The one-line error of a record: '<file>: record videos[3] (video 'abc'): ...'."""

    def __init__(self, file: Path, label: str) -> None:
        self.file, self.label, self.video = file, label, ""

    def error(self, message: str) -> HecvlError:
        video = f" (video {self.video!r})" if self.video else ""
        return HecvlError(f"record {self.label}{video}: {message}", self.file)

    def get(self, obj: Any, spec: FieldSpec, prefix: str, mapped: str) -> Any:
        value = lookup(obj, spec.path)
        if value is MISSING and not spec.optional:
            raise self.error(f"missing field '{prefix}{spec.path}' (map: {mapped} = '{spec}')")
        return value

    def time(self, obj: Any, spec: FieldSpec, prefix: str, mapped: str, unit: float) -> float:
        value = self.get(obj, spec, prefix, mapped)
        seconds = parse_time(value, unit) if value is not MISSING else None
        if seconds is None:
            raise self.error(f"field '{prefix}{spec.path}' is not a time ({value!r}) (map: {mapped})")
        if seconds < 0:
            raise self.error(f"field '{prefix}{spec.path}' is negative ({value!r}) (map: {mapped})")
        return seconds

    def text(self, obj: Any, spec: FieldSpec, prefix: str, mapped: str) -> str:
        value = self.get(obj, spec, prefix, mapped)
        if value is MISSING:
            return ""
        if isinstance(value, dict | list):
            raise self.error(
                f"field '{prefix}{spec.path}' is not text ({type(value).__name__}) (map: {mapped})"
            )
        return str(value)


def _items(where: _Where, record: dict, level: LevelMap, unit: float) -> list[Item]:
    """A record's items of one level, each checked (times in order, text present when required)."""
    if level.where and any(lookup(record, k) != v for k, v in level.where):
        return []
    if level.items.path in ("", "."):
        found: Any = [record]
        prefix = lambda j: ""  # noqa: E731 - the record is itself the one item
    else:
        found = where.get(record, level.items, "", f"{level.name}.list")
        if found is MISSING:
            return []
        if not isinstance(found, list):
            raise where.error(f"field '{level.items.path}' is not a list (map: {level.name}.list)")
        prefix = lambda j: f"{level.items.path}[{j}]."  # noqa: E731
    items = []
    for j, item in enumerate(found):
        if not isinstance(item, dict):
            raise where.error(f"'{prefix(j).rstrip('.')}' is not an object")
        p, n = prefix(j), level.name
        start = where.time(item, level.start, p, f"{n}.start", unit)
        end = where.time(item, level.end, p, f"{n}.end", unit)
        if end <= start:
            raise where.error(f"'{p}{level.end.path}' {end:g} <= '{p}{level.start.path}' {start:g}")
        text = where.text(item, level.text, p, f"{n}.text")
        title = where.text(item, level.title, p, f"{n}.title") if level.title else ""
        items.append((start, end, text, title))
    return items


def _records(document: Any, fmap: FieldMap, file: Path) -> list[Any]:
    records = lookup(document, fmap.records)
    if records is MISSING:
        raise HecvlError(f"no '{fmap.records}' in the file (map: records = '{fmap.records}')", file)
    if not isinstance(records, list):
        kind = type(records).__name__
        raise HecvlError(f"'{fmap.records}' is a {kind}, not a list of records (map: records)", file)
    return records


def collect_videos(files: list[Path], root: Path, fmap: FieldMap) -> dict[str, _Video]:
    """Every video named by any record of any file, with its fields and items, in file order."""
    videos: dict[str, _Video] = {}
    for file in files:
        name = file.relative_to(root).as_posix() if file != root else file.name
        records = _records(load_document(file), fmap, file)
        base = "" if fmap.records in ("", ".") else fmap.records
        for i, record in enumerate(records):
            where = _Where(file, f"{base}[{i}]")
            if not isinstance(record, dict):
                raise where.error(f"is a {type(record).__name__}, not an object")
            key = where.get(record, fmap.video["id"], "", "video.id")
            if isinstance(key, dict | list) or str(key).strip() == "":
                raise where.error(f"video id '{fmap.video['id'].path}' is not a value ({key!r})")
            where.video = str(key).strip()
            video = videos.setdefault(where.video, _Video(where.video, name))
            for field_name, spec in sorted(fmap.video.items()):
                if field_name == "id":
                    continue
                value = where.get(record, spec, "", f"video.{field_name}")
                if value is MISSING or field_name in video.fields:
                    continue
                if field_name == "duration":
                    value = where.time(record, spec, "", "video.duration", fmap.time_unit)
                video.fields[field_name] = value
            for level in fmap.levels.values():
                video.items.setdefault(level.name, []).extend(_items(where, record, level, fmap.time_unit))
    return videos


@dataclass
class SurgAtlasImport:
    record: dict[str, Any]
    lectures: list[ImportedLecture]


def read_surgatlas(
    path: str | Path, map_path: str | Path | None = None, keysteps: str = "phases"
) -> SurgAtlasImport:
    """Read every annotation file through the field map and build the lectures (nothing is written)."""
    root = Path(path)
    fmap = load_fieldmap(map_path)
    if keysteps not in KEYSTEP_SOURCES:
        raise HecvlError(f"keysteps come from {', '.join(KEYSTEP_SOURCES)}, not {keysteps!r}")
    if keysteps != "none" and keysteps not in fmap.levels:
        where = Path(map_path) if map_path is not None else DEFAULT_MAP
        raise HecvlError(f"the map has no '{keysteps}' section (asked for by --keysteps {keysteps})", where)
    files = source_files(root)
    hashes = {f: sha256_file(f) for f in files}
    names = {f: (f.relative_to(root).as_posix() if f != root else f.name) for f in files}
    videos = collect_videos(files, root, fmap)
    counts = {lv: Counter() for lv in fmap.levels}
    video_drops: Counter = Counter()
    chosen: list[tuple[_Video, str, str | None, list, list]] = []
    for key in sorted(videos):
        video = videos[key]
        segments = [it for it in video.items.get("segments", []) if it[2].strip()]
        steps = (
            [it for it in video.items.get(keysteps, []) if (it[3] or it[2]).strip()]
            if keysteps != "none"
            else []
        )
        for level, items in video.items.items():
            counts[level]["items"] += len(items)
            blank = [not (it[2] if level == "segments" else it[3] or it[2]).strip() for it in items]
            counts[level]["empty_text"] += sum(blank)
        url, youtube_id = resolve_url(video.fields.get("youtube_id"), video.fields.get("url"))
        reason = "no_segments" if not segments else ("no_url" if url is None else None)
        if reason:
            video_drops[reason] += 1
            continue
        counts["segments"]["kept"] += len(segments)
        if keysteps != "none":
            counts[keysteps]["kept"] += len(steps)
        chosen.append((video, url, youtube_id, segments, steps))
    ids = unique_ids([(v.key, safe_lecture_id(v.key) or "video") for v, *_ in chosen])
    lectures = []
    for video, url, youtube_id, segments, steps in chosen:
        abstract = str(video.fields.get("abstract", "")).strip() or None
        file = next(f for f in files if names[f] == video.file)
        meta: dict[str, Any] = {
            "lecture_id": ids[video.key],
            "ids": {"video_id": video.key},
            "url": url,
            "source": {"corpus": CORPUS, "file": video.file, "sha256": hashes[file]},
            "licence": LICENCE,
            "licence_note": LICENCE_NOTE,
            "map": {"file": fmap.file, "sha256": fmap.sha256},
            "levels": {
                "narration.csv": {"from": "segments", "segments": len(segments)},
                "keysteps.csv": {"from": keysteps, "segments": len(steps)} if steps else None,
                "abstract.txt": {"from": f"video.abstract ({fmap.video['abstract'].path})"}
                if abstract and "abstract" in fmap.video
                else None,
            },
            "abstract_derived": False,
        }
        if youtube_id:
            meta["youtube_id"] = youtube_id
        for ours in ("title", "procedure"):
            if ours in video.fields:
                meta[ours] = video.fields[ours]
        if video.fields.get("duration"):
            meta["expected_duration"] = video.fields["duration"]
        narrations = [(s, e, text) for s, e, text, _ in segments]
        keyrows = [(s, e, title, text) if title.strip() else (s, e, text, "") for s, e, text, title in steps]
        lectures.append(ImportedLecture(ids[video.key], narrations, keyrows, abstract, meta))
    record = {
        "corpus": CORPUS,
        "source": {
            "path": root.name,
            "files": [{"file": names[f], "sha256": hashes[f], "bytes": f.stat().st_size} for f in files],
        },
        "licence": LICENCE,
        "licence_note": LICENCE_NOTE,
        "map": {"file": fmap.file, "sha256": fmap.sha256, "content": fmap.content},
        "options": {"keysteps": keysteps},
        "levels": {
            lv: {
                "items": c["items"],
                "kept": c["kept"],
                "role": {"segments": "narration.csv", keysteps: "keysteps.csv"}.get(lv),
                "dropped": _dropped(c, lv in ("segments", keysteps)),
            }
            for lv, c in counts.items()
        },
        "videos": {
            "in_source": len(videos),
            "imported": len(chosen),
            "dropped": dict(sorted(video_drops.items())),
        },
    }
    return SurgAtlasImport(record, lectures)


def _dropped(count: Counter, used: bool) -> dict[str, int]:
    """Items not written, by reason: empty text, or (levels in use) their video was dropped."""
    out = {"empty_text": count["empty_text"]}
    if used:
        out["video_dropped"] = count["items"] - count["empty_text"] - count["kept"]
    return {k: v for k, v in out.items() if v}


def import_surgatlas(
    path: str | Path, out: str | Path, map_path: str | Path | None = None, keysteps: str = "phases"
) -> SurgAtlasImport:
    """Read the annotation files and write the lecture corpus under `out` (see `write_corpus`)."""
    result = read_surgatlas(path, map_path, keysteps)
    write_corpus(Path(out), CORPUS, result.lectures, result.record)
    return result
