"""Write imported lectures into the lecture-corpus layout, the same way for every source corpus.

Why a shared writer: the guarantees that matter to the rest of the workflow are the same for every
corpus and easy to get subtly wrong one importer at a time:
- determinism: rows sorted, keys sorted, no timestamps or absolute paths, so the same source and
  options give byte-identical folders;
- re-import is safe: only the text files this writer owns (narration.csv, keysteps.csv, abstract.txt,
  meta.json) are rewritten; a downloaded `video.*` or anything else in a lecture folder is never touched;
- files whose bytes would not change are not rewritten, so Snakemake (which goes by mtimes) does not
  rebuild downstream steps after a no-op re-import.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hecvl.corpora.corpus import ABSTRACT_FILE, KEYSTEPS_FILE, META_FILE, NARRATION_FILE, read_meta
from hecvl.corpora.transcripts import KEYSTEP_COLUMNS, NARRATION_COLUMNS
from hecvl.errors import HecvlError
from hecvl.io import write_text

log = logging.getLogger(__name__)

IMPORT_RECORD = "import.json"  # corpus-level record at the output root (not a lecture folder)
FORMAT_VERSION = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

Narration = tuple[float, float, str]
Keystep = tuple[float, float, str, str]  # start, end, step (title), text (summary, may be "")


@dataclass
class ImportedLecture:
    """One lecture as an importer produced it: the texts of the three levels and its meta.json."""

    lecture_id: str
    narrations: list[Narration]
    keysteps: list[Keystep] = field(default_factory=list)
    abstract: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def safe_lecture_id(name: str) -> str:
    """A folder name from a corpus' video name: runs of unsafe characters become '_', no leading dot."""
    return _UNSAFE.sub("_", name.strip()).strip("_").lstrip(".")


def unique_ids(candidates: Sequence[tuple[str, str]]) -> dict[str, str]:
    """{source key: lecture id}: `candidates` are (source key, wanted id); ids wanted by several sources
    get `-<source key>` appended, so no lecture silently overwrites another."""
    wanted: dict[str, list[str]] = {}
    for key, lid in candidates:
        wanted.setdefault(lid, []).append(key)
    out: dict[str, str] = {}
    for lid, keys in wanted.items():
        for key in keys:
            out[key] = lid if len(keys) == 1 else f"{lid}-{safe_lecture_id(key)}"
    if len(set(out.values())) != len(out):
        raise HecvlError("cannot make unique lecture ids (two video ids clash after suffixing)")
    return out


def _times(start: float, end: float) -> tuple[str, str]:
    """Both times to the millisecond, or with every digit (Python's shortest exact form) when rounding
    would turn a segment with end > start into end == start, which validation rejects."""
    start, end = float(start), float(end)
    short = round(start, 3) == round(end, 3) and end > start
    return (repr(start), repr(end)) if short else (repr(round(start, 3)), repr(round(end, 3)))


def render_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV text with `\\n` line ends; times (the first two columns) to the millisecond (see `_times`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([*_times(row[0], row[1]), *row[2:]])
    return buf.getvalue()


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` atomically unless the file already holds exactly these bytes; True if written."""
    data = text.encode("utf-8")
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    write_text(path, text)
    return True


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_lecture(root: Path, lecture: ImportedLecture) -> None:
    """The lecture's text files; an absent level removes a stale file of an earlier import."""
    if not lecture.narrations:
        raise ValueError(f"lecture {lecture.lecture_id} has no narration")  # importers drop those first
    folder = root / lecture.lecture_id
    folder.mkdir(parents=True, exist_ok=True)
    write_if_changed(folder / NARRATION_FILE, render_csv(NARRATION_COLUMNS, sorted(lecture.narrations)))
    keysteps = folder / KEYSTEPS_FILE
    if lecture.keysteps:
        write_if_changed(keysteps, render_csv(KEYSTEP_COLUMNS, sorted(lecture.keysteps)))
    else:
        keysteps.unlink(missing_ok=True)
    abstract = folder / ABSTRACT_FILE
    if lecture.abstract:
        write_if_changed(abstract, lecture.abstract.rstrip("\n") + "\n")
    else:
        abstract.unlink(missing_ok=True)
    write_if_changed(folder / META_FILE, _json_text(lecture.meta))


def stale_lectures(root: Path, corpus: str, kept: set[str]) -> list[str]:
    """Lecture folders an earlier import of `corpus` wrote that this import no longer produces."""
    if not root.is_dir():
        return []
    stale = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in kept):
        meta, _ = read_meta(folder / META_FILE)
        source = meta.get("source")
        if isinstance(source, dict) and source.get("corpus") == corpus:
            stale.append(folder.name)
    return stale


def write_corpus(
    root: Path, corpus: str, lectures: Sequence[ImportedLecture], record: dict[str, Any]
) -> None:
    """Every lecture folder, then `import.json` (the run's options and counts) at the root.

    Folders of an earlier import that this one no longer produces are left alone (they may hold
    downloaded videos) but named in a warning: delete them or they stay in the corpus.
    """
    root = Path(root)
    ids = [lec.lecture_id for lec in lectures]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate lecture ids")  # importers make ids unique with unique_ids
    if root.exists() and not root.is_dir():
        raise HecvlError("the output is not a folder", root)
    stale = stale_lectures(root, corpus, set(ids))
    for lecture in sorted(lectures, key=lambda lec: lec.lecture_id):
        write_lecture(root, lecture)
    payload = {"format_version": FORMAT_VERSION, **record, "lectures": len(lectures)}
    if write_if_changed(root / IMPORT_RECORD, _json_text(payload)):
        log.debug("wrote %s", root / IMPORT_RECORD)
    if stale:
        shown = ", ".join(stale[:5]) + (", ..." if len(stale) > 5 else "")
        log.warning(
            "%s: %d lecture folder(s) from an earlier %s import are not in this one and were left as they "
            "are (%s): delete them to drop them from the corpus",
            root,
            len(stale),
            corpus,
            shown,
        )
