"""The pairing rules, read from `params.yaml` (`pairing:`), with the paper's values as defaults.

Every decision the pairing stage takes (what to sort, clip, extend, truncate or drop) is one named
setting here, so a manifest is a function of the corpus and these rules alone, and an ablation of a rule
is one override in params.yaml. Unknown keys and bad values are errors: a typo must not silently fall
back to a default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hecvl.errors import HecvlError

OVERLAP_RULES = ("clip", "keep")
BEYOND_END_RULES = ("clip", "drop")
SHORT_WINDOW_RULES = ("extend", "drop")
LONG_TEXT_RULES = ("truncate", "drop")
PHASE_TEXT_RULES = ("title", "summary", "summary_or_title", "title_and_summary")
DTYPES = ("uint8", "float32")


@dataclass(frozen=True)
class TranscriptRules:
    """How time segments (narrations and keysteps alike) are repaired before pairing.

    Segments are first sorted by (start, end). `overlap`: "clip" moves a segment's start to the end of the
    segments before it (one that is then empty is dropped as `overlap`), "keep" leaves overlaps and
    counts them as warnings. `beyond_end`: "clip" cuts a segment at the video's end ("drop" drops it);
    a segment that starts at or after the end is always dropped.
    """

    overlap: str = "clip"
    beyond_end: str = "clip"


@dataclass(frozen=True)
class ClipRules:
    """Clip level: a `min_s`-`max_s` clip inside a narration's window, `frames` frames on an `fps` grid.

    Windows shorter than `min_s`: "extend" widens them symmetrically to `min_s` (shifted to stay inside
    the video), "drop" drops them. Texts with fewer than `min_words` words are dropped.
    """

    min_s: float = 3.0
    max_s: float = 5.0
    fps: float = 2.0
    frames: int = 4
    short_window: str = "extend"
    min_words: int = 3
    max_chars: int = 300


@dataclass(frozen=True)
class PhaseRules:
    """Phase level: a whole keystep segment with `frames` frames; shorter than `min_s` is dropped.

    `text` picks the phase text from the keystep's title (`step`) and optional summary (`text`).
    `min_children`: the least number of clip pairs inside a phase for it to be kept.
    """

    frames: int = 16
    min_s: float = 3.0
    text: str = "summary_or_title"
    min_words: int = 1
    max_chars: int = 300
    min_children: int = 0


@dataclass(frozen=True)
class VideoRules:
    """Video level: the whole video with `frames` frames and the abstract as its text."""

    frames: int = 64
    min_s: float = 3.0
    min_words: int = 5
    max_chars: int = 2000
    min_children: int = 0


@dataclass(frozen=True)
class DeriveRules:
    """Optional: fill missing keystep titles / abstracts from the narrations (off by default).

    `summariser` is a registered name (see `derive.SUMMARISERS`) or "package.module:function".
    Lectures without any keystep get segments of about `phase_window_s` seconds. `text_encoder` is the
    config handed to `load_text_encoder`; None means the model's text encoder section.
    """

    enabled: bool = False
    summariser: str = "centroid"
    phase_sentences: int = 1
    video_sentences: int = 3
    phase_window_s: float = 60.0
    text_encoder: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class LoaderRules:
    """Defaults of the training loaders: decode size (H, W), square crop, dtype, readers kept per worker."""

    size: tuple[int, int] | None = (360, 640)
    crop: int | None = 336
    dtype: str = "uint8"
    max_open_videos: int = 4
    backend: str = "auto"


@dataclass(frozen=True)
class PairingRules:
    transcript: TranscriptRules = field(default_factory=TranscriptRules)
    clip: ClipRules = field(default_factory=ClipRules)
    phase: PhaseRules = field(default_factory=PhaseRules)
    video: VideoRules = field(default_factory=VideoRules)
    long_text: str = "truncate"
    derive: DeriveRules = field(default_factory=DeriveRules)
    loader: LoaderRules = field(default_factory=LoaderRules)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> PairingRules:
        """Rules from the resolved params (the `pairing:` section; missing keys take the defaults)."""
        section = (params or {}).get("pairing") or {}
        if not isinstance(section, Mapping):
            raise HecvlError("the `pairing` section of the parameters must be a mapping")
        rules = _build(cls, section, "pairing")
        rules.validate()
        return rules

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (for stats.json and tracking)."""
        return dataclasses.asdict(self)

    def validate(self) -> None:
        def choice(value: str, allowed: tuple[str, ...], name: str) -> None:
            if value not in allowed:
                raise HecvlError(f"pairing.{name} must be one of {', '.join(allowed)}, got {value!r}")

        def positive(value: float, name: str) -> None:
            if not value > 0:
                raise HecvlError(f"pairing.{name} must be positive, got {value!r}")

        choice(self.transcript.overlap, OVERLAP_RULES, "transcript.overlap")
        choice(self.transcript.beyond_end, BEYOND_END_RULES, "transcript.beyond_end")
        choice(self.clip.short_window, SHORT_WINDOW_RULES, "clip.short_window")
        choice(self.long_text, LONG_TEXT_RULES, "long_text")
        choice(self.phase.text, PHASE_TEXT_RULES, "phase.text")
        choice(self.loader.dtype, DTYPES, "loader.dtype")
        for name in (
            "clip.min_s",
            "clip.max_s",
            "clip.fps",
            "clip.frames",
            "phase.frames",
            "phase.min_s",
            "video.frames",
            "video.min_s",
            "clip.max_chars",
            "phase.max_chars",
            "video.max_chars",
            "derive.phase_sentences",
            "derive.video_sentences",
            "derive.phase_window_s",
            "loader.max_open_videos",
        ):
            section, key = name.split(".")
            positive(getattr(getattr(self, section), key), name)
        if self.clip.max_s < self.clip.min_s:
            raise HecvlError(
                f"pairing.clip.max_s ({self.clip.max_s}) is below clip.min_s ({self.clip.min_s})"
            )
        if self.clip.frames > self.clip.min_s * self.clip.fps:
            raise HecvlError(
                f"pairing.clip: {self.clip.frames} frames do not fit a {self.clip.min_s} s clip at "
                f"{self.clip.fps} fps"
            )
        if (
            self.loader.size is not None
            and self.loader.crop is not None
            and self.loader.crop > min(self.loader.size)
        ):
            raise HecvlError(f"pairing.loader.crop {self.loader.crop} exceeds the size {self.loader.size}")


def _build(kind: type, section: Mapping[str, Any], where: str) -> Any:
    """Instantiate a rules dataclass from a mapping, recursing into nested rule sections."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise HecvlError(f"unknown setting(s) in {where}: {', '.join(unknown)} (known: {', '.join(fields)})")
    defaults = kind()
    values: dict[str, Any] = {}
    for name, value in section.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, Mapping):
                raise HecvlError(f"{where}.{name} must be a mapping")
            values[name] = _build(type(default), value, f"{where}.{name}")
        else:
            values[name] = _coerce(value, default, f"{where}.{name}")
    return kind(**values)


def _coerce(value: Any, default: Any, name: str) -> Any:
    """Check a setting against its default's type; YAML ints are accepted where floats are expected."""
    if value is None:
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise HecvlError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(default, str) and isinstance(value, str):
        return value
    if isinstance(default, tuple) and isinstance(value, list | tuple) and len(value) == len(default):
        return tuple(int(v) for v in value)
    if default is None and isinstance(value, Mapping):
        return dict(value)
    raise HecvlError(f"{name} has the wrong type: {value!r} (expected like {default!r})")
