"""Timed text of a lecture: narration (`start,end,text`) and keystep (`start,end,step[,text]`) CSVs,
and importers that turn SRT, WebVTT and Whisper-style JSON transcripts into the narration CSV.

Every reader collects *all* the problems of a file as (severity, message) pairs, so the corpus
validator can list them in one pass; the strict readers used by training raise the first error and
log the warnings. Times are seconds (float). Problems found:
errors   - unreadable file, missing columns, no rows, non-numeric or negative times, end <= start,
           empty text (or step title);
warnings - extra columns, segments out of order, overlapping segments (ASR often overlaps a little).
"""

from __future__ import annotations

import html
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hecvl.errors import HecvlError, Issue, raise_first_error
from hecvl.io import json_error, write_csv

log = logging.getLogger(__name__)

NARRATION_COLUMNS: list[str] = ["start", "end", "text"]
KEYSTEP_COLUMNS: list[str] = ["start", "end", "step", "text"]
TRANSCRIPT_FORMATS: dict[str, str] = {".srt": "srt", ".vtt": "vtt", ".json": "json", ".csv": "csv"}
_SHOW = 5  # row numbers quoted per problem


def describe_rows(mask: np.ndarray, unit: str = "row") -> str:
    """'3 rows (row 2, 5, 9)': how many and which (1-based, the first few) rows a mask selects."""
    idx = np.flatnonzero(mask) + 1
    shown = ", ".join(str(i) for i in idx[:_SHOW]) + (", ..." if idx.size > _SHOW else "")
    return f"{idx.size} {unit}{'s' if idx.size != 1 else ''} ({unit} {shown})"


def empty_segments(columns: list[str]) -> pd.DataFrame:
    """A segment table without rows: float times, string text columns."""
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in ("start", "end") else "str") for c in columns})


def segment_issues(
    df: pd.DataFrame, text_columns: list[str], unit: str = "row"
) -> tuple[pd.DataFrame, list[Issue]]:
    """Check timed segments; return them with float times and stripped text, plus every problem.

    `df` has string columns start, end and `text_columns` (all required to be non-empty). Rows whose
    times are invalid are kept (as NaN) so row numbers in messages match the file.
    """
    issues: list[Issue] = []
    out = df.copy()
    for col in ("start", "end"):
        raw = out[col].astype("str").str.strip()
        values = pd.to_numeric(raw, errors="coerce").astype(np.float64).to_numpy()
        bad = ~np.isfinite(values)
        if bad.any():
            issues.append(("error", f"{col} is not a number in {describe_rows(bad, unit)}"))
        neg = np.isfinite(values) & (values < 0)
        if neg.any():
            issues.append(("error", f"{col} is negative in {describe_rows(neg, unit)}"))
        out[col] = values
    start, end = out["start"].to_numpy(), out["end"].to_numpy()
    valid = np.isfinite(start) & np.isfinite(end)
    backwards = valid & (end <= start)
    if backwards.any():
        issues.append(("error", f"end <= start in {describe_rows(backwards, unit)}"))
    for col in text_columns:
        out[col] = out[col].astype("str").str.strip()
        empty = (out[col] == "").to_numpy()
        if empty.any():
            issues.append(("error", f"empty {col} in {describe_rows(empty, unit)}"))
    # Order checks on the rows with valid times, in file order.
    s, e = start[valid], end[valid]
    if s.size > 1:
        positions = np.flatnonzero(valid)
        prev_end = np.maximum.accumulate(e)[:-1]
        back = np.zeros(valid.shape, dtype=bool)
        back[positions[1:]] = s[1:] < s[:-1]
        if back.any():
            issues.append(
                (
                    "warning",
                    f"segments out of order (start before the previous start) in {describe_rows(back, unit)}",
                )
            )
        overlap = np.zeros(valid.shape, dtype=bool)
        overlap[positions[1:]] = (s[1:] < prev_end) & ~back[positions[1:]]
        if overlap.any():
            issues.append(("warning", f"segments overlap the previous one in {describe_rows(overlap, unit)}"))
    return out, issues


