"""`eval:` zero-shot evaluation (`hecvl evaluate`, `hecvl score`): the paper's protocol by default."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt

from hecvl.config.base import LEVELS, Section, reason

SPACES: tuple[str, ...] = (*LEVELS, "ensemble")  # ensemble: mean of the levels' scores
STYLES: tuple[str, ...] = ("decomposed", "class_name", "ensemble")  # prompt styles


class ProbeSettings(Section):
    """Linear-probe reference: logistic regression on frozen frame embeddings."""

    C: PositiveFloat = reason("inverse L2 regularisation", 1.0)
    max_iter: PositiveInt = 1000
    max_train_frames: int | None = reason("seeded subsample of the train split above this; null = all",
                                          50000, ge=2)


class WindowSettings(Section):
    """The frames scored together for one second: the protocol's temporal window (docs/protocols.md)."""

    frames: PositiveInt = reason(
        "frames per window around each scored second (1: the frame alone, the paper)", 1, le=64)
    start: int | None = reason("offset of the window's first frame from the scored second; null: "
                               "centred, -(frames // 2)", None, ge=-63, le=0)
    ends: Literal["shift", "clamp", "anchor"] = reason(
        "near a video's ends: shift the window inside the video (SurgCLIP), repeat the edge frame (clamp), "
        "or put the scored frame itself in place of the missing ones (SurgLIME)", "shift")

    @property
    def first(self) -> int:
        """Offset of the first frame from the scored second."""
        return -(self.frames // 2) if self.start is None else self.start

    def key(self) -> str:
        """A file-name-safe name of the window, e.g. `w16s-8shift` (`w1` for the single frame)."""
        return "w1" if self.frames == 1 else f"w{self.frames}s{self.first}{self.ends}"


class EvalSettings(Section):
    protocol: str = reason("the named evaluation protocol applied (`hecvl protocols`); hecvl: these settings",
                           "hecvl", pattern=r"^[a-z0-9][a-z0-9.-]*$")
    space: Literal["clip", "phase", "video", "ensemble"] = reason(
        "which embedding space answers (all equal with shared heads, the public code)", "ensemble")
    prompts: Literal["decomposed", "class_name", "ensemble"] = reason(
        "decomposed: one sentence per class (paper); ensemble: templates x class name, averaged",
        "decomposed")
    prompt_file: str | None = reason("your own prompts (layout of src/hecvl/evaluation/prompts/*.yaml); "
                                     "null = the shipped file of the dataset", None)
    window: WindowSettings = Field(default_factory=WindowSettings)
    normalise: Literal["model", "imagenet", "half"] = reason(
        "pixel normalisation: the model's own (trained with), ImageNet mean/std, or mean = std = 0.5",
        "model")
    split: str = reason("split(s) scored: a split name, or several joined by + (e.g. val+test)", "test",
                        pattern=r"^[A-Za-z0-9_-]+(\+[A-Za-z0-9_-]+)*$")
    batch_size: PositiveInt = reason("frames per forward pass", 64)
    device: str = reason("auto (cuda when present) | cpu | cuda | cuda:N", "auto")
    cache: str = reason("frame embeddings per (model, dataset, transform, level, video)",
                        "results/cache/embeddings", min_length=1)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
