"""Pair a whole corpus: every lecture, every level, one bad lecture never sinking the rest.

A lecture whose files cannot be read (malformed CSV, missing or undecodable video) is excluded and
listed with the reason in the statistics; everything else about it is a per-segment rule
(`hecvl.config.pairing`, `spans.py`) counted in the tally. The video is probed and its first frame
decoded before pairing, so a corrupt video is caught here, with the lecture's name, not hours later
in a training worker.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hecvl.config.pairing import PairingRules
from hecvl.corpora.corpus import (
    ABSTRACT_FILE,
    KEYSTEPS_FILE,
    META_FILE,
    NARRATION_FILE,
    Lecture,
    find_video,
    lecture_dirs,
    read_abstract,
    read_lecture_keysteps,
    read_meta,
)
from hecvl.corpora.transcripts import KEYSTEP_COLUMNS, empty_segments, raise_first_error, read_segments_csv
from hecvl.errors import HecvlError
from hecvl.pairing.clips import clip_pairs
from hecvl.pairing.manifest import LEVELS, to_columns
from hecvl.pairing.phases import Summarise, phase_pairs
from hecvl.pairing.stats import Tally
from hecvl.pairing.videos import video_pair
from hecvl.video import VideoInfo, open_video, probe

log = logging.getLogger(__name__)


@dataclass
class PairSet:
    """The three manifests (as sorted column dicts) and the tally of what happened."""

    tables: dict[str, dict[str, list]]
    tally: Tally


def load_lecture_lenient(folder: Path, tally: Tally) -> Lecture:
    """Load a lecture keeping row-level problems for the pairing rules to count, not to reject.

    `hecvl.corpora.corpus.load_lecture` is strict (the first bad row fails the lecture); here a bad row
    (empty text, end <= start, a time that is not a number) is dropped by the pairing rules and counted,
    and only a missing or unreadable video or narration file excludes the lecture. An unreadable
    keysteps.csv, abstract.txt or meta.json is a warning: the lecture still feeds the other levels.
    """
    video, issues = find_video(folder)
    raise_first_error(issues, folder)
    narration_path = folder / NARRATION_FILE
    narrations, issues = read_segments_csv(narration_path, ["start", "end", "text"])
    if narrations is None:
        raise_first_error(issues, narration_path)
    keysteps, issues = read_lecture_keysteps(folder / KEYSTEPS_FILE)
    if keysteps is None:
        tally.warn(folder.name, f"{KEYSTEPS_FILE} ignored: {_first_error(issues)}")
        keysteps = empty_segments(KEYSTEP_COLUMNS)
    abstract, issues = read_abstract(folder / ABSTRACT_FILE)
    if _first_error(issues):
        tally.warn(folder.name, f"{ABSTRACT_FILE} ignored: {_first_error(issues)}")
    meta, issues = read_meta(folder / META_FILE)
    if _first_error(issues):
        tally.warn(folder.name, f"{META_FILE} ignored: {_first_error(issues)}")
    return Lecture(folder.name, folder, video, narrations, keysteps, abstract, meta)


def _first_error(issues: list[tuple[str, str]]) -> str:
    return next((message for severity, message in issues if severity == "error"), "")


def _open_lecture(folder: Path, tally: Tally) -> tuple[Lecture, VideoInfo]:
    """Load a lecture and probe + test-decode its video; any failure raises (the caller excludes it)."""
    lecture = load_lecture_lenient(folder, tally)
    info = probe(lecture.video)
    if not (info.num_frames > 0 and info.fps > 0 and math.isfinite(info.duration_s)):
        raise HecvlError(f"video has no frames ({info.num_frames} frames at {info.fps} fps)", lecture.video)
    with open_video(lecture.video) as reader:
        reader.frames_at([0.0])
    return lecture, info


def build_pairs(
    corpus_root: str | Path,
    rules: PairingRules,
    summarise: Summarise | None = None,
    progress: bool = True,
) -> PairSet:
    """Pair every lecture of the corpus under `rules`; `summarise` (derivation) fills missing texts."""
    corpus_root = Path(corpus_root)
    tally = Tally()
    records: dict[str, list[dict[str, Any]]] = {level: [] for level in LEVELS}
    folders = lecture_dirs(corpus_root)
    tally.lectures["found"] = len(folders)
    for folder in tqdm(folders, desc="pairing lectures", unit="lecture", disable=not progress):
        try:
            lecture, info = _open_lecture(folder, tally)
        except Exception as exc:  # any unreadable lecture is excluded, never fatal
            reason = exc.message if isinstance(exc, HecvlError) else f"{type(exc).__name__}: {exc}"
            where = getattr(exc, "path", None)
            tally.exclude(folder.name, f"{where}: {reason}" if where else reason)
            continue
        _pair_lecture(lecture, info, corpus_root, rules, tally, records, summarise)
    tables = {level: to_columns(records[level], level) for level in LEVELS}
    return PairSet(tables, tally)


def _pair_lecture(
    lecture: Lecture,
    info: VideoInfo,
    corpus_root: Path,
    rules: PairingRules,
    tally: Tally,
    records: Mapping[str, list[dict[str, Any]]],
    summarise: Summarise | None,
) -> None:
    lid = lecture.id
    video = Path(lecture.video).relative_to(corpus_root).as_posix()  # not resolved: links stay links
    duration = float(info.duration_s)
    last_frame = (info.num_frames - 1) / info.fps
    has_keysteps = lecture.keysteps is not None and len(lecture.keysteps) > 0
    has_abstract = bool(str(lecture.abstract or "").strip())
    tally.lectures["used"] += 1
    tally.lectures["narrations"] += len(lecture.narrations)
    tally.lectures["keysteps"] += len(lecture.keysteps) if has_keysteps else 0
    tally.lectures["with_keysteps"] += has_keysteps
    tally.lectures["with_abstract"] += has_abstract

    clips = clip_pairs(lid, video, lecture.narrations, duration, last_frame, rules, tally)
    phases = phase_pairs(lid, video, lecture.keysteps, duration, last_frame, clips, rules, tally, summarise)
    meta = lecture.meta if isinstance(lecture.meta, Mapping) else {}
    vid = video_pair(
        lid,
        video,
        lecture.abstract or "",
        duration,
        last_frame,
        info.fps,
        str(meta.get("procedure", "")),
        clips,
        phases,
        rules,
        tally,
        summarise,
    )
    records["clip"].extend(clips)
    records["phase"].extend(phases)
    if vid is not None:
        records["video"].append(vid)
