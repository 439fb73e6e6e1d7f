"""Readers for the published phase-label formats, producing one 1 fps label table (method.md §5).

Every format becomes the same table, `video, frame_sec, phase_id, phase_name` (str, int, int, str),
sorted by video then second, so evaluation never needs to know where the labels came from:
- Cholec80 `videoNN-phase.txt` (one row per video frame): second i is the row with
  Frame == round(fps * i), fps being the video's real rate (25 unless told otherwise);
- AutoLaparo `label_NN.txt` (one row per second, 1-based): second i is row i+1, id = value - 1;
- MultiBypass140 `NN.mp4.json` (segments in ms): second i is the class segment (ids 0-11) with
  start <= 1000*i < end; the overlays 12 and 13 are never classes; seconds in no class segment are
  dropped. Class segments that overlap are an error naming the video and the times: the published
  files never overlap, so an overlap means a damaged or hand-edited file, and picking a winner
  silently would change the ground truth.

The readers are strict: anything the format does not allow (unknown phase names or ids, frame numbers
that repeat, go back or skip, malformed JSON) is a HecvlError naming the file, the line and the problem.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from hecvl.datasets.classes import (
    AUTOLAPARO,
    CHOLEC80,
    MULTIBYPASS140,
    MULTIBYPASS140_OVERLAYS,
    check_format,
    multibypass_classes,
)
from hecvl.errors import HecvlError
from hecvl.io import json_error

log = logging.getLogger(__name__)

LABEL_COLUMNS: list[str] = ["video", "frame_sec", "phase_id", "phase_name"]
CHOLEC80_FPS = 25.0
TOOL_COLUMNS: list[str] = ["Grasper", "Bipolar", "Hook", "Scissors", "Clipper", "Irrigator", "SpecimenBag"]

# File name -> video id, as each dataset names its label files (the id is the video file's stem).
LABEL_FILE_PATTERNS: dict[str, re.Pattern[str]] = {
    "cholec80": re.compile(r"^(?P<video>.+)-phase\.txt$"),
    "autolaparo": re.compile(r"^label_(?P<video>.+)\.txt$"),
    "multibypass140": re.compile(r"^(?P<video>.+)\.mp4\.json$"),
}
LABEL_FILE_EXAMPLES: dict[str, str] = {
    "cholec80": "video41-phase.txt",
    "autolaparo": "label_01.txt",
    "multibypass140": "BBP01.mp4.json",
}
TOOL_FILE_PATTERN = re.compile(r"^(?P<video>.+)-tool\.txt$")


# --- the 1 fps convention ------------------------------------------------------------------------


def frame_of_second(seconds: np.ndarray | int, fps: float) -> np.ndarray:
    """Frame index shown at second i: round(fps * i), halves rounded up (the frame cache's rule)."""
    return np.floor(np.asarray(seconds, dtype=np.float64) * fps + 0.5).astype(np.int64)


def seconds_in_video(num_frames: int, fps: float) -> int:
    """Seconds that have a frame, i = 0 .. ceil(num_frames / fps) - 1 (the frame cache's rows)."""
    # the same count as hecvl.video.sample_times at 1 fps (guarding against 250 / 25.000000001)
    return math.ceil(num_frames / fps - 1e-9) if num_frames > 0 else 0


def _check_fps(fps: float, path: Path) -> float:
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise HecvlError(f"frame rate must be a positive number, got {fps!r}", path)
    return float(fps)


def empty_label_table() -> pd.DataFrame:
    """A label table with no rows but the right columns and dtypes."""
    return _table([], [], [], [])


def _table(videos: list[str] | str, secs, ids, names) -> pd.DataFrame:
    n = len(secs)
    if isinstance(videos, str):
        videos = [videos] * n
    return pd.DataFrame(
        {
            "video": pd.array(videos, dtype="str"),
            "frame_sec": np.asarray(secs, dtype=np.int64),
            "phase_id": np.asarray(ids, dtype=np.int64),
            "phase_name": pd.array(list(names), dtype="str"),
        }
    )


# --- finding label files -------------------------------------------------------------------------


def video_id_of(fmt: str, path: str | Path) -> str | None:
    """The video id a label file belongs to (`video41`, `01`, `BBP01`), or None if not a label file."""
    match = LABEL_FILE_PATTERNS[check_format(fmt)].match(Path(path).name)
    return match["video"] if match else None


def find_label_files(fmt: str, path: str | Path) -> dict[str, Path]:
    """{video id: label file} for a label file or a folder searched recursively, sorted by video id.

    Only files named as the format names them count, so a Cholec80 folder may hold its tool files and
    a MultiBypass140 folder its tables without confusing the reader.
    """
    return _find_files(path, LABEL_FILE_PATTERNS[check_format(fmt)], f"{fmt} label", LABEL_FILE_EXAMPLES[fmt])


def _find_files(path: str | Path, pattern: re.Pattern[str], what: str, example: str) -> dict[str, Path]:
    path = Path(path)
    if path.is_file():
        match = pattern.match(path.name)
        if not match:
            raise HecvlError(f"not a {what} file name (expected a name like {example})", path)
        return {match["video"]: path}
    if not path.is_dir():
        raise HecvlError(f"no such {what} file or folder", path)
    found: dict[str, Path] = {}
    for file in sorted(path.rglob("*")):
        match = pattern.match(file.name)
        if not match or not file.is_file():
            continue
        video = match["video"]
        if video in found:
            raise HecvlError(f"two {what} files for video {video}: {found[video]} and {file}", path)
        found[video] = file
    if not found:
        raise HecvlError(f"no {what} files (named like {example}) found in this folder", path)
    return dict(sorted(found.items()))


# --- the three formats ---------------------------------------------------------------------------


def read_label_file(
    fmt: str, path: str | Path, fps: float | None = None, classes: list[str] | None = None
) -> pd.DataFrame:
    """The 1 fps label table of one label file (see the module docstring for each format's rule).

    `fps` is the video's frame rate (Cholec80 only; default 25). `classes` overrides the class names
    (MultiBypass140 reads them from the dataset's phase table).
    """
    path = Path(path)
    video = video_id_of(fmt, path)
    if video is None:
        raise HecvlError(
            f"not a {fmt} label file name (expected a name like {LABEL_FILE_EXAMPLES[fmt]})", path
        )
    if not path.is_file():
        raise HecvlError("label file not found", path)
    if fmt == "cholec80":
        return _read_cholec80(path, video, _check_fps(CHOLEC80_FPS if fps is None else fps, path))
    if fmt == "autolaparo":
        return _read_autolaparo(path, video)
    return _read_multibypass140(path, video, classes or MULTIBYPASS140)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HecvlError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path) from None
    except OSError as exc:
        raise HecvlError(f"cannot read: {exc.strerror}", path) from None


