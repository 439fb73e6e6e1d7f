"""Fetch the videos of an imported lecture corpus with yt-dlp, resumably, and record what came.

An importer (`hecvl corpus import surglavi|surgatlas`) writes each lecture's texts and a meta.json with
`url` (or `youtube_id`), `expected_duration`, `licence` and `source`, but no video: public corpora list
YouTube videos, which disappear, move or need a login. `download_corpus` fetches each one into
`<lecture>/video.mp4` and keeps three records so that any interruption loses nothing:

- `CORPUS/downloads.json`, the manifest: per lecture its status (downloaded / interrupted / unavailable /
  no_url / unreadable), SHA-256, size, probed duration and frame size, or the error; rewritten atomically
  after each video;
- `CORPUS/.yt-dlp-archive.txt`, yt-dlp's download archive (what it fetched, by extractor and id);
- `<lecture>/.download/`, yt-dlp's partial files (`*.part`), which the next run resumes with HTTP ranges.

A lecture whose video is on disk and matches its manifest entry is skipped without a request, so a rerun
does nothing; a deleted video is fetched again (its archive line is dropped first, since the archive alone
would make yt-dlp skip it). One video that cannot be fetched never stops the others.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hecvl.config.data import DOWNLOAD_FORMAT, DownloadSettings
from hecvl.corpora.corpus import META_FILE, find_video, lecture_dirs, read_meta
from hecvl.errors import HecvlError
from hecvl.io import read_json, sha256_file, write_json, write_text

log = logging.getLogger(__name__)

MANIFEST_FILE = "downloads.json"
ARCHIVE_FILE = ".yt-dlp-archive.txt"
PARTIAL_DIR = ".download"  # inside a lecture folder: yt-dlp's work files until the video is complete
VIDEO_FILE = "video.mp4"
STATUSES = ("downloaded", "interrupted", "unavailable", "no_url", "unreadable")
NO_URL = f"{META_FILE} has no url or youtube_id"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def download_format(max_height: int) -> str:
    """yt-dlp's format selector for videos at most `max_height` pixels high (config.data.DOWNLOAD_FORMAT)."""
    return DOWNLOAD_FORMAT.format(h=int(max_height))


@dataclass(frozen=True)
class Source:
    """Where one lecture's video comes from, read from its meta.json."""

    lecture: str
    url: str | None
    youtube_id: str | None
    expected_duration: float | None


def lecture_source(folder: Path) -> Source:
    """The lecture's URL (`url`, else the YouTube watch page of `youtube_id`); a malformed meta.json is an
    error naming the file and field (nothing is fetched for a corpus whose metadata is wrong)."""
    path = folder / META_FILE
    meta, issues = read_meta(path)
    for severity, message in issues:
        if severity == "error":
            raise HecvlError(message, path)

    def text(key: str) -> str | None:
        value = meta.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise HecvlError(f"{key} must be a string, got {value!r}", path)
        return value.strip() or None

    url, youtube_id = text("url"), text("youtube_id")
    if url is None and youtube_id is not None:
        url = f"https://www.youtube.com/watch?v={youtube_id}"
    expected = meta.get("expected_duration")
    if expected is not None and (
        isinstance(expected, bool) or not isinstance(expected, int | float) or expected < 0
    ):
        raise HecvlError(f"expected_duration must be a number of seconds >= 0, got {expected!r}", path)
    return Source(folder.name, url, youtube_id, None if expected is None else float(expected))


def read_manifest(corpus: Path) -> dict[str, Any]:
    """The download manifest ({} lectures when absent); a malformed one is an error naming it."""
    path = corpus / MANIFEST_FILE
    if not path.is_file():
        return {"lectures": {}}
    data = read_json(path, "download manifest")
    if not isinstance(data, dict) or not isinstance(data.get("lectures"), dict):
        raise HecvlError("lectures must be a mapping of lecture id -> entry", path)
    return data


