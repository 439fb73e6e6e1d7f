"""The generic target-dataset format: your own dataset as a folder, read into the same 1 fps label table.

    DIR/videos/<id>.<ext>   any of .mp4 .mkv .webm .avi .mov
    DIR/labels/<id>.csv     `start,end,phase` (seconds, half-open: second i is the row with
                            start <= i < end) or `frame_sec,phase` (second i is the row with frame_sec == i)
    DIR/classes.yaml        `classes: [names in id order]`; optional `prompts: {name: [texts]}` (the
                            zero-shot prompts of the decomposed style) and `ignore: [names]` (not scored)
    DIR/splits.json         `{split: [video ids]}`

Both label styles give the table of the published formats (labels.py): `video, frame_sec, phase_id,
phase_name`, the id being the class's position in classes.yaml. Seconds no row covers are unlabelled and
dropped, as in MultiBypass140. Every reader here collects *all* the problems of a file as (severity,
message) pairs naming the line, so `hecvl dataset check` lists them in one pass; the registry reads
through the same code and raises the first error, so a dataset the check passes is one evaluation reads.
"""

from __future__ import annotations

import csv
import difflib
import glob
import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hecvl.datasets.labels import empty_label_table, seconds_in_video, sort_label_table
from hecvl.errors import HecvlError, Issue, raise_first_error
from hecvl.io import read_json, read_yaml
from hecvl.video.reader import VIDEO_EXTENSIONS, probe_video

CLASSES_FILE = "classes.yaml"
VIDEOS_DIR = "videos"
LABELS_DIR = "labels"
SPLITS_FILE = "splits.json"
INTERVAL_COLUMNS: tuple[str, ...] = ("start", "end", "phase")
SECOND_COLUMNS: tuple[str, ...] = ("frame_sec", "phase")
CLASS_KEYS: tuple[str, ...] = ("classes", "prompts", "ignore")
# Row problems listed per file before the rest are counted: a file wrong on every row says so in a screen.
MAX_ROW_PROBLEMS = 20
# A label time beyond this is a typo (no operation is filmed for two days), refused before it costs memory.
MAX_SECONDS = 48 * 3600
_EXTS = " ".join(VIDEO_EXTENSIONS)


@dataclass(frozen=True)
class ClassTable:
    """classes.yaml read and checked: class names in id order, their own prompts, the classes not scored."""

    classes: list[str]
    prompts: dict[str, list[str]] = field(default_factory=dict)
    ignore: list[str] = field(default_factory=list)
    path: Path | None = None
    sha256: str = ""  # of the file's bytes: prompts from it are reported with this hash


@dataclass(frozen=True)
class DatasetProblem:
    """One fault of a generic dataset: the file, what (with the line where there is one), how bad."""

    path: Path
    message: str
    severity: str  # "error" | "warning"

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


def _problems(path: Path, issues: Sequence[Issue]) -> list[DatasetProblem]:
    return [DatasetProblem(path, message, severity) for severity, message in issues]


def class_label(name: str) -> str:
    """The readable form of a class name (underscores as spaces): the prompt when it has none of its own."""
    return " ".join(name.replace("_", " ").split())


# --- classes.yaml --------------------------------------------------------------------------------


def _names(value: Any, key: str, issues: list[Issue]) -> list[str] | None:
    """A list of unique non-empty names under `key`, every fault recorded; None when not a list at all."""
    if not isinstance(value, list):
        issues.append(("error", f"{key}: expected a list of class names, got {type(value).__name__}"))
        return None
    names: list[str] = []
    first: dict[str, int] = {}
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            issues.append(("error", f"{key}[{i}]: expected a non-empty class name, got {item!r}"))
            continue
        name = item.strip()
        if name in first:
            issues.append(("error", f"{key}[{i}]: {name!r} is listed twice (also {key}[{first[name]}])"))
            continue
        first[name] = i
        names.append(name)
    return names