def _check_frame_sequence(frames: np.ndarray, line_numbers: list[int], path: Path, first: int) -> None:
    """Frame numbers must run first, first+1, ... with no repeat, step back or gap; name the first fault."""
    if frames.size == 0:
        raise HecvlError("no label rows after the header", path)
    if frames[0] != first:
        raise HecvlError(
            f"line {line_numbers[0]}: the first frame number is {frames[0]}, expected {first}", path
        )
    steps = np.diff(frames)
    bad = np.flatnonzero(steps != 1)
    if bad.size == 0:
        return
    k = int(bad[0])
    prev, cur, line = int(frames[k]), int(frames[k + 1]), line_numbers[k + 1]
    if cur == prev:
        problem = f"frame number {cur} is duplicated"
    elif cur < prev:
        problem = f"frame numbers are not increasing ({cur} after {prev})"
    else:
        problem = f"frame numbers skip from {prev} to {cur} (frames missing)"
    raise HecvlError(f"line {line}: {problem}", path)


def _read_cholec80(path: Path, video: str, fps: float) -> pd.DataFrame:
    """`Frame<TAB>Phase`, one row per video frame from 0; second i = frame round(fps*i)."""
    lines = _read_text(path).splitlines()
    if not lines or lines[0].strip().split("\t") != ["Frame", "Phase"]:
        got = lines[0][:60] if lines else "an empty file"
        raise HecvlError(f"expected the header 'Frame<TAB>Phase', got {got!r}", path)
    body = [(n, line) for n, line in enumerate(lines[1:], start=2) if line.strip()]
    frames = np.empty(len(body), dtype=np.int64)
    phases: list[str] = []
    for k, (line_no, line) in enumerate(body):
        parts = line.strip().split("\t")
        if len(parts) != 2 or not parts[0].strip().isdigit():
            raise HecvlError(
                f"line {line_no}: expected '<frame number><TAB><phase name>', got {line!r}", path
            )
        frames[k] = int(parts[0])
        phases.append(parts[1].strip())
    _check_frame_sequence(frames, [n for n, _ in body], path, first=0)
    lookup = {name: i for i, name in enumerate(CHOLEC80)}
    ids = np.fromiter((lookup.get(p, -1) for p in phases), dtype=np.int64, count=len(phases))
    bad = np.flatnonzero(ids < 0)
    if bad.size:
        k = int(bad[0])
        raise HecvlError(
            f"line {body[k][0]}: unknown phase name {phases[k]!r} (known: {', '.join(CHOLEC80)})", path
        )
    n_frames = len(frames)
    candidates = np.arange(seconds_in_video(n_frames, fps) + 1)
    at = frame_of_second(candidates, fps)
    secs, at = candidates[at < n_frames], at[at < n_frames]
    picked = ids[at]
    return _table(video, secs, picked, [CHOLEC80[i] for i in picked])