def read_segments_csv(
    path: str | Path, required: list[str], optional: list[str] = (), empty_severity: str = "error"
) -> tuple[pd.DataFrame | None, list[Issue]]:
    """Read a timed-segment CSV and collect every problem; the frame is None if it cannot be used at all."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except FileNotFoundError:
        return None, [("error", "file not found")]
    except pd.errors.EmptyDataError:
        return None, [("error", "empty file (no header, no segments)")]
    except UnicodeDecodeError as exc:
        return None, [("error", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    except (pd.errors.ParserError, OSError, ValueError) as exc:
        return None, [("error", f"unreadable CSV: {' '.join(str(exc).split())}")]
    df.columns = [str(c).strip() for c in df.columns]
    header = ",".join([*required, *(f"[{c}]" for c in optional)])
    missing = [c for c in required if c not in df.columns]
    if missing:
        return None, [("error", f"missing column(s) {', '.join(missing)}: expected the header {header}")]
    issues: list[Issue] = []
    extra = [c for c in df.columns if c not in required and c not in optional]
    if extra:
        issues.append(("warning", f"unknown column(s) {', '.join(extra)} ignored (expected {header})"))
    if df.empty:
        return empty_segments([*required, *optional]), [*issues, (empty_severity, "no segments (empty file)")]
    for col in optional:
        if col not in df.columns:
            df[col] = ""
    text_cols = [c for c in required if c not in ("start", "end")]
    checked, more = segment_issues(df[[*required, *optional]], text_cols)
    for col in optional:
        checked[col] = checked[col].astype("str").str.strip()
    return checked, issues + more


def strict(df: pd.DataFrame | None, issues: list[Issue], path: str | Path) -> pd.DataFrame:
    """The frame of a reader that collects issues, once no issue is an error (see raise_first_error)."""
    raise_first_error(issues, path)
    if df is None:  # readers return None only together with an error
        raise HecvlError("unreadable", path)
    return df.reset_index(drop=True)


def read_narrations(path: str | Path) -> pd.DataFrame:
    """A lecture's narration CSV `start,end,text` (seconds), strictly checked."""
    df, issues = read_segments_csv(path, ["start", "end", "text"])
    return strict(df, issues, path)


def read_keysteps(path: str | Path) -> pd.DataFrame:
    """A lecture's keystep CSV `start,end,step[,text]` (text = optional summary, "" when absent)."""
    df, issues = read_segments_csv(path, ["start", "end", "step"], ["text"], empty_severity="warning")
    return strict(df, issues, path)


# --- importers -----------------------------------------------------------------------------------

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[,.](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s.*)?$")
_TAG = re.compile(r"<[^>]*>")


def _seconds(h: str | None, m: str, s: str, frac: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def _clean(lines: list[str]) -> str:
    return " ".join(html.unescape(_TAG.sub("", " ".join(lines))).split())


def _blocks(text: str) -> list[list[tuple[int, str]]]:
    """Split a subtitle file into blocks of (line number, line) separated by blank lines."""
    blocks: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            current.append((number, line.rstrip()))
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _cue(block: list[tuple[int, str]], path: Path, example: str) -> tuple[float, float, str]:
    """Parse one cue block: an optional identifier line, a timing line, then text lines."""
    for k in (0, 1):
        if k < len(block) and "-->" in block[k][1]:
            match = _TIMING.match(block[k][1])
            if not match:
                raise HecvlError(
                    f"line {block[k][0]}: malformed timing line {block[k][1]!r} (expected {example})", path
                )
            g = match.groups()
            return _seconds(*g[:4]), _seconds(*g[4:]), _clean([line for _, line in block[k + 1 :]])
    raise HecvlError(f"line {block[0][0]}: expected a cue with a timing line like {example}", path)


def _read_transcript_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise HecvlError("transcript not found", path) from None
    except UnicodeDecodeError as exc:
        raise HecvlError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path) from None
    except OSError as exc:
        raise HecvlError(f"cannot read the transcript: {exc.strerror}", path) from None