def read_class_table_issues(path: str | Path) -> tuple[ClassTable | None, list[Issue]]:
    """classes.yaml and every problem in it; the table is None when no class list can be read."""
    path = Path(path)
    try:
        data = read_yaml(path, "class file", missing=f"no {CLASSES_FILE} (the class names in id order)")
    except HecvlError as exc:
        return None, [("error", exc.message)]
    if not isinstance(data, dict) or "classes" not in data:
        return None, [("error", "expected a mapping with `classes: [names in id order]` "
                                "(and optionally `prompts:` and `ignore:`)")]
    issues: list[Issue] = []
    extra = [str(k) for k in data if k not in CLASS_KEYS]
    if extra:
        known_keys = ", ".join(CLASS_KEYS)
        issues.append(("warning", f"unknown key(s) {', '.join(extra)} ignored (known: {known_keys})"))
    classes = _names(data["classes"], "classes", issues)
    if not classes:
        if classes is not None and not data["classes"]:
            issues.append(("error", "classes: the list is empty"))
        return None, issues
    known = f"classes: {', '.join(classes)}"
    ignore = _names(data.get("ignore") or [], "ignore", issues) or []
    for name in [n for n in ignore if n not in classes]:
        issues.append(("error", f"ignore: {name!r} is not a class ({known})"))
    ignore = [n for n in ignore if n in classes]
    if ignore and len(ignore) == len(classes):
        issues.append(("error", "ignore: every class is ignored, so nothing would be scored"))
    prompts = _prompts(data.get("prompts"), classes, known, issues)
    if prompts:
        missing = [c for c in classes if c not in prompts and c not in ignore]
        if missing:
            issues.append(("warning", f"prompts: none for {', '.join(missing)}: zero-shot uses the class "
                                      "name for them"))
    table = ClassTable(classes, prompts, ignore, path, hashlib.sha256(path.read_bytes()).hexdigest())
    return table, issues


