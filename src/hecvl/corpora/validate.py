"""Check a whole lecture corpus and report every problem at once, not the first one.

A corpus of hundreds of lectures assembled by hand or by ASR has many small faults; fixing them one
failed training run at a time is hopeless. `validate_corpus` reads every file of every lecture
(and probes every video for its length) and returns one Problem per fault, errors and warnings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from hecvl.corpora.corpus import (
    ABSTRACT_FILE,
    KEYSTEPS_FILE,
    META_FILE,
    NARRATION_FILE,
    find_video,
    lecture_dirs,
    read_abstract,
    read_lecture_keysteps,
    read_meta,
)
from hecvl.corpora.transcripts import describe_rows, read_segments_csv
from hecvl.errors import Issue
from hecvl.video.reader import probe_video

log = logging.getLogger(__name__)

# Segments may end this much after the video before it is worth a warning (ASR pads the last word).
VIDEO_END_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class Problem:
    """One fault of a corpus: which lecture, which file, what, and whether it blocks training."""

    lecture: str
    path: Path
    message: str
    severity: str  # "error" | "warning"

    def __str__(self) -> str:
        return f"{self.severity}: {self.lecture}: {self.path}: {self.message}"


def _problems(lecture: str, path: Path, issues: list[Issue]) -> list[Problem]:
    return [Problem(lecture, path, message, severity) for severity, message in issues]


def _video_duration(video: Path) -> tuple[float | None, list[Issue]]:
    info, issues = probe_video(video)
    if info is None:
        return None, issues
    if not info.duration_s or info.duration_s <= 0:
        return None, [("error", "the video has no frames")]
    return float(info.duration_s), []


def _beyond_video(df: pd.DataFrame | None, duration: float | None) -> list[Issue]:
    if df is None or duration is None or df.empty:
        return []
    start, end = df["start"].to_numpy(dtype=float), df["end"].to_numpy(dtype=float)
    issues: list[Issue] = []
    after = np.isfinite(start) & (start >= duration)
    if after.any():
        issues.append(
            ("error", f"segments start after the video ends ({duration:.1f} s) in {describe_rows(after)}")
        )
    over = np.isfinite(end) & ~after & (end > duration + VIDEO_END_TOLERANCE_S)
    if over.any():
        issues.append(
            (
                "warning",
                f"segments end after the video ({duration:.1f} s), to be clipped, in {describe_rows(over)}",
            )
        )
    return issues


def validate_lecture(
    lecture_dir: Path, probe_videos: bool = True, skip_missing_videos: bool = False
) -> list[Problem]:
    """Every problem of one lecture folder.

    `skip_missing_videos`: a lecture with no video file at all (a downloaded corpus whose video was
    unavailable) is one warning, and its other files are not checked: pairing leaves it out.
    """
    lid = lecture_dir.name
    problems: list[Problem] = []
    video, issues = find_video(lecture_dir)
    if skip_missing_videos and video is None and not any(lecture_dir.glob("video.*")):
        why = "no video: skipped (not downloaded; see the corpus's downloads.json)"
        return [Problem(lid, lecture_dir, why, "warning")]
    problems += _problems(lid, lecture_dir, issues)
    duration = None
    if video is not None and probe_videos:
        duration, issues = _video_duration(video)
        problems += _problems(lid, video, issues)
    narration = lecture_dir / NARRATION_FILE
    df, issues = read_segments_csv(narration, ["start", "end", "text"])
    problems += _problems(lid, narration, issues + _beyond_video(df, duration))
    keysteps = lecture_dir / KEYSTEPS_FILE
    df, issues = read_lecture_keysteps(keysteps)
    problems += _problems(lid, keysteps, issues + _beyond_video(df, duration))
    problems += _problems(lid, lecture_dir / ABSTRACT_FILE, read_abstract(lecture_dir / ABSTRACT_FILE)[1])
    problems += _problems(lid, lecture_dir / META_FILE, read_meta(lecture_dir / META_FILE)[1])
    return problems


def validate_corpus(
    root: str | Path, probe_videos: bool = True, skip_missing_videos: bool = False
) -> list[Problem]:
    """Every problem of every lecture of a corpus (errors and warnings), in lecture order.

    `probe_videos=False` skips opening the videos (and so the checks against their length);
    `skip_missing_videos` makes a lecture without a video a warning (see `validate_lecture`).
    """
    root = Path(root)
    dirs = lecture_dirs(root)
    if not dirs:
        return [Problem("-", root, "no lecture folders in the corpus", "error")]
    problems: list[Problem] = []
    for lecture_dir in tqdm(dirs, desc="validate corpus", unit="lecture", disable=None, leave=False):
        problems += validate_lecture(lecture_dir, probe_videos, skip_missing_videos)
    return problems


def summary(problems: list[Problem], n_lectures: int) -> str:
    """One line: how many lectures, errors and warnings."""
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    bad = len({p.lecture for p in problems if p.severity == "error"})
    return f"{n_lectures} lecture(s): {errors} error(s) in {bad} lecture(s), {warnings} warning(s)"