def read_srt(path: str | Path) -> pd.DataFrame:
    """SubRip: numbered cues `HH:MM:SS,mmm --> HH:MM:SS,mmm` followed by text lines."""
    path = Path(path)
    cues = [_cue(b, path, "00:00:01,000 --> 00:00:04,000") for b in _blocks(_read_transcript_text(path))]
    return _finish(cues, path, "cue")


def read_webvtt(path: str | Path) -> pd.DataFrame:
    """WebVTT: a `WEBVTT` header, then cues `[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm [settings]`.

    NOTE, STYLE and REGION blocks are skipped; voice and styling tags are removed from the text.
    """
    path = Path(path)
    blocks = _blocks(_read_transcript_text(path))
    if not blocks or not re.match(r"^WEBVTT(\s|$)", blocks[0][0][1]):
        raise HecvlError("not a WebVTT file: the first line must be 'WEBVTT'", path)
    # The header block may run straight into the first cue when no blank line separates them.
    header, cues_blocks = blocks[0], blocks[1:]
    timing_at = next((k for k, (_, line) in enumerate(header) if "-->" in line), None)
    if timing_at is not None:
        cues_blocks.insert(0, header[max(timing_at - 1, 1) :])
    cues = []
    for block in cues_blocks:
        if re.match(r"^(NOTE|STYLE|REGION)(\s|$)", block[0][1]):
            continue
        cues.append(_cue(block, path, "00:01.000 --> 00:04.000"))
    return _finish(cues, path, "cue")


def read_whisper_json(path: str | Path) -> pd.DataFrame:
    """Whisper-style JSON `{"segments": [{"start", "end", "text"}, ...]}` (seconds)."""
    path = Path(path)
    try:
        doc = json.loads(_read_transcript_text(path))
    except json.JSONDecodeError as exc:
        raise HecvlError(json_error(exc), path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("segments"), list):
        raise HecvlError("expected a JSON object with a 'segments' list (Whisper output)", path)
    cues = []
    for k, seg in enumerate(doc["segments"]):
        if not isinstance(seg, dict) or not {"start", "end", "text"} <= seg.keys():
            raise HecvlError(f"segments[{k}]: expected an object with start, end and text", path)
        start, end, text = seg["start"], seg["end"], seg["text"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (start, end)):
            raise HecvlError(f"segments[{k}]: start and end must be numbers (seconds)", path)
        if not isinstance(text, str):
            raise HecvlError(f"segments[{k}]: text must be a string", path)
        cues.append((float(start), float(end), " ".join(text.split())))
    return _finish(cues, path, "segment")


def _finish(cues: list[tuple[float, float, str]], path: Path, unit: str) -> pd.DataFrame:
    """Drop cues without text (music marks, blank captions), then check what is left."""
    kept = [c for c in cues if c[2]]
    if len(kept) < len(cues):
        log.warning("%s: %d %s(s) without text dropped", path, len(cues) - len(kept), unit)
    if not kept:
        raise HecvlError(f"empty transcript: no {unit} with text", path)
    raw = pd.DataFrame([(str(s), str(e), t) for s, e, t in kept], columns=NARRATION_COLUMNS)
    df, issues = segment_issues(raw, ["text"], unit=unit)
    return strict(df, issues, path)


def import_transcript(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Any supported transcript (format from the extension unless given) as the narration table."""
    path = Path(path)
    fmt = fmt or TRANSCRIPT_FORMATS.get(path.suffix.lower())
    readers = {"srt": read_srt, "vtt": read_webvtt, "json": read_whisper_json, "csv": read_narrations}
    if fmt not in readers:
        known = ", ".join(TRANSCRIPT_FORMATS)
        raise HecvlError(f"unknown transcript format {path.suffix or fmt!r} (known: {known})", path)
    return readers[fmt](path)


def write_narrations(df: pd.DataFrame, path: str | Path) -> None:
    """Write the narration table atomically as `start,end,text` (times rounded to the millisecond)."""
    out = df[NARRATION_COLUMNS].copy()
    out["start"] = out["start"].astype(float).round(3)
    out["end"] = out["end"].astype(float).round(3)
    write_csv(path, out)