def _prompts(value: Any, classes: list[str], known: str, issues: list[Issue]) -> dict[str, list[str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        issues.append(("error", f"prompts: expected a mapping {{class name: [prompt texts]}}, "
                                f"got {type(value).__name__}"))
        return {}
    prompts: dict[str, list[str]] = {}
    for name, texts in value.items():
        if name not in classes:
            hint = _did_you_mean(str(name), classes)
            issues.append(("error", f"prompts: {name!r} is not a class{hint} ({known})"))
            continue
        texts = [texts] if isinstance(texts, str) else texts
        if not (isinstance(texts, list) and texts and all(isinstance(t, str) and t.strip() for t in texts)):
            issues.append(("error", f"prompts: {name}: expected a non-empty list of non-empty texts"))
            continue
        prompts[name] = [" ".join(t.split()) for t in texts]
    return prompts


def read_class_table(path: str | Path) -> ClassTable:
    """classes.yaml of a generic dataset; the first error as a HecvlError naming the file."""
    table, issues = read_class_table_issues(path)
    raise_first_error(issues, path)
    if table is None:  # pragma: no cover - an unusable file always has an error
        raise HecvlError("no class list", path)
    return table


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    lower = {k.lower(): k for k in known}
    close = lower.get(name.lower()) or next(iter(difflib.get_close_matches(name, list(known), n=1)), None)
    return f" (did you mean {close!r}?)" if close else ""


# --- labels/<id>.csv ------------------------------------------------------------------------------


def _rows(path: Path) -> tuple[list[tuple[int, list[str]]] | None, list[Issue]]:
    """The non-blank CSV rows with their file line numbers (the header is the first)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [("error", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return None, [("error", f"cannot read: {exc.strerror}")]
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, [cell.strip() for cell in row]))
    except csv.Error as exc:
        return None, [("error", f"line {reader.line_num}: unreadable CSV: {exc}")]
    return rows, []


def _style(line: int, header: list[str]) -> tuple[tuple[str, ...] | None, list[Issue]]:
    """Which label style a header declares (interval or per second), or None with the reason."""
    expected = f"expected the header {','.join(INTERVAL_COLUMNS)} or {','.join(SECOND_COLUMNS)}"
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        return None, [("error", f"line {line}: column(s) {', '.join(dup)} appear twice ({expected})")]
    has = set(header)
    interval, seconds = set(INTERVAL_COLUMNS) <= has, set(SECOND_COLUMNS) <= has
    if (interval and "frame_sec" in has) or (seconds and {"start", "end"} & has):
        return None, [("error", f"line {line}: both label styles' columns in one file ({expected})")]
    if not (interval or seconds):
        return None, [("error", f"line {line}: {expected}, got {','.join(header)!r}")]
    style = INTERVAL_COLUMNS if interval else SECOND_COLUMNS
    extra = [c for c in header if c not in style]
    issues: list[Issue] = []
    if extra:
        issues.append(("warning", f"line {line}: unknown column(s) {', '.join(extra)} ignored"))
    return style, issues


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_labels(
    path: str | Path, video: str, classes: Sequence[str] | None
) -> tuple[pd.DataFrame | None, list[Issue]]:
    """One label file as the 1 fps table of its valid rows plus a `line` column (the file line each
    second comes from), and every problem found. The table is None when the file has no usable header;
    with `classes` None (an unusable class file) phase names are not checked and every id is -1."""
    path = Path(path)
    rows, issues = _rows(path)
    if rows is None:
        return None, issues
    if not rows:
        return None, [("error", "empty file (no header, no labels)")]
    (header_line, header), body = rows[0], rows[1:]
    style, more = _style(header_line, header)
    issues += more
    if style is None:
        return None, issues
    if not body:
        return None, [*issues, ("error", "no label rows after the header")]
    col = {name: header.index(name) for name in style}
    lookup = {name: i for i, name in enumerate(classes)} if classes is not None else None
    row_issues: list[tuple[int, Issue]] = []  # (line, issue), listed in line order
    unknown: dict[str, list[int]] = {}
    parsed: list[tuple[int, float, float, str]] = []  # (line, start, end, phase) of the valid rows
    for line, row in body:
        if len(row) != len(header):
            row_issues.append((line, ("error", f"line {line}: expected {len(header)} fields "
                                               f"({','.join(header)}), got {len(row)}")))
            continue
        phase = row[col["phase"]]
        ok = True
        if not phase:
            row_issues.append((line, ("error", f"line {line}: empty phase")))
            ok = False
        elif lookup is not None and phase not in lookup:
            unknown.setdefault(phase, []).append(line)
            ok = False
        if style == SECOND_COLUMNS:
            span, problem = _second(row[col["frame_sec"]])
        else:
            span, problem = _interval(row[col["start"]], row[col["end"]])
        if problem:
            row_issues.append((line, (problem[0], f"line {line}: {problem[1]}")))
        if span is not None and ok:
            parsed.append((line, span[0], span[1], phase))
    for phase, lines in unknown.items():
        hint = _did_you_mean(phase, classes or [])
        also = f" (also line {', '.join(map(str, lines[1:6]))}{', ...' if len(lines) > 6 else ''}; " \
               f"{len(lines)} rows in all)" if len(lines) > 1 else ""
        row_issues.append((lines[0], ("error", f"line {lines[0]}: unknown phase {phase!r}{hint}{also} "
                                               f"(classes: {', '.join(classes or [])})")))
    row_issues += _overlaps(parsed, style)
    issues += _capped([issue for _, issue in sorted(row_issues, key=lambda x: x[0])])
    return _seconds_table(video, parsed, lookup or {}), issues


def _second(text: str) -> tuple[tuple[float, float] | None, Issue | None]:
    value = _number(text)
    if value is None or value != int(value):
        return None, ("error", f"frame_sec must be a whole number of seconds, got {text!r}")
    if value < 0:
        return None, ("error", f"negative frame_sec {text}")
    if value >= MAX_SECONDS:
        return None, ("error", f"frame_sec {text} is past {MAX_SECONDS // 3600} h: a typo?")
    return (value, value + 1), None


def _interval(start_text: str, end_text: str) -> tuple[tuple[float, float] | None, Issue | None]:
    start, end = _number(start_text), _number(end_text)
    if start is None or end is None:
        return None, ("error", f"start and end must be numbers (seconds), got {start_text!r}, {end_text!r}")
    if start < 0 or end < 0:
        return None, ("error", f"negative time in the interval [{start_text}, {end_text})")
    if end <= start:
        return None, ("error", f"end <= start in the interval [{start_text}, {end_text})")
    if end > MAX_SECONDS:
        return None, ("error", f"the interval [{start_text}, {end_text}) ends past {MAX_SECONDS // 3600} h: "
                               "a typo?")
    if math.ceil(end) <= math.ceil(start):
        return (start, end), ("warning", f"the interval [{start_text}, {end_text}) holds no whole second "
                                         "(second i is labelled when start <= i < end)")
    return (start, end), None


def _overlaps(parsed: list[tuple[int, float, float, str]], style: tuple[str, ...]) -> list[tuple[int, Issue]]:
    """Rows that label the same time twice: an error naming both lines (no winner is picked silently)."""
    out: list[tuple[int, Issue]] = []
    ordered = sorted(parsed, key=lambda r: (r[1], r[0]))
    reach: tuple[int, float, float, str] | None = None  # the row reaching furthest so far
    for row in ordered:
        if reach is not None and row[1] < reach[2]:
            line, other = row[0], reach[0]
            if style == SECOND_COLUMNS:
                what = f"second {int(row[1])} is labelled twice (also line {other})"
            else:
                what = (f"the interval [{row[1]:g}, {row[2]:g}) {row[3]} overlaps line {other}'s "
                        f"[{reach[1]:g}, {reach[2]:g}) {reach[3]}")
            out.append((line, ("error", f"line {line}: {what}")))
        if reach is None or row[2] > reach[2]:
            reach = row
    return out


def _capped(issues: list[Issue]) -> list[Issue]:
    if len(issues) <= MAX_ROW_PROBLEMS:
        return issues
    rest = issues[MAX_ROW_PROBLEMS:]
    severity = "error" if any(sev == "error" for sev, _ in rest) else "warning"
    return [*issues[:MAX_ROW_PROBLEMS], (severity, f"{len(rest)} more problem(s) in this file not listed")]


def _seconds_table(video: str, parsed: list[tuple[int, float, float, str]], ids: dict[str, int]
                   ) -> pd.DataFrame:
    """The rows' seconds (i with start <= i < end) as the label table, with the line of each."""
    secs, names, lines = [], [], []
    for line, start, end, phase in parsed:
        first, stop = math.ceil(start), math.ceil(end)
        secs.append(np.arange(first, stop, dtype=np.int64))
        names += [phase] * (stop - first)
        lines.append(np.full(stop - first, line, dtype=np.int64))
    empty = empty_label_table()
    table = pd.DataFrame({
        "video": pd.array([video] * len(names), dtype=empty["video"].dtype),
        "frame_sec": np.concatenate(secs) if secs else np.empty(0, np.int64),
        "phase_id": np.array([ids.get(n, -1) for n in names], dtype=np.int64),
        "phase_name": pd.array(names, dtype=empty["phase_name"].dtype),
        "line": np.concatenate(lines) if lines else np.empty(0, np.int64),
    })
    return sort_label_table(table)


def read_generic_labels(path: str | Path, classes: Sequence[str], video: str | None = None) -> pd.DataFrame:
    """The 1 fps label table of one `labels/<id>.csv` (video id = the file's stem); the first error as a
    HecvlError naming the file and line."""
    path = Path(path)
    table, issues = parse_labels(path, video or path.stem, classes)
    raise_first_error(issues, path)
    if table is None:  # pragma: no cover - a file without a table always has an error
        raise HecvlError("no labels", path)
    return table.drop(columns="line")


def overrun_issues(table: pd.DataFrame, num_seconds: int, video_path: Path, tolerance_s: int) -> list[Issue]:
    """Labels past the video's last second: an error beyond `tolerance_s` (the registry refuses them),
    else a warning (the registry trims them); the message names the line that runs furthest."""
    if table.empty or int(table["frame_sec"].max()) < num_seconds:
        return []
    last = table.loc[table["frame_sec"].idxmax()]
    beyond = int(last["frame_sec"]) - (num_seconds - 1)
    where = f"line {int(last['line'])}: labels run to second {int(last['frame_sec'])} but the video " \
            f"{video_path} has only {num_seconds} s"
    if beyond > tolerance_s:
        return [("error", f"{where} ({beyond} s too long; at most {tolerance_s} s is tolerated)")]
    return [("warning", f"{where}: the last {beyond} s will be dropped")]


# --- videos/ and labels/ folders, splits.json -----------------------------------------------------


def resolve_video(path: Path) -> Path:
    """`videos/<id>.*` -> the one file with a video extension (the pattern itself when there is none)."""
    if not path.name.endswith(".*"):
        return path
    stem = path.name[:-2]
    found = sorted(p for p in path.parent.glob(glob.escape(stem) + ".*")
                   if p.stem == stem and p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    if len(found) > 1:
        raise HecvlError(f"several videos for {stem}: {', '.join(p.name for p in found)}: keep one",
                         path.parent)
    return found[0] if found else path


def find_videos(folder: Path) -> tuple[dict[str, Path], list[DatasetProblem]]:
    """{video id: file} of `videos/` (any of the video extensions) and its problems."""
    if not folder.is_dir():
        return {}, [DatasetProblem(folder, f"no videos folder (<id>.<ext>, ext one of {_EXTS})", "error")]
    found: dict[str, list[Path]] = {}
    problems: list[DatasetProblem] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() in VIDEO_EXTENSIONS:
            found.setdefault(p.stem, []).append(p)
        else:
            problems.append(DatasetProblem(p, f"not a video file ({_EXTS}): ignored", "warning"))
    videos = {}
    for video, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            problems.append(DatasetProblem(folder, f"several videos for {video} ({names}): keep one",
                                           "error"))
        else:
            videos[video] = paths[0]
    if not found:
        problems.append(DatasetProblem(folder, f"no video files ({_EXTS})", "error"))
    return videos, problems


def find_label_files(folder: Path) -> tuple[dict[str, Path], list[DatasetProblem]]:
    """{video id: file} of `labels/<id>.csv` and the folder's problems."""
    if not folder.is_dir():
        return {}, [DatasetProblem(folder, "no labels folder (<id>.csv per video)", "error")]
    files: dict[str, Path] = {}
    problems: list[DatasetProblem] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() == ".csv":
            files[p.stem] = p
        else:
            problems.append(DatasetProblem(p, "not a label file (<id>.csv): ignored", "warning"))
    if not files:
        problems.append(DatasetProblem(folder, "no label files (<id>.csv per video)", "error"))
    return files, problems


def label_files(folder: Path) -> dict[str, Path]:
    """{video id: file} of a generic labels folder; no folder or no file is a HecvlError."""
    files, problems = find_label_files(folder)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise HecvlError(errors[0].message, errors[0].path)
    return files


def read_splits_issues(path: Path, videos: dict[str, Path] | None = None
                       ) -> tuple[dict[str, list[str]] | None, list[Issue]]:
    """splits.json as {split: [ids]} (the valid part; None when unreadable) and every problem; `videos`
    checks that the ids exist."""
    try:
        data = read_json(path, "splits file", missing=f"no {SPLITS_FILE} ({{split: [video ids]}})")
    except HecvlError as exc:
        return None, [("error", exc.message)]
    if not isinstance(data, dict) or not data:
        return None, [("error", "expected a JSON object {split name: [video ids]}")]
    issues: list[Issue] = []
    seen: dict[str, str] = {}
    splits: dict[str, list[str]] = {}
    for name, ids in data.items():
        if not isinstance(ids, list):
            issues.append(("error", f"split {name!r}: expected a list of video ids"))
            continue
        if not ids:
            issues.append(("warning", f"split {name!r} is empty"))
        kept = []
        for i, vid in enumerate(ids):
            where = f"split {name!r} item {i}"
            if not isinstance(vid, str) or not vid:
                issues.append(("error", f"{where}: video ids must be non-empty strings, got {vid!r}"))
                continue
            if vid in seen:
                twice = "twice in this split" if seen[vid] == name else f"in both {seen[vid]!r} and {name!r}"
                issues.append(("error", f"{where}: video {vid} is listed {twice}"))
                continue
            seen[vid] = name
            if videos is not None and vid not in videos:
                issues.append(("error", f"{where}: no video {vid} in {VIDEOS_DIR}/ ({_EXTS})"))
            kept.append(vid)
        splits[name] = kept
    if splits and "test" not in splits:
        issues.append(("warning", "no 'test' split: `hecvl evaluate` then needs --split"))
    return splits, issues


def _video_seconds(path: Path) -> tuple[int | None, list[Issue]]:
    info, issues = probe_video(path)
    return (None, issues) if info is None else (seconds_in_video(info.num_frames, info.fps), [])


# --- the whole dataset ----------------------------------------------------------------------------


@dataclass
class DatasetCheck:
    """What `check_dataset` found: every problem, and the counts its summary line gives."""

    problems: list[DatasetProblem]
    videos: int = 0
    label_files: int = 0
    classes: int = 0

    @property
    def errors(self) -> int:
        return sum(p.severity == "error" for p in self.problems)

    def summary(self) -> str:
        """One line: what the dataset holds, and how many errors and warnings."""
        warnings = len(self.problems) - self.errors
        verdict = "ready to evaluate" if not self.errors else "fix the errors above"
        return (f"{self.videos} video(s), {self.label_files} label file(s), {self.classes} class(es): "
                f"{self.errors} error(s), {warnings} warning(s): {verdict}")


def check_dataset(root: str | Path, probe_videos: bool = True, tolerance_s: int = 1) -> DatasetCheck:
    """Every problem of a generic dataset folder (errors and warnings), file by file.

    `probe_videos=False` does not open the videos (and so skips the label-length checks). `tolerance_s` is
    how far labels may run past a video's end before it is an error (the registry's tolerance).
    """
    root = Path(root)
    if not root.is_dir():
        return DatasetCheck([DatasetProblem(root, "dataset folder not found", "error")])
    problems: list[DatasetProblem] = []
    classes_path = root / CLASSES_FILE
    table, issues = read_class_table_issues(classes_path)
    problems += _problems(classes_path, issues)
    classes = table.classes if table is not None else None
    videos, more = find_videos(root / VIDEOS_DIR)
    problems += more
    labels, more = find_label_files(root / LABELS_DIR)
    problems += more
    splits_path = root / SPLITS_FILE
    splits, issues = read_splits_issues(splits_path, videos if (root / VIDEOS_DIR).is_dir() else None)
    problems += _problems(splits_path, issues)
    in_split = {v for ids in (splits or {}).values() for v in ids}
    for video, path in labels.items():
        if video not in videos:
            problems.append(DatasetProblem(path, f"labels for a video that does not exist (no {VIDEOS_DIR}/"
                                                 f"{video}.<ext>, ext one of {_EXTS})", "error"))
    seconds: dict[str, int] = {}
    for video, path in videos.items():
        if video not in labels:  # an error unless the video is known to be in no split (never evaluated)
            unused = splits is not None and video not in in_split
            problems.append(DatasetProblem(
                path, f"no labels ({LABELS_DIR}/{video}.csv)" + (", and in no split" if unused else ""),
                "warning" if unused else "error"))
        elif splits and video not in in_split:
            problems.append(DatasetProblem(path, f"in no split of {SPLITS_FILE}: never evaluated", "warning"))
        if probe_videos:
            n, issues = _video_seconds(path)
            problems += _problems(path, issues)
            if n is not None:
                seconds[video] = n
    if classes is None and labels:
        problems.append(DatasetProblem(root / LABELS_DIR, f"phase names not checked: {CLASSES_FILE} has no "
                                                          "usable class list", "warning"))
    for video, path in labels.items():
        parsed, issues = parse_labels(path, video, classes)
        if parsed is not None and video in seconds:  # also for a file with other errors: list them all
            issues += overrun_issues(parsed, seconds[video], videos[video], tolerance_s)
        problems += _problems(path, issues)
    return DatasetCheck(problems, len(videos), len(labels), len(classes or []))