def _read_autolaparo(path: Path, video: str) -> pd.DataFrame:
    """Header `Frame  Phase`; rows `0001<TAB>3` (1-based second, phase 1-7); second i = row i+1."""
    lines = _read_text(path).splitlines()
    if not lines or lines[0].split() != ["Frame", "Phase"]:
        got = lines[0][:60] if lines else "an empty file"
        raise HecvlError(f"expected the header 'Frame  Phase', got {got!r}", path)
    body = [(n, line) for n, line in enumerate(lines[1:], start=2) if line.strip()]
    frames = np.empty(len(body), dtype=np.int64)
    values = np.empty(len(body), dtype=np.int64)
    for k, (line_no, line) in enumerate(body):
        parts = line.split()
        if len(parts) != 2 or not (parts[0].isdigit() and parts[1].lstrip("-").isdigit()):
            raise HecvlError(f"line {line_no}: expected '<second><TAB><phase 1-7>', got {line!r}", path)
        frames[k], values[k] = int(parts[0]), int(parts[1])
    _check_frame_sequence(frames, [n for n, _ in body], path, first=1)
    bad = np.flatnonzero((values < 1) | (values > len(AUTOLAPARO)))
    if bad.size:
        k = int(bad[0])
        raise HecvlError(
            f"line {body[k][0]}: unknown phase {values[k]} (AutoLaparo phases are 1-{len(AUTOLAPARO)})", path
        )
    ids = values - 1
    return _table(video, frames - 1, ids, [AUTOLAPARO[i] for i in ids])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_phase_segment(seg: object, where: str, classes: list[str], path: Path) -> tuple[float, float, int]:
    """One entry of the `phases` list as (start, end, label_id), or a one-line error saying what is wrong."""
    if not isinstance(seg, dict) or not {"start", "end", "label_id"} <= seg.keys():
        raise HecvlError(f"{where}: expected an object with start, end, label_id, label_name", path)
    start, end, pid, name = seg["start"], seg["end"], seg["label_id"], seg.get("label_name")
    if not (_is_number(start) and _is_number(end)):
        raise HecvlError(f"{where}: start and end must be numbers (ms), got {start!r}, {end!r}", path)
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise HecvlError(f"{where}: label_id must be an integer, got {pid!r}", path)
    if start < 0 or end < start:
        raise HecvlError(f"{where}: bad time range [{start}, {end}) ms", path)
    if pid in MULTIBYPASS140_OVERLAYS:
        expected = MULTIBYPASS140_OVERLAYS[pid]
    elif 0 <= pid < len(classes):
        expected = classes[pid]
    else:
        raise HecvlError(
            f"{where}: unknown phase id {pid} (classes are 0-{len(classes) - 1}, overlays 12-13)", path
        )
    if name is not None and name != expected:
        raise HecvlError(f"{where}: unknown phase name {name!r} for id {pid} (expected {expected!r})", path)
    return start, end, pid


