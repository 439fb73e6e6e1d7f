"""`pairing:` clip / phase / video pairs from the lecture corpus (`hecvl pair`, docs/method.md §2-3).

Every decision the pairing stage takes (what to sort, clip, extend, truncate or drop) is one setting
here, so a manifest is a function of the corpus and these rules alone.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from hecvl.config.base import Section, reason
from hecvl.config.model import TextConfig

__all__ = ["ClipRules", "DeriveRules", "LoaderRules", "PairingRules", "PhaseRules", "TranscriptRules",
           "VideoRules"]


class TranscriptRules(Section):
    """How time segments (narrations and keysteps) are repaired, after sorting by (start, end).

    A segment that starts at or after the video's end is always dropped.
    """

    overlap: Literal["clip", "keep"] = reason("clip: start at the previous end (dropped when nothing is "
                                              "left); keep: leave overlaps, with a warning", "clip")
    beyond_end: Literal["clip", "drop"] = reason("segments past the video's end: cut at the end, or drop",
                                                 "clip")


class ClipRules(Section):
    """Clip level: a `min_s`-`max_s` clip inside a narration's window, `frames` frames on an `fps` grid."""

    min_s: PositiveFloat = 3.0
    max_s: PositiveFloat = 5.0
    fps: PositiveFloat = reason("frame grid over the clip (paper: 2)", 2.0)
    frames: PositiveInt = reason("frames per clip sample (paper: 4 at 2 fps)", 4)
    short_window: Literal["extend", "drop"] = reason(
        "narrations shorter than min_s: widen symmetrically to min_s inside the video, or drop", "extend")
    min_words: int = reason("shorter narrations are dropped", 3, ge=0)
    max_chars: PositiveInt = 300

    @model_validator(mode="after")
    def _clip_fits(self) -> ClipRules:
        if self.max_s < self.min_s:
            raise ValueError(f"max_s ({self.max_s}) is below min_s ({self.min_s})")
        if self.frames > self.min_s * self.fps:
            raise ValueError(f"{self.frames} frames do not fit a {self.min_s} s clip at {self.fps} fps")
        return self


class PhaseRules(Section):
    """Phase level: a whole keystep segment <-> its title and/or summary."""

    frames: PositiveInt = reason("paper: 16", 16)
    min_s: PositiveFloat = reason("keysteps shorter than a clip are dropped", 3.0)
    text: Literal["title", "summary", "summary_or_title", "title_and_summary"] = reason(
        "which keystep text is the phase text", "summary_or_title")
    min_words: int = Field(1, ge=0)
    max_chars: PositiveInt = 300
    min_children: int = reason("least clip pairs inside a phase pair", 0, ge=0)


class VideoRules(Section):
    """Video level: the whole video <-> the lecture's abstract."""

    frames: PositiveInt = reason("paper: 64", 64)
    min_s: PositiveFloat = 3.0
    min_words: int = Field(5, ge=0)
    max_chars: PositiveInt = 2000
    min_children: int = reason("least phase pairs in a video pair", 0, ge=0)


class DeriveRules(Section):
    """Fill missing keystep titles / abstracts from the narrations (`hecvl pair --derive` turns it on)."""

    enabled: bool = False
    summariser: str = reason('registered name, or "package.module:factory" (e.g. a local LLM)', "centroid")
    phase_sentences: PositiveInt = 1
    video_sentences: PositiveInt = 3
    phase_window_s: PositiveFloat = reason("lectures without keysteps: segments of about this length", 60.0)
    text_encoder: TextConfig | None = reason("the summariser's sentence encoder; null = model.text", None)


class LoaderRules(Section):
    """Defaults of the training loaders (`hecvl.pairing.datasets`). Their resize is `frames.transform.size`
    and their random crop `model.visual.image_size`: one pixel scale at training and test (protocol.md §2)."""

    dtype: Literal["uint8", "float32"] = reason("float32: 0-1", "uint8")
    max_open_videos: PositiveInt = reason("decoders kept open per worker", 4)
    backend: Literal["auto", "decord", "pyav"] = "auto"


class PairingRules(Section):
    transcript: TranscriptRules = Field(default_factory=TranscriptRules)
    clip: ClipRules = Field(default_factory=ClipRules)
    phase: PhaseRules = Field(default_factory=PhaseRules)
    video: VideoRules = Field(default_factory=VideoRules)
    long_text: Literal["truncate", "drop"] = reason("texts over max_chars: cut at a word boundary, or drop",
                                                    "truncate")
    derive: DeriveRules = Field(default_factory=DeriveRules)
    loader: LoaderRules = Field(default_factory=LoaderRules)
