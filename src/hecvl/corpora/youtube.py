"""YouTube ids and URLs: corpora give either a bare 11-character id or a full link, the downloader
needs a full URL, and the manifest wants the bare id when there is one."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_HOSTS = (
    "youtube.com",
    "www.youtube.com",
    "m.youtube.com",
    "music.youtube.com",
    "youtube-nocookie.com",
    "www.youtube-nocookie.com",
)


def watch_url(youtube_id: str) -> str:
    """The canonical watch URL of a video id."""
    return f"https://www.youtube.com/watch?v={youtube_id}"


def youtube_id_of(value: str) -> str | None:
    """The 11-character id in a bare id or a youtube.com / youtu.be link, else None."""
    value = value.strip()
    if _ID.match(value):
        return value
    parsed = urlparse(value)
    host = (parsed.hostname or "").lower()
    candidate = None
    if host in ("youtu.be", "www.youtu.be"):
        candidate = parsed.path.lstrip("/").split("/")[0]
    elif host in _HOSTS:
        if parsed.path == "/watch":
            candidate = (parse_qs(parsed.query).get("v") or [""])[0]
        else:
            parts = parsed.path.strip("/").split("/")
            if len(parts) >= 2 and parts[0] in ("embed", "shorts", "v", "live"):
                candidate = parts[1]
    return candidate if candidate and _ID.match(candidate) else None


def resolve_url(youtube: object, url: object) -> tuple[str | None, str | None]:
    """(full URL to fetch, YouTube id or None) from a corpus' id-or-link field and its URL field.

    The id-or-link field wins (it is what the corpora's own downloaders use); a plain http(s) URL that
    is not YouTube is kept as it is. (None, None) when neither gives something fetchable.
    """
    for value in (youtube, url):
        if not isinstance(value, str) or not value.strip():
            continue
        vid = youtube_id_of(value)
        if vid:
            return watch_url(vid), vid
        if urlparse(value.strip()).scheme in ("http", "https"):
            return value.strip(), None
    return None, None
