"""What the adapters of other groups' models share: one embedding space, file and name checks, pixels.

Why one space: the released models have a single image-text space for every level of text; the run record
names it `joint` (hecvl.released_runs.RELEASED_SPACE), and the spaces of our own model do not apply to them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from hecvl.errors import HecvlError
from hecvl.evaluation.sources import SourceRequest
from hecvl.released_runs import RELEASED_SPACE

JOINT = (RELEASED_SPACE,)  # the spaces a released model answers in


def weights_file(fmt: str, weights: Path | None) -> Path:
    """The checkpoint file a `--format fmt` command names (a file, not a folder)."""
    if weights is None:
        raise HecvlError(f"--format {fmt} needs --weights FILE.pth (the authors' released checkpoint)")
    if weights.is_dir():
        raise HecvlError(f"--format {fmt} takes the .pth file itself, not a folder", weights)
    return weights


def short_name(name: str | None, path: Path) -> str:
    """The model's name in run names: `--name`, else the file or folder name, lower-cased."""
    name = (name or path.stem).lower()
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise HecvlError(f"--name must be letters, digits and underscores, got {name!r}")
    return name


def frames_to_pixels(
    frames: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """uint8 (N, H, W, 3) frames, already squashed to size -> float (N, 3, H, W), [0, 1] then normalised."""
    x = torch.as_tensor(np.asarray(frames))
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (N, H, W, 3), got {x.dtype} {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div(255.0)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@dataclass(frozen=True)
class ReleasedSource:
    """A released checkpoint file and its tokenizer folder: the parts every released family shares.

    A family sets `format`, `transform`, `window` and `load`; the model answers in the one joint space.
    """

    weights: Path
    bert_dir: Path | None
    short: str

    format: ClassVar[str]
    spaces: ClassVar[tuple[str, ...]] = JOINT
    method: ClassVar[str] = "zeroshot"

    @property
    def name(self) -> str:
        return f"released_{self.short}"

    @property
    def variant(self) -> str:
        return self.name

    def levels(self, space: str) -> tuple[str, list[str]]:
        return RELEASED_SPACE, [RELEASED_SPACE]

    def record(self) -> dict[str, str]:
        out = {"format": self.format, "weights": str(self.weights)}
        if self.bert_dir is not None:
            out["bert_dir"] = str(self.bert_dir)
        return out


def tokenizer_dir(fmt: str, request: SourceRequest, what: str) -> Path:
    """--bert-dir of a family whose tokenizer folder has no configured default."""
    if request.bert_dir is None:
        raise HecvlError(f"--format {fmt} needs --bert-dir: a local {what} folder with its vocab.txt")
    return request.bert_dir
