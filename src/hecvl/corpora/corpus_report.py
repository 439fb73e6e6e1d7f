"""What survives of an imported corpus once its videos are fetched: the availability report.

Public corpora list YouTube videos; some are gone, private, region-locked, or re-uploaded at another length
(so the annotations' times no longer fit). Per lecture the report says which (`downloaded`,
`duration_mismatch`, `unavailable`, `no_url`, `unreadable`, `not_downloaded`), and per level how many pairs
the import had, how many are in lectures with a readable video, and how many in lectures whose video also
has the expected length: the corpus pretraining can actually use. Read-only: it fetches nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from hecvl.corpora.corpus import ABSTRACT_FILE, KEYSTEPS_FILE, NARRATION_FILE, find_video, lecture_dirs
from hecvl.corpora.corpus_download import is_current, lecture_source, read_manifest
from hecvl.corpora.transcripts import read_segments_csv
from hecvl.errors import HecvlError
from hecvl.io import write_csv, write_text
from hecvl.video.reader import probe_video

# fine to coarse, with the file each level's pairs come from
PAIR_SOURCES: dict[str, str] = {"clip": NARRATION_FILE, "phase": KEYSTEPS_FILE, "video": ABSTRACT_FILE}
USABLE = ("downloaded", "duration_mismatch")  # a readable video: pairing uses the lecture


@dataclass(frozen=True)
class LectureAvailability:
    """One lecture's row of the report."""

    lecture: str
    status: str
    duration: float | None
    expected_duration: float | None
    clip: int  # narration rows
    phase: int  # keystep rows
    video: int  # 1 with a non-empty abstract
    url: str | None
    error: str


def _rows(path: Path, required: list[str]) -> int:
    """Rows of a segment table as imported (0 when absent or unreadable: it gives no pairs either way)."""
    if not path.is_file():
        return 0
    df, _issues = read_segments_csv(path, required)
    return 0 if df is None else len(df)


def _has_abstract(path: Path) -> int:
    try:
        return int(bool(path.read_text(encoding="utf-8-sig").strip()))
    except (OSError, UnicodeDecodeError):
        return 0


def _duration(video: Path, entry: Mapping[str, Any] | None) -> tuple[float | None, str]:
    """The video's length: from the manifest when it describes this very file, else probed."""
    if is_current(entry, video) and entry and entry.get("status") == "downloaded":
        return float(entry["duration"]), ""

    info, issues = probe_video(video)
    if info is None or not info.duration_s or not math.isfinite(info.duration_s):
        return None, issues[0][1] if issues else "the video has no frames"
    return float(info.duration_s), ""


def lecture_availability(
    folder: Path, entry: Mapping[str, Any] | None, tolerance: float
) -> LectureAvailability:
    """The status of one lecture's video and the pairs its files hold."""
    source = lecture_source(folder)
    counts = {
        "clip": _rows(folder / NARRATION_FILE, ["start", "end", "text"]),
        "phase": _rows(folder / KEYSTEPS_FILE, ["start", "end", "step"]),
        "video": _has_abstract(folder / ABSTRACT_FILE),
    }
    video, _ = find_video(folder)
    duration, error = None, ""
    if video is not None:
        duration, error = _duration(video, entry)
        status = "unreadable" if duration is None else "downloaded"
        expected = source.expected_duration
        if duration is not None and expected is not None and abs(duration - expected) > tolerance:
            status = "duration_mismatch"
            error = f"{duration:.1f} s, expected {expected:.1f} s (tolerance {tolerance:g} s)"
    elif entry:
        status, error = str(entry.get("status", "unavailable")), str(entry.get("error", ""))
        if status in ("downloaded", "unreadable"):  # recorded, since deleted
            status, error = "not_downloaded", "the video recorded in downloads.json is no longer on disk"
    else:
        status = "not_downloaded"
    return LectureAvailability(
        folder.name, status, duration, source.expected_duration, url=source.url, error=error, **counts
    )


def availability(
    corpus: str | Path, tolerance: float = 2.0, progress: bool = True
) -> list[LectureAvailability]:
    """Every lecture's row, sorted by lecture id."""
    corpus = Path(corpus)
    folders = lecture_dirs(corpus)
    if not folders:
        raise HecvlError("no lecture folders in the corpus", corpus)
    entries = read_manifest(corpus)["lectures"]
    return [
        lecture_availability(f, entries.get(f.name), tolerance)
        for f in tqdm(folders, desc="availability", unit="lecture", disable=not progress or None)
    ]


def summarise(rows: Sequence[LectureAvailability]) -> dict[str, Any]:
    """Lectures per status; pairs per level: imported, with a video, with a video of the expected length."""
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    pairs = {
        level: {
            "imported": sum(getattr(r, level) for r in rows),
            "with_video": sum(getattr(r, level) for r in rows if r.status in USABLE),
            "expected_length": sum(getattr(r, level) for r in rows if r.status == "downloaded"),
        }
        for level in PAIR_SOURCES
    }
    return {"lectures": len(rows), "statuses": dict(sorted(statuses.items())), "pairs": pairs}


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The summary as the lines printed on the terminal."""
    statuses = ", ".join(f"{n} {s}" for s, n in summary["statuses"].items())
    lines = [f"{summary['lectures']} lecture(s): {statuses}"]
    for level, n in summary["pairs"].items():
        share = n["with_video"] / n["imported"] if n["imported"] else 0.0
        lines.append(
            f"{level} pairs: {n['with_video']} of {n['imported']} imported have a video ({share:.0%}); "
            f"{n['expected_length']} of the expected length"
        )
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(rows: Sequence[LectureAvailability], summary: Mapping[str, Any], corpus: Path) -> str:
    """The report as Markdown: the two summary tables, then one row per lecture."""
    out = [f"# Availability of `{corpus}`", "", "| status | lectures |", "|---|---:|"]
    out += [f"| {s} | {n} |" for s, n in summary["statuses"].items()]
    out += [
        "",
        "| level | pairs imported | with a video | with a video of the expected length |",
        "|---|---:|---:|---:|",
    ]
    out += [
        f"| {lv} | {n['imported']} | {n['with_video']} | {n['expected_length']} |"
        for lv, n in summary["pairs"].items()
    ]
    fields = list(LectureAvailability.__dataclass_fields__)
    out += ["", "| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    out += ["| " + " | ".join(_cell(v) for v in asdict(r).values()) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write_report(
    rows: Sequence[LectureAvailability], summary: Mapping[str, Any], corpus: Path, out: Path
) -> None:
    """`.md`: the Markdown report; `.csv`: one row per lecture (the summary follows from it)."""
    if out.suffix.lower() == ".csv":
        write_csv(
            out,
            pd.DataFrame([asdict(r) for r in rows], columns=list(LectureAvailability.__dataclass_fields__)),
        )
    elif out.suffix.lower() == ".md":
        write_text(out, to_markdown(rows, summary, corpus))
    else:
        raise HecvlError("the report is written as .md or .csv", out)
