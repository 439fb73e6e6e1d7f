"""The lecture corpus: the pretraining input, one folder per narrated lecture video.

```
CORPUS/<lecture_id>/video.mp4      exactly one video named video.* (.mp4 .mkv .webm .avi .mov)
CORPUS/<lecture_id>/narration.csv  start,end,text (seconds): the ASR transcript -> clip-level pairs
CORPUS/<lecture_id>/keysteps.csv   start,end,step[,text]: keystep titles/summaries -> phase-level pairs
CORPUS/<lecture_id>/abstract.txt   the lecture's abstract -> the video-level pair
CORPUS/<lecture_id>/meta.json      optional {"procedure": ..., "title": ...}
```
Keysteps and abstract may be absent (the lecture then feeds only the finer levels); a video and a
non-empty narration are required. `load_lecture` is strict (first error raised, warnings logged);
`hecvl.corpora.validate` reports every problem of a whole corpus instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hecvl.corpora.transcripts import (
    KEYSTEP_COLUMNS,
    empty_segments,
    read_segments_csv,
    strict,
)
from hecvl.errors import HecvlError, Issue, raise_first_error
from hecvl.io import json_error
from hecvl.video.reader import VIDEO_EXTENSIONS

NARRATION_FILE = "narration.csv"
KEYSTEPS_FILE = "keysteps.csv"
ABSTRACT_FILE = "abstract.txt"
META_FILE = "meta.json"


@dataclass
class Lecture:
    """One lecture of the corpus, loaded and checked."""

    id: str
    dir: Path
    video: Path
    narrations: pd.DataFrame  # start, end (float s), text
    keysteps: pd.DataFrame  # start, end (float s), step, text ("" when no summary); empty if absent
    abstract: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def lecture_dirs(root: str | Path) -> list[Path]:
    """The lecture folders of a corpus, sorted by id (hidden folders skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise HecvlError("lecture corpus folder not found", root)
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_video(lecture_dir: Path) -> tuple[Path | None, list[Issue]]:
    """The lecture's single `video.<ext>` file, or None with the reason."""
    named = sorted(p for p in lecture_dir.glob("video.*") if p.is_file())
    videos = [p for p in named if p.suffix.lower() in VIDEO_EXTENSIONS]
    if len(videos) == 1:
        return videos[0], []
    if len(videos) > 1:
        return None, [
            ("error", f"several video files ({', '.join(p.name for p in videos)}): keep exactly one")
        ]
    others = f" (found {', '.join(p.name for p in named)}: unsupported extension)" if named else ""
    wanted = "/".join(ext.lstrip(".") for ext in VIDEO_EXTENSIONS)
    return None, [("error", f"no video file video.{{{wanted}}}{others}")]


def read_abstract(path: Path) -> tuple[str, list[Issue]]:
    """The abstract text ("" with a warning if absent or blank)."""
    if not path.is_file():
        return "", [("warning", "no abstract.txt: the lecture gives no video-level pair")]
    try:
        text = path.read_text(encoding="utf-8-sig").strip()
    except UnicodeDecodeError as exc:
        return "", [("error", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return "", [("error", f"cannot read: {exc.strerror}")]
    return text, ([] if text else [("warning", "the abstract is empty")])


def read_meta(path: Path) -> tuple[dict[str, Any], list[Issue]]:
    """The optional meta.json object ({} if absent)."""
    if not path.is_file():
        return {}, []
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        return {}, [("error", json_error(exc))]
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [("error", f"cannot read: {exc}")]
    if not isinstance(data, dict):
        return {}, [("error", "expected a JSON object")]
    return data, []


def read_lecture_keysteps(path: Path) -> tuple[pd.DataFrame | None, list[Issue]]:
    """keysteps.csv with every problem; absent means an empty table and a warning."""
    if not path.is_file():
        return empty_segments(KEYSTEP_COLUMNS), [
            ("warning", "no keysteps.csv: the lecture gives no phase-level pairs")
        ]
    return read_segments_csv(path, ["start", "end", "step"], ["text"], empty_severity="warning")


def load_lecture(lecture_dir: str | Path) -> Lecture:
    """Load one lecture folder; the first error is a HecvlError naming the file at fault."""
    lecture_dir = Path(lecture_dir)
    if not lecture_dir.is_dir():
        raise HecvlError("lecture folder not found", lecture_dir)
    video, issues = find_video(lecture_dir)
    raise_first_error(issues, lecture_dir)
    assert video is not None  # find_video returns None only with an error
    narration_path = lecture_dir / NARRATION_FILE
    narrations = strict(*read_segments_csv(narration_path, ["start", "end", "text"]), narration_path)
    keysteps_path = lecture_dir / KEYSTEPS_FILE
    keysteps = strict(*read_lecture_keysteps(keysteps_path), keysteps_path)
    abstract_path = lecture_dir / ABSTRACT_FILE
    abstract, issues = read_abstract(abstract_path)
    raise_first_error(issues, abstract_path)
    meta_path = lecture_dir / META_FILE
    meta, issues = read_meta(meta_path)
    raise_first_error(issues, meta_path)
    return Lecture(lecture_dir.name, lecture_dir, video, narrations, keysteps, abstract, meta)


def iter_lectures(corpus_root: str | Path) -> Iterator[Lecture]:
    """Every lecture of a corpus, sorted by id, each strictly loaded."""
    for lecture_dir in lecture_dirs(corpus_root):
        yield load_lecture(lecture_dir)