def video_record(video: Path) -> dict[str, Any]:
    """What the manifest says about a video on disk: hash, size and what the project's reader sees."""
    from hecvl.video import probe

    record: dict[str, Any] = {"file": video.name, "bytes": video.stat().st_size, "sha256": sha256_file(video)}
    try:
        info = probe(video)
    except Exception as exc:  # a truncated or foreign file is recorded, not fatal
        reason = exc.message if isinstance(exc, HecvlError) else f"{type(exc).__name__}: {exc}"
        return {**record, "status": "unreadable", "error": f"cannot read the video: {reason}"}
    return {
        **record,
        "status": "downloaded",
        "duration": round(float(info.duration_s), 3),
        "fps": round(float(info.fps), 3),
        "width": info.width,
        "height": info.height,
    }


def is_current(entry: Mapping[str, Any] | None, video: Path | None) -> bool:
    """The manifest already describes this file (same name and size): nothing to fetch or hash."""
    return bool(
        entry
        and video is not None
        and entry.get("status") in ("downloaded", "unreadable")
        and entry.get("file") == video.name
        and entry.get("bytes") == video.stat().st_size
    )


class _YtLogger:
    """yt-dlp's messages into our log: its chatter at debug level, its warnings as warnings."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def info(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def warning(self, msg: str) -> None:
        log.warning("yt-dlp: %s", _ANSI.sub("", msg))

    def error(self, msg: str) -> None:
        log.debug("yt-dlp: %s", _ANSI.sub("", msg))  # raised as DownloadError and recorded by the caller


def ffmpeg_location() -> str | None:
    """An ffmpeg for merging video + audio and remuxing: one on PATH, else the one imageio-ffmpeg ships."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


def ydl_options(folder: Path, archive: Path, settings: DownloadSettings) -> dict[str, Any]:
    """yt-dlp's options for one lecture (its output template is per lecture)."""
    from yt_dlp.utils import parse_bytes

    opts: dict[str, Any] = {
        "format": download_format(settings.max_height),
        "merge_output_format": "mp4",
        "postprocessors": [{"key": "FFmpegVideoRemuxer", "preferedformat": "mp4"}],
        "outtmpl": {"default": str(folder / PARTIAL_DIR / "video.%(ext)s")},
        "download_archive": str(archive),
        "retries": settings.retries,
        "fragment_retries": settings.retries,
        "extractor_retries": settings.retries,
        "continuedl": True,  # resume a .part left by an interrupted run
        "noplaylist": True,
        "quiet": True,
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "logger": _YtLogger(),
    }
    ffmpeg = ffmpeg_location()
    if ffmpeg:
        opts["ffmpeg_location"] = ffmpeg
    if settings.rate_limit:
        opts["ratelimit"] = parse_bytes(settings.rate_limit)
    if settings.cookies:
        cookies = Path(settings.cookies)
        if not cookies.is_file():
            raise HecvlError("cookies file not found", cookies)
        opts["cookiefile"] = str(cookies)
    return opts


def _drop_archive_ids(archive: Path, ids: set[str]) -> None:
    """Remove lines from yt-dlp's archive, so that a video deleted from disk is fetched again."""
    if not ids or not archive.is_file():
        return
    lines = archive.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() not in ids]
    if len(kept) != len(lines):
        write_text(archive, "".join(f"{line}\n" for line in kept))


def _archive_ids(source: Source, entry: Mapping[str, Any] | None) -> set[str]:
    """The archive lines that may stand for this lecture's video."""
    ids = {str(entry["archive_id"])} if entry and entry.get("archive_id") else set()
    if source.youtube_id:
        ids.add(f"youtube {source.youtube_id}")
    return ids


