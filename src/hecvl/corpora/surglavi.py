"""SurgLaVi-beta (SQLite `surglavi_beta.db`) -> lecture corpus.

The database holds one row per source video (`videos`) and one per clip-text pair (`captions`) at one
of three levels (`levels`). Which level is the coarsest is not documented, so nothing here assumes the
level numbers: by default the levels are ordered by their median caption span, the finest feeds
narration.csv (text `raw_narration`, the ASR text nearest HecVL's narration), the next feeds
keysteps.csv (text `caption`) and the coarsest gives a derived abstract (its captions joined in time
order): SurgLaVi has no video-level text written for the corpus. Every choice is an option and is
recorded in each meta.json and in import.json.

The authors' loader filters are options with the authors' defaults: min < duration <= max (0, 500 s),
the chosen levels (all), and `is_descriptive = 1 and is_surgical_content = 1` (on). Texts are written
as they are unless `normalise` is asked for.

Rows that would otherwise reach the corpus twice are handled here, not left to `hecvl pair`: a caption
repeating an earlier one's lecture, level, times and written text is dropped (`duplicate`), and video rows
sharing a YouTube id become one lecture (the same video must not be downloaded, paired and split twice).
"""

from __future__ import annotations

import logging
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hecvl.config.data import SurgLaViImport  # the import options, defined once
from hecvl.corpora.sqlite import RowError, open_readonly, require_columns, select, tables
from hecvl.corpora.writer import (
    ImportedLecture,
    Keystep,
    Narration,
    safe_lecture_id,
    unique_ids,
    write_corpus,
)
from hecvl.corpora.youtube import resolve_url
from hecvl.errors import HecvlError
from hecvl.io import sha256_file

log = logging.getLogger(__name__)

CORPUS = "SurgLaVi-beta"
LICENCE = "CC BY-NC-SA 4.0"
LICENCE_NOTE = (
    "SurgLaVi-beta annotations are licensed CC BY-NC-SA 4.0: non-commercial use only, share alike, "
    "attribute the authors (arXiv 2509.10555). The videos remain their uploaders'."
)
ABSTRACT_SOURCES = ("coarsest", "description", "none")
VIDEO_META = {  # meta.json key -> videos column, copied when present
    "title": "title",
    "procedure": "procedure_type",
    "procedure_modality": "procedure_modality",
    "specialty": "specialty",
    "subject": "subject",
    "year": "year",
}
VIDEO_OPTIONAL = (
    "url",
    "duration",
    "title",
    "description",
    "procedure_type",
    "procedure_modality",
    "specialty",
    "subject",
    "year",
)
# Reasons a caption is not written, in the order they are tested (the first that applies is counted).
DROP_REASONS = (
    "level_not_selected",
    "duration_min",
    "duration_max",
    "not_descriptive",
    "not_surgical_content",
    "unused_level",
    "empty_text",
    "duplicate",
    "video_dropped",
)
_PUNCT = re.compile(r"[^\w\s.,]")
_SURGEON = re.compile(r"^the surgeon\b[\s,]*")


def _filters(options: SurgLaViImport) -> dict[str, Any]:
    """The authors' loader filters as import.json records them."""
    return {
        "min_duration": options.min_duration,
        "max_duration": options.max_duration,
        "levels": list(options.levels) or "all",
        "require_descriptive_and_surgical": options.pair_filter,
    }


