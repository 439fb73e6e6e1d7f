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


class EvalSettings(Section):
    space: Literal["clip", "phase", "video", "ensemble"] = reason(
        "which embedding space answers (all equal with shared heads, the public code)", "ensemble")
    prompts: Literal["decomposed", "class_name", "ensemble"] = reason(
        "decomposed: one sentence per class (paper); ensemble: templates x class name, averaged",
        "decomposed")
    prompt_file: str | None = reason("your own prompts (layout of src/hecvl/evaluation/prompts/*.yaml); "
                                     "null = the shipped file of the dataset", None)
    batch_size: PositiveInt = reason("frames per forward pass", 64)
    device: str = reason("auto (cuda when present) | cpu | cuda | cuda:N", "auto")
    cache: str = reason("frame embeddings per (model, dataset, transform, level, video)",
                        "results/cache/embeddings", min_length=1)
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