def fetch(source: Source, folder: Path, archive: Path, settings: DownloadSettings) -> dict[str, Any]:
    """Download one lecture's video into folder/video.mp4; returns its manifest entry (never raises for a
    video that cannot be fetched: that is an `unavailable` or `interrupted` entry with yt-dlp's reason)."""
    import yt_dlp

    partial = folder / PARTIAL_DIR
    archive_id: str | None = None
    for _attempt in range(2):  # a second pass only when the archive skipped a file that is not on disk
        try:
            with yt_dlp.YoutubeDL(ydl_options(folder, archive, settings)) as ydl:
                _ = ydl.cookiejar  # read the user's cookies now, then forget the file: yt-dlp would
                ydl.params["cookiefile"] = None  # otherwise write its session back into it on close
                info = ydl.extract_info(source.url, download=True)
                archive_id = ydl._make_archive_id(info) if info else None
        except yt_dlp.utils.DownloadError as exc:
            message = _ANSI.sub("", str(exc)).removeprefix("ERROR: ").strip()
            # a transfer cut off leaves its .part: `interrupted` (resumed by the next run), else unavailable
            cut = partial.is_dir() and any(partial.glob("*.part"))
            return {"status": "interrupted" if cut else "unavailable", "error": message}
        done = (partial / VIDEO_FILE).is_file()  # merged or remuxed to mp4 by the options above
        if done:
            break
        if archive_id is None:
            break
        _drop_archive_ids(archive, {archive_id})  # recorded in the archive, yet absent: fetch again
    if not done:
        return {
            "status": "unavailable",
            "error": "yt-dlp reported success but wrote no mp4 file",
            "archive_id": archive_id,
        }
    target = folder / VIDEO_FILE
    os.replace(partial / VIDEO_FILE, target)
    shutil.rmtree(partial, ignore_errors=True)
    return {**video_record(target), "archive_id": archive_id}


def download_corpus(
    corpus: str | Path,
    settings: DownloadSettings | None = None,
    progress: bool = True,
    retry_unavailable: bool = False,
) -> dict[str, Any]:
    """Fetch every lecture's missing video; returns the manifest (also written to CORPUS/downloads.json).

    Every meta.json is read before any request, so a malformed one stops the command before it starts.
    A lecture recorded unavailable is tried again only with `retry_unavailable` (or when its URL changed):
    a rerun after an interruption continues where it stopped instead of re-asking for every dead video.
    """
    import yt_dlp

    corpus = Path(corpus)
    settings = settings or DownloadSettings()
    folders = lecture_dirs(corpus)
    if not folders:
        raise HecvlError("no lecture folders in the corpus", corpus)
    sources = {folder.name: lecture_source(folder) for folder in folders}
    manifest = read_manifest(corpus)
    entries: dict[str, Any] = dict(manifest["lectures"])
    archive = corpus / ARCHIVE_FILE
    manifest_path = corpus / MANIFEST_FILE

    written = [manifest]

    def save() -> None:
        """Write the manifest when it changed (atomically: an interruption keeps the previous one)."""
        data = {
            "format": download_format(settings.max_height),
            "max_height": settings.max_height,
            "yt_dlp": yt_dlp.version.__version__,
            "archive": ARCHIVE_FILE,
            "lectures": {k: entries[k] for k in sorted(entries)},
        }
        if data != written[0]:
            write_json(manifest_path, data)
            written[0] = data

    fetched = 0
    bar = tqdm(folders, desc="download videos", unit="video", disable=not progress or None)
    for folder in bar:
        source = sources[folder.name]
        old = entries.get(folder.name)
        video, _ = find_video(folder)
        base = {"url": source.url, "expected_duration": source.expected_duration}
        if video is not None:
            if is_current(old, video):
                continue
            archive_id = (old or {}).get("archive_id")
            entries[folder.name] = {**base, **video_record(video), "archive_id": archive_id}
            save()  # a video put there by hand (or a run stopped before recording it): described, not fetched
            continue
        if source.url is None:
            entries[folder.name] = {**base, "status": "no_url", "error": NO_URL}
            save()
            continue
        known_dead = old and old.get("status") == "unavailable" and old.get("url") == source.url
        if known_dead and not retry_unavailable:
            continue
        _drop_archive_ids(archive, _archive_ids(source, old))
        if fetched and settings.sleep:
            time.sleep(settings.sleep)
        bar.set_postfix_str(folder.name)
        entry = fetch(source, folder, archive, settings)
        fetched += 1
        entries[folder.name] = {**base, **entry}
        if entry["status"] != "downloaded":
            log.warning("lecture %s: %s: %s", folder.name, entry["status"], entry.get("error", ""))
        save()
    for gone in set(entries) - set(sources):  # a lecture folder removed from the corpus
        del entries[gone]
    save()
    return written[0]


def counts(manifest: Mapping[str, Any]) -> dict[str, int]:
    """How many lectures have each status."""
    out = dict.fromkeys(STATUSES, 0)
    for entry in manifest["lectures"].values():
        out[entry.get("status", "unavailable")] = out.get(entry.get("status", "unavailable"), 0) + 1
    return out