def _check_no_overlap(
    segments: list[tuple[float, float, int]], video: str, classes: list[str], path: Path
) -> None:
    """Class segments (sorted) must not overlap: each second has one phase."""
    for (s0, e0, p0), (s1, e1, p1) in itertools.pairwise(segments):
        if s1 < e0:
            raise HecvlError(
                f"class segments overlap in video {video}: {classes[p0]} [{s0}, {e0}) ms and "
                f"{classes[p1]} [{s1}, {e1}) ms",
                path,
            )


def _segments_to_seconds(segments: list[tuple[float, float, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's seconds i with start <= 1000*i < end, and its class id for each."""
    secs: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    for start, end, pid in segments:
        first, stop = math.ceil(start / 1000), math.ceil(end / 1000)
        if stop > first:
            secs.append(np.arange(first, stop, dtype=np.int64))
            ids.append(np.full(stop - first, pid, dtype=np.int64))
    all_secs = np.concatenate(secs) if secs else np.empty(0, dtype=np.int64)
    all_ids = np.concatenate(ids) if ids else np.empty(0, dtype=np.int64)
    return all_secs, all_ids


def _read_multibypass140(path: Path, video: str, classes: list[str]) -> pd.DataFrame:
    """JSON `{"phases": [{start, end, label_name, label_id}], ...}` in ms; classes 0-11 only."""
    try:
        doc = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise HecvlError(json_error(exc), path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("phases"), list):
        raise HecvlError("expected a JSON object with a 'phases' list", path)
    checked = [
        _check_phase_segment(seg, f"phases[{k}]", classes, path) for k, seg in enumerate(doc["phases"])
    ]
    # the overlays (out of body, severe index) are checked but say nothing about the phase
    segments = sorted(seg for seg in checked if seg[2] not in MULTIBYPASS140_OVERLAYS)
    _check_no_overlap(segments, video, classes, path)
    all_secs, all_ids = _segments_to_seconds(segments)
    return _table(video, all_secs, all_ids, [classes[i] for i in all_ids])


# --- public entry points -------------------------------------------------------------------------


def read_labels(
    fmt: str,
    path: str | Path,
    fps: float | Mapping[str, float] | None = None,
    tables: str | Path | None = None,
) -> pd.DataFrame:
    """The 1 fps label table of a label file or of every label file under a folder.

    `fps`: Cholec80 only, one rate for all videos or {video id: rate} (the registry passes each
    video's probed rate); default 25. `tables`: MultiBypass140's `tables/` folder or `phase.csv`,
    checked against the built-in class names; by default `PATH/tables` when PATH is a folder that
    has one (the dataset's root).
    """
    check_format(fmt)
    if fps is not None and fmt != "cholec80":
        raise HecvlError(f"a frame rate only applies to Cholec80 labels ({fmt} labels are at 1 fps)")
    if fmt == "multibypass140" and tables is None and (Path(path) / "tables").is_dir():
        tables = Path(path) / "tables"
    classes = multibypass_classes(tables) if fmt == "multibypass140" else None
    files = find_label_files(fmt, path)
    parts = []
    for video, file in files.items():
        rate = fps.get(video) if isinstance(fps, Mapping) else fps
        parts.append(read_label_file(fmt, file, fps=rate, classes=classes))
    return sort_label_table(pd.concat(parts, ignore_index=True) if parts else empty_label_table())


def sort_label_table(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by video then second, with a fresh index (the table's canonical order)."""
    return df.sort_values(["video", "frame_sec"], kind="stable").reset_index(drop=True)


def trim_to_video(
    labels: pd.DataFrame,
    num_seconds: int,
    label_path: str | Path,
    video_path: str | Path,
    tolerance_s: int = 1,
) -> pd.DataFrame:
    """Drop label seconds the video does not have, if they overrun it by at most `tolerance_s`.

    Annotation tools round the last segment's end, so labels that run up to one second past the last
    frame are trimmed with a warning; more than that means the labels belong to another (longer) video
    and is an error naming the label file.
    """
    over = labels["frame_sec"] >= num_seconds
    if not over.any():
        return labels
    last = int(labels["frame_sec"].max())
    beyond = last - (num_seconds - 1)
    if beyond > tolerance_s:
        raise HecvlError(
            f"labels run to second {last} but the video {video_path} has only {num_seconds} s "
            f"({beyond} s too long; at most {tolerance_s} s is tolerated)",
            label_path,
        )
    log.warning(
        "%s: dropping %d label second(s) past the end of %s (%d s long)",
        label_path,
        int(over.sum()),
        video_path,
        num_seconds,
    )
    return labels.loc[~over].reset_index(drop=True)


def load_label_table(path: str | Path) -> pd.DataFrame:
    """Read back a label table written by `hecvl labels` (video ids stay strings: `01` is not 1)."""
    path = Path(path)
    if not path.is_file():
        raise HecvlError("label table not found", path)
    try:
        df = pd.read_csv(path, dtype={"video": "str", "phase_name": "str"}, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise HecvlError(f"not a readable CSV label table: {exc}", path) from None
    if list(df.columns) != LABEL_COLUMNS:
        raise HecvlError(f"expected the columns {','.join(LABEL_COLUMNS)}, got {','.join(df.columns)}", path)
    for col in ("frame_sec", "phase_id"):
        if not pd.api.types.is_integer_dtype(df[col]):
            raise HecvlError(f"column {col} must hold integers", path)
    return df


def read_tools(path: str | Path, fps: float = CHOLEC80_FPS) -> pd.DataFrame:
    """Cholec80 tool presence at 1 fps: `video, frame_sec` and the 7 tool columns (0/1).

    The published files have one row per second at Frame = 25*i; rows elsewhere are an error.
    """
    files = _find_files(path, TOOL_FILE_PATTERN, "Cholec80 tool", "video41-tool.txt")
    parts = [_read_tool_file(file, video, fps) for video, file in files.items()]
    return pd.concat(parts, ignore_index=True).sort_values(["video", "frame_sec"]).reset_index(drop=True)


def _read_tool_file(path: Path, video: str, fps: float) -> pd.DataFrame:
    lines = _read_text(path).splitlines()
    header = lines[0].strip().split("\t") if lines else []
    if header != ["Frame", *TOOL_COLUMNS]:
        raise HecvlError(f"expected the header 'Frame' + {' '.join(TOOL_COLUMNS)} (tab-separated)", path)
    body = [(n, line) for n, line in enumerate(lines[1:], start=2) if line.strip()]
    if not body:
        raise HecvlError("no tool rows after the header", path)
    values = np.empty((len(body), 1 + len(TOOL_COLUMNS)), dtype=np.int64)
    for k, (line_no, line) in enumerate(body):
        parts = line.strip().split("\t")
        if len(parts) != values.shape[1] or not all(p.strip().isdigit() for p in parts):
            raise HecvlError(f"line {line_no}: expected a frame number and 7 values 0/1, got {line!r}", path)
        values[k] = [int(p) for p in parts]
    expected = frame_of_second(np.arange(len(body)), fps)
    wrong = np.flatnonzero(values[:, 0] != expected)
    if wrong.size:
        k = int(wrong[0])
        raise HecvlError(
            f"line {body[k][0]}: frame {values[k, 0]}, expected {expected[k]} (one row per second)", path
        )
    if ((values[:, 1:] != 0) & (values[:, 1:] != 1)).any():
        k = int(np.flatnonzero(((values[:, 1:] != 0) & (values[:, 1:] != 1)).any(axis=1))[0])
        raise HecvlError(f"line {body[k][0]}: tool values must be 0 or 1", path)
    out = pd.DataFrame(values[:, 1:], columns=TOOL_COLUMNS)
    out.insert(0, "frame_sec", np.arange(len(body), dtype=np.int64))
    out.insert(0, "video", pd.array([video] * len(body), dtype="str"))
    return out
