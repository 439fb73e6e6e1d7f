"""SurgCLIP-β and SurgLIME released weights inside our zero-shot evaluation (`--format surgclip|surglime`).

Why adapters, as for SurgVLP (released_eval.py): the rows must be scored by the same pipeline as every other
model; only the model side differs: the frame transform (their own frame-cache entries), the forward pass,
and windows of frames instead of single frames. The evaluation hands `embed_video` a window (B, T, 3, h, w);
T is the protocol's (16 for SurgCLIP, 8 for SurgLIME; a 1-frame window is one frame).

Scores: SurgLIME's window embedding is one unit vector, scored by the dot product, so cosine is exact.
SurgCLIP scores a window as mean over frames t of cos(f_t, text) / temp. Its `embed_video` returns
m / |m| with m the mean of the unit frame vectors f_t, so cos(m / |m|, text) = mean_t cos(f_t, text) / |m|:
the package's logits times temp / |m|, a positive factor of the window alone. The predicted class (argmax
over classes) is therefore the package's; the score values are a rescaling of its logits.

    hecvl evaluate --format surgclip --weights surgclip_beta.pth --bert-dir bert-base-uncased --dataset D ...
    hecvl evaluate --format surglime --weights surglime.pth --bert-dir PubMedBERT --dataset D ...
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from hecvl.errors import HecvlError
from hecvl.evaluation.prompts import truncated_prompts
from hecvl.released_runs import RELEASED_SPACE
from hecvl.video.transform import FrameTransform

SIZE = (224, 224)
FORMATS = {  # format -> (title, transform, frames per window, the tokenizer folder it needs)
    "surgclip": ("SurgCLIP-β", FrameTransform(size=SIZE, resample="pil-bicubic"), 16, "bert-base-uncased"),
    "surglime": ("SurgLIME", FrameTransform(size=SIZE, resample="pil"), 8, "PubMedBERT"),
}


def frames_to_pixels(
    frames: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """uint8 (N, H, W, 3) frames, already squashed to size -> float (N, 3, H, W), [0, 1] then normalised."""
    x = torch.as_tensor(np.asarray(frames))
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (N, H, W, 3), got {x.dtype} {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float().div(255.0)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


class WindowEmbedder:
    """A SurgCLIP or SurgLIME model behind the evaluation's model interface; one space for every level."""

    temporal = True  # encodes a window's frames jointly: the evaluation hands it the frames (windows.py)

    def __init__(self, fmt: str, model: Any) -> None:
        from hecvl.models import surgclip, surglime

        self.format = fmt
        self.model = model
        module = surgclip if fmt == "surgclip" else surglime
        self.mean, self.std = (module.MEAN, module.STD) if fmt == "surgclip" else (
            module.IMAGENET_MEAN, module.IMAGENET_STD)
        self.max_tokens = module.MAX_TOKENS
        # what `preprocess` applies: a protocol asking for the same normalisation leaves the model as it is
        self.normalisation = (tuple(self.mean), tuple(self.std))
        _, transform, window, _ = FORMATS[fmt]
        # besides the weights, what decides the embeddings: part of the embedding-cache key (model_key)
        self.config = {"format": f"{fmt}-released", "transform": transform.key(), "window_frames": window,
                       "forward": "surgclip: mean of unit frame vectors" if fmt == "surgclip" else
                       "surglime: attention pooling over frames, merged LoRA"}  # fmt: skip

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (N, 224, 224, 3) squashed frames -> normalised float (N, 3, 224, 224)."""
        return frames_to_pixels(frames, self.mean, self.std)

    def embed_video(self, x: torch.Tensor, level: str) -> torch.Tensor:
        """(B, T, 3, 224, 224) windows -> (B, 256) unit vectors (see the module docstring for SurgCLIP)."""
        if self.format == "surglime":
            return self.model.encode_windows(x).float()
        frames = self.model.encode_frames(x)  # (B, T, E) unit vectors
        return torch.nn.functional.normalize(frames.mean(dim=1), dim=-1)

    def embed_text(self, texts: Sequence[str], level: str) -> torch.Tensor:
        return self.model.embed_texts(list(texts))

    def truncated_prompts(self, texts: Sequence[str]) -> list[tuple[str, int]]:
        """Prompts longer than the model's 77 tokens (its tokenizer cuts them)."""
        return truncated_prompts(texts, self.model.tokenizer, self.max_tokens)


@dataclass(frozen=True)
class WindowSource:
    """A SurgCLIP-β or SurgLIME file to evaluate; `evaluate` loads it and takes its transform and space."""

    format: str
    weights: Path
    bert_dir: Path
    name: str

    space: ClassVar[str] = RELEASED_SPACE

    @property
    def transform(self) -> FrameTransform:
        return FORMATS[self.format][1]

    @property
    def window_frames(self) -> int:
        """Frames per window in the authors' protocol (16 SurgCLIP, 8 SurgLIME)."""
        return FORMATS[self.format][2]

    @property
    def variant(self) -> str:
        return f"released_{self.name}"

    def load(self, device: torch.device) -> tuple[WindowEmbedder, str, str]:
        """(model, embedding-cache key, description)."""
        from hecvl.evaluation.embed import model_key

        if self.format == "surgclip":
            from hecvl.models.surgclip import load_surgclip as load
        else:
            from hecvl.models.surglime import load_surglime as load
        model = WindowEmbedder(self.format, load(self.weights, self.bert_dir, device=device))
        return model, model_key(model), f"{FORMATS[self.format][0]} released weights: {self.weights}"


def window_source(fmt: str, weights: Path | None, bert_dir: Path | None, name: str | None) -> WindowSource:
    """The model a `--format surgclip|surglime` command names, its options checked before anything loads."""
    if fmt not in FORMATS:
        raise HecvlError(f"unknown --format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if weights is None:
        raise HecvlError(f"--format {fmt} needs --weights FILE.pth (the authors' released checkpoint)")
    if weights.is_dir():
        raise HecvlError(f"--format {fmt} takes the .pth file itself, not a folder", weights)
    if bert_dir is None:
        folder = FORMATS[fmt][3]
        raise HecvlError(f"--format {fmt} needs --bert-dir: a local {folder} folder with its vocab.txt")
    name = (name or weights.stem).lower()
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise HecvlError(f"--name must be letters, digits and underscores, got {name!r}")
    return WindowSource(format=fmt, weights=weights, bert_dir=bert_dir, name=name)