@dataclass
class Level:
    """One row of `levels` with what the captions say about it."""

    level_id: int
    name: str
    captions: int = 0
    median_span_s: float | None = None
    roles: list[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    kept: int = 0

    def label(self) -> str:
        return f"{self.level_id} {self.name!r}"


@dataclass
class Caption:
    caption_id: int
    video_id: int
    level_id: int
    start: float
    end: float
    duration: float
    texts: dict[str, str]
    descriptive: bool
    surgical: bool


@dataclass
class SurgLaViResult:
    """What an import found and kept: the CLI prints it, import.json records it."""

    levels: list[Level]
    roles: dict[str, Level | None]  # narration.csv / keysteps.csv / abstract.txt -> level
    record: dict[str, Any]
    lectures: list[ImportedLecture]


def normalise_text(text: str) -> str:
    """An approximation of the authors' optional normalisation: lower case, hyphens and slashes to
    spaces, punctuation other than . and , removed, a leading "the surgeon" dropped, spaces collapsed."""
    text = text.lower().replace("-", " ").replace("/", " ")
    text = " ".join(_PUNCT.sub("", text).split())
    return _SURGEON.sub("", text).strip()


# --- reading ---------------------------------------------------------------------------------------


def _read_levels(con, path: Path) -> dict[int, Level]:
    require_columns(con, path, "levels", ["level_id", "name"])
    err = RowError(path, "levels", "level_id")
    levels: dict[int, Level] = {}
    for row in select(con, path, "levels", ["level_id", "name"], "level_id"):
        lid = err.integer(row, "level_id")
        name = err.text(row, "name").strip()
        if not name:
            raise err(row, "name is empty")
        levels[lid] = Level(lid, name)
    if not levels:
        raise HecvlError("table levels is empty", path)
    return levels


def _read_videos(con, path: Path, options: SurgLaViImport) -> dict[int, dict[str, Any]]:
    required = ["video_id", "name", "youtube_id"] + (
        ["description"] if options.abstract == "description" else []
    )
    names = require_columns(con, path, "videos", required)
    cols = [*dict.fromkeys([*required, *(c for c in VIDEO_OPTIONAL if c in names)])]
    err = RowError(path, "videos", "video_id")
    videos = {}
    for row in select(con, path, "videos", cols, "video_id"):
        row["video_id"] = err.integer(row, "video_id")
        row.update({c: err.text(row, c) for c, v in row.items() if isinstance(v, bytes)})
        if "duration" in row:
            row["duration"] = err.number(row, "duration", nullable=True)
        videos[row["video_id"]] = row
    return videos


def _read_captions(
    con, path: Path, options: SurgLaViImport, levels: dict[int, Level], videos: dict[int, dict]
) -> list[Caption]:
    flags = ["is_descriptive", "is_surgical_content"] if options.pair_filter else []
    text_cols = sorted({options.clip_text, options.phase_text})
    required = ["caption_id", "video_id", "level_id", "start_time", "end_time", *text_cols, *flags]
    names = require_columns(con, path, "captions", required)
    cols = required + (["duration"] if "duration" in names else [])
    err = RowError(path, "captions", "caption_id")
    captions = []
    for row in select(con, path, "captions", cols, "caption_id"):
        cid = err.integer(row, "caption_id")
        vid, lid = err.integer(row, "video_id"), err.integer(row, "level_id")
        if vid not in videos:
            raise err(row, f"video_id {vid} is not in table videos")
        if lid not in levels:
            raise err(row, f"level_id {lid} is not in table levels")
        start, end = err.number(row, "start_time"), err.number(row, "end_time")
        assert start is not None and end is not None
        if start < 0:
            raise err(row, f"start_time is negative ({start})")
        if end <= start:
            raise err(row, f"end_time {end} <= start_time {start}")
        duration = err.number(row, "duration", nullable=True) if "duration" in row else None
        captions.append(
            Caption(
                cid,
                vid,
                lid,
                start,
                end,
                end - start if duration is None else duration,
                {c: err.text(row, c) for c in text_cols},
                err.flag(row, "is_descriptive") if flags else True,
                err.flag(row, "is_surgical_content") if flags else True,
            )
        )
    return captions


def _transcriptions(con, path: Path) -> dict[int, list[str]]:
    """video_id -> transcript file paths (the table is optional and its files are not read)."""
    if "transcriptions" not in tables(con):
        return {}
    names = require_columns(con, path, "transcriptions", ["video_id"])
    if "file_path" not in names:
        return {}
    out: dict[int, list[str]] = defaultdict(list)
    err = RowError(path, "transcriptions", "video_id")
    for row in select(con, path, "transcriptions", ["video_id", "file_path"], "video_id"):
        if isinstance(row["video_id"], int) and row["file_path"]:
            out[row["video_id"]].append(err.text(row, "file_path"))
    return {k: sorted(v) for k, v in out.items()}


# --- level roles -----------------------------------------------------------------------------------


def find_level(ref: str, levels: dict[int, Level], path: Path, option: str) -> Level:
    """A level by id or (case-insensitive) name; unknown or ambiguous: an error listing the levels."""
    known = ", ".join(lv.label() for lv in levels.values())
    ref = str(ref).strip()
    if ref.isdigit() and int(ref) in levels:
        return levels[int(ref)]
    hits = [lv for lv in levels.values() if lv.name.lower() == ref.lower()]
    if len(hits) == 1:
        return hits[0]
    why = "is ambiguous" if hits else "is not in table levels"
    raise HecvlError(f"{option} {ref!r} {why} (levels: {known})", path)


def fine_to_coarse(levels: list[Level]) -> list[Level]:
    """Levels with captions, finest first: by median caption span, then level id."""
    return sorted(
        (lv for lv in levels if lv.median_span_s is not None), key=lambda lv: (lv.median_span_s, lv.level_id)
    )


def assign_roles(
    options: SurgLaViImport, levels: dict[int, Level], selected: list[Level], path: Path
) -> dict[str, Level | None]:
    """Which level feeds narration.csv, keysteps.csv and abstract.txt (None: not fed by a level)."""
    order = fine_to_coarse(selected)
    if not order:
        raise HecvlError("no captions in the selected levels", path)
    clip = (
        order[0]
        if options.clip_level == "auto"
        else find_level(options.clip_level, levels, path, "clip level")
    )
    if clip.median_span_s is None:
        raise HecvlError(f"the clip level {clip.label()} has no captions", path)
    coarser = [lv for lv in order if (lv.median_span_s, lv.level_id) > (clip.median_span_s, clip.level_id)]
    if options.phase_level == "none":
        phase = None
    elif options.phase_level == "auto":
        phase = coarser[0] if coarser else None
    else:
        phase = find_level(options.phase_level, levels, path, "phase level")
    if options.abstract == "coarsest":
        abstract: Level | None = order[-1]
    elif options.abstract in ("description", "none"):
        abstract = None
    else:
        abstract = find_level(options.abstract, levels, path, "abstract level")
    roles = {"narration.csv": clip, "keysteps.csv": phase, "abstract.txt": abstract}
    for role, level in roles.items():
        if level is not None and level not in selected:
            raise HecvlError(f"the {role} level {level.label()} is not among the selected levels", path)
    if phase is not None and phase is clip:
        raise HecvlError(
            f"the phase level and the clip level are both {clip.label()}: choose two levels", path
        )
    return roles


# --- import ----------------------------------------------------------------------------------------


def _drop_reason(cap: Caption, options: SurgLaViImport, selected: set[int]) -> str | None:
    if cap.level_id not in selected:
        return "level_not_selected"
    if not cap.duration > options.min_duration:
        return "duration_min"
    if not cap.duration <= options.max_duration:
        return "duration_max"
    if options.pair_filter and not cap.descriptive:
        return "not_descriptive"
    if options.pair_filter and not cap.surgical:
        return "not_surgical_content"
    return None


def _lecture_ids(videos: dict[int, dict], chosen: list[int], options: SurgLaViImport) -> dict[int, str]:
    wanted = []
    for vid in chosen:
        name = safe_lecture_id(str(videos[vid].get("name") or "")) if options.id_from == "name" else ""
        wanted.append((str(vid), name or f"video_{vid}"))
    return {int(k): v for k, v in unique_ids(wanted).items()}


def _role(level: Level, text: str) -> dict[str, Any]:
    return {"level": level.name, "level_id": level.level_id, "text": text}


def _when(cap: Caption) -> tuple[float, float, int]:
    return (cap.start, cap.end, cap.caption_id)


@dataclass
class _Build:
    """What every lecture of one import shares: the options, the level roles and the source."""

    options: SurgLaViImport
    roles: dict[str, Level | None]
    source: dict[str, Any]
    transcripts: dict[int, list[str]]

    def text(self, cap: Caption, column: str) -> str:
        text = cap.texts[column]
        return normalise_text(text) if self.options.normalise else text

    def column(self, role: str) -> str:
        return self.options.clip_text if role == "narration.csv" else self.options.phase_text

    def abstract(self, video: dict, captions: list[Caption]) -> tuple[str | None, dict | None]:
        """The abstract and how it was made (None, None when this video gives none)."""
        level = self.roles["abstract.txt"]
        if level is not None and captions:
            joined = " ".join(
                self.text(c, self.options.phase_text).strip() for c in sorted(captions, key=_when)
            )
            return joined, {
                **_role(level, self.options.phase_text),
                "how": "its captions joined in time order",
            }
        description = str(video.get("description") or "").strip()
        if self.options.abstract == "description" and description:
            text = normalise_text(description) if self.options.normalise else description
            return text, {
                "column": "videos.description",
                "how": "the uploader's description, not a corpus abstract",
            }
        return None, None

    def lecture(
        self, lecture_id: str, video: dict, by_role: dict[str, list[Caption]], merged: list[int]
    ) -> ImportedLecture:
        """One lecture's files and meta.json (`merged`: the other video rows of its YouTube id)."""
        clip_col, phase_col = self.options.clip_text, self.options.phase_text
        narrations: list[Narration] = [
            (c.start, c.end, self.text(c, clip_col)) for c in sorted(by_role["narration.csv"], key=_when)
        ]
        keysteps: list[Keystep] = [
            (c.start, c.end, self.text(c, phase_col), "") for c in sorted(by_role["keysteps.csv"], key=_when)
        ]
        abstract, abstract_from = self.abstract(video, by_role["abstract.txt"])
        url, youtube_id = resolve_url(video.get("youtube_id"), video.get("url"))
        phase = self.roles["keysteps.csv"]
        meta: dict[str, Any] = {
            "lecture_id": lecture_id,
            "ids": {
                "video_id": video["video_id"],
                "video_name": video.get("name"),
                **({"merged_video_ids": merged} if merged else {}),
            },
            "url": url,
            "source": self.source,
            "licence": LICENCE,
            "licence_note": LICENCE_NOTE,
            "levels": {
                "narration.csv": {
                    **_role(self.roles["narration.csv"], clip_col),
                    "segments": len(narrations),
                },
                "keysteps.csv": {**_role(phase, phase_col), "segments": len(keysteps)} if phase else None,
                "abstract.txt": abstract_from,
            },
            "abstract_derived": abstract_from is not None,
            "filters": _filters(self.options),
            "normalised": self.options.normalise,
        }
        if youtube_id:
            meta["youtube_id"] = youtube_id
        if video.get("duration") is not None and video["duration"] > 0:
            meta["expected_duration"] = video["duration"]
        for ours, theirs in VIDEO_META.items():
            if video.get(theirs) not in (None, ""):
                meta[ours] = video[theirs]
        files = sorted(f for v in [video["video_id"], *merged] for f in self.transcripts.get(v, []))
        if files:
            meta["transcription_files"] = files
        return ImportedLecture(lecture_id, narrations, keysteps, abstract or None, meta)


def _measure_levels(levels: dict[int, Level], captions: list[Caption]) -> None:
    """Each level's caption count and median span (what tells the user which level is coarse)."""
    spans: dict[int, list[float]] = defaultdict(list)
    for cap in captions:
        spans[cap.level_id].append(cap.end - cap.start)
    for lv in levels.values():
        lv.captions = len(spans[lv.level_id])
        lv.median_span_s = round(statistics.median(spans[lv.level_id]), 3) if spans[lv.level_id] else None


def shared_youtube_ids(videos: dict[int, dict]) -> dict[str, list[int]]:
    """{YouTube id: its video ids, ascending} for the ids that more than one video row gives."""
    by_id: dict[str, list[int]] = defaultdict(list)
    for vid, video in videos.items():
        youtube_id = resolve_url(video.get("youtube_id"), video.get("url"))[1]
        if youtube_id:
            by_id[youtube_id].append(vid)
    return {y: sorted(v) for y, v in sorted(by_id.items()) if len(v) > 1}


def _route(
    captions: list[Caption],
    levels: dict[int, Level],
    selected: set[int],
    build: _Build,
    lecture_of: dict[int, int],
) -> tuple[dict[int, dict[str, list[Caption]]], dict[int, list[Caption]]]:
    """Filter the captions: {lecture: {role: captions}} and {lecture: passing captions}, a lecture keyed
    by its first video id (`lecture_of`: video id -> that id); drops are counted.

    A passing caption feeds every role of its level for which its text is not empty. One that repeats an
    earlier caption's lecture, level, start, end and written texts would write the same rows again: it
    is dropped as `duplicate` (the first, by caption_id, is kept).
    """
    used: dict[int, dict[str, list[Caption]]] = defaultdict(lambda: defaultdict(list))
    passing: dict[int, list[Caption]] = defaultdict(list)
    seen: set[tuple] = set()
    for cap in captions:
        level = levels[cap.level_id]
        lecture = lecture_of.get(cap.video_id, cap.video_id)
        reason = _drop_reason(cap, build.options, selected) or (None if level.roles else "unused_level")
        fed = [] if reason else [r for r in level.roles if build.text(cap, build.column(r)).strip()]
        if reason is None and not fed:
            reason = "empty_text"
        if reason is None:
            written = tuple((r, build.text(cap, build.column(r))) for r in fed)
            key = (lecture, cap.level_id, cap.start, cap.end, written)
            reason = "duplicate" if key in seen else None
            seen.add(key)
        if reason is not None:
            level.dropped[reason] += 1
            continue
        for role in fed:
            used[lecture][role].append(cap)
        passing[lecture].append(cap)
    return used, passing


def _warn_shared(path: Path, shared: dict[str, list[int]]) -> None:
    items = [f"{y} (video_id {', '.join(map(str, v))})" for y, v in shared.items()]
    log.warning(
        "%s: %d YouTube id(s) given by several videos, each imported as one lecture with their captions "
        "merged: %s; see import.json",
        path,
        len(shared),
        "; ".join(items[:5]) + ("; ..." if len(items) > 5 else ""),
    )


def read_surglavi(db: str | Path, options: SurgLaViImport | None = None) -> SurgLaViResult:
    """Read and check the whole database and build every lecture (nothing is written)."""
    options = options or SurgLaViImport()
    path = Path(db)
    con = open_readonly(path, "SurgLaVi database")
    try:
        levels = _read_levels(con, path)
        videos = _read_videos(con, path, options)
        captions = _read_captions(con, path, options, levels, videos)
        transcripts = _transcriptions(con, path)
    finally:
        con.close()
    _measure_levels(levels, captions)
    selected = [find_level(r, levels, path, "level") for r in options.levels] or list(levels.values())
    roles = assign_roles(options, levels, selected, path)
    for role, level in roles.items():
        if level is not None:
            level.roles.append(role)
    source = {"corpus": CORPUS, "file": path.name, "sha256": sha256_file(path)}
    build = _Build(options, roles, source, transcripts)
    shared = shared_youtube_ids(videos)
    lecture_of = {vid: group[0] for group in shared.values() for vid in group}
    used, passing = _route(captions, levels, {lv.level_id for lv in selected}, build, lecture_of)
    if shared:
        _warn_shared(path, shared)

    video_drops: Counter = Counter()
    chosen = []
    for vid, video in videos.items():
        if lecture_of.get(vid, vid) != vid:
            continue  # merged into the lecture of the first video with its YouTube id
        if not used.get(vid, {}).get("narration.csv"):
            reason = "no_clip_captions"
        elif resolve_url(video.get("youtube_id"), video.get("url"))[0] is None:
            reason = "no_url"
        else:
            chosen.append(vid)
            reason = None
        if reason:
            video_drops[reason] += 1
        for cap in passing.get(vid, []):
            if reason:
                levels[cap.level_id].dropped["video_dropped"] += 1
            else:
                levels[cap.level_id].kept += 1
    ids = _lecture_ids(videos, chosen, options)
    merged = {group[0]: group[1:] for group in shared.values()}
    lectures = [build.lecture(ids[vid], videos[vid], used[vid], merged.get(vid, [])) for vid in chosen]
    renamed = {
        str(v): ids[v] for v in chosen if options.id_from == "name" and ids[v] != videos[v].get("name")
    }
    record = {
        "corpus": CORPUS,
        "source": {**source, "bytes": path.stat().st_size},
        "licence": LICENCE,
        "licence_note": LICENCE_NOTE,
        "options": options.to_dict(),
        "roles": {role: (lv.name if lv else None) for role, lv in roles.items()},
        "levels": {
            lv.name: {
                "level_id": lv.level_id,
                "captions": lv.captions,
                "median_span_s": lv.median_span_s,
                "roles": lv.roles,
                "kept": lv.kept,
                "dropped": {r: lv.dropped[r] for r in DROP_REASONS if lv.dropped[r]},
            }
            for lv in levels.values()
        },
        "videos": {
            "in_source": len(videos),
            "imported": len(chosen),
            "merged": sum(len(v) - 1 for v in shared.values()),
            "dropped": dict(sorted(video_drops.items())),
        },
        "duplicate_youtube_ids": {"count": len(shared), "ids": shared},
        "lecture_ids_differing_from_name": renamed,
    }
    return SurgLaViResult(list(levels.values()), roles, record, lectures)


def import_surglavi(
    db: str | Path, out: str | Path, options: SurgLaViImport | None = None
) -> SurgLaViResult:
    """Read the database and write the lecture corpus under `out` (see `write_corpus`)."""
    result = read_surglavi(db, options)
    write_corpus(Path(out), CORPUS, result.lectures, result.record)
    return result


def level_lines(result: SurgLaViResult) -> list[str]:
    """One line per level: captions, median span, role and what was kept and dropped."""
    lines = []
    for lv in result.levels:
        median = "-" if lv.median_span_s is None else f"{lv.median_span_s:g} s"
        dropped = ", ".join(f"{r} {lv.dropped[r]}" for r in DROP_REASONS if lv.dropped[r]) or "none"
        role = " + ".join(lv.roles) or "unused"
        lines.append(
            f"level {lv.label()}: {lv.captions} captions, median span {median} -> {role}; "
            f"kept {lv.kept} (dropped: {dropped})"
        )
    return lines
