"""Text rules shared by the three levels: normalise, count, truncate or drop.

ASR text arrives with stray whitespace and line breaks; a keystep title can be empty; an abstract can be
longer than any text encoder reads. One function decides, for every level, whether a text is kept, as
what, and if not, why (the reason is what the statistics count).
"""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def clean_text(text: object) -> str:
    """NFC-normalised, whitespace collapsed to single spaces, stripped; None/NaN become ""."""
    if text is None or (isinstance(text, float) and text != text):
        return ""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", str(text))).strip()


def word_count(text: str) -> int:
    return len(text.split())


def split_sentences(text: str) -> list[str]:
    """Sentences of a text (split after . ! ? and a space); the whole text when it has no end mark."""
    return [s for s in (part.strip() for part in _SENTENCE_END.split(clean_text(text))) if s]


def truncate_words(text: str, max_chars: int) -> str:
    """At most `max_chars` characters, cut at the last word boundary (a single over-long word is cut hard)."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else text[:max_chars]).rstrip()


def apply_text_limits(
    text: object, min_words: int, max_chars: int, long_text: str
) -> tuple[str | None, str | None, bool]:
    """(kept text or None, drop reason or None, truncated?) under the level's limits.

    Reasons: `empty_text`, `short_text` (fewer than `min_words` words), `long_text` (over `max_chars`
    with `long_text: drop`). With `long_text: truncate` the text is cut at a word boundary instead.
    """
    clean = clean_text(text)
    if not clean:
        return None, "empty_text", False
    if len(clean) > max_chars:
        if long_text == "drop":
            return None, "long_text", False
        clean = truncate_words(clean, max_chars)
        if word_count(clean) < min_words:
            return None, "short_text", False
        return clean, None, True
    if word_count(clean) < min_words:
        return None, "short_text", False
    return clean, None, False
