"""SurgCLIP-β's released weights (the SurgLaVi authors' `surgclip` 0.1.0) as a source (`--format surgclip`).

Why an adapter, as for SurgVLP (surgvlp.py): the rows are scored by the same pipeline as every other model;
only the model side differs: the frame transform (PIL bicubic squash to 224, its own frame-cache entry), the
normalisation (mean = std = 0.5), the forward pass (`surgclip_model`) and windows of frames instead of single
frames: the evaluation hands the model each second's window (B, T, 3, h, w), T the protocol's (16 under the
authors' protocol; a 1-frame window is one frame).

Scores: SurgCLIP scores a window as mean over frames t of cos(f_t, text) / temp. `embed_video_levels`
returns m / |m| with m the mean of the unit frame vectors f_t, so cos(m / |m|, text) = mean_t cos(f_t, text)
/ |m|: the package's logits times temp / |m|, a positive factor of the window alone. The predicted class
(argmax over classes) is therefore the package's; the score values are a rescaling of its logits.

    hecvl evaluate --format surgclip --weights surgclip_beta.pth --bert-dir bert-base-uncased --dataset D ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hecvl.config.evaluation import WindowSettings
from hecvl.evaluation.embed import model_key
from hecvl.evaluation.prompts import truncated_prompts
from hecvl.evaluation.protocols import get_protocol
from hecvl.evaluation.sources import Loaded, SourceFamily, SourceRequest
from hecvl.released import surgclip_model
from hecvl.released.common import (
    JOINT,
    ReleasedSource,
    frames_to_pixels,
    short_name,
    tokenizer_dir,
    weights_file,
)
from hecvl.video.transform import FrameTransform

TRANSFORM = FrameTransform(size=(224, 224), resample="pil-bicubic")


class SurgClipEmbedder:
    """A `surgclip_model.SurgClipModel` as the scorer sees it: windows of frames, one space for all levels."""

    temporal = True  # encodes a window's frames jointly: the evaluation hands it the frames (windows.py)
    normalisation = (surgclip_model.MEAN, surgclip_model.STD)
    image_size = None  # the frames come squashed to 224 by the transform

    def __init__(self, model: surgclip_model.SurgClipModel) -> None:
        self.model = model
        # besides the weights, what decides the embeddings: part of the embedding-cache key (model_key)
        self.config = {"format": "surgclip-released", "transform": TRANSFORM.key(),
                       "window_frames": get_protocol("surgclip").window.frames,
                       "forward": "surgclip: mean of unit frame vectors"}  # fmt: skip

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (N, 224, 224, 3) squashed frames -> normalised float (N, 3, 224, 224)."""
        return frames_to_pixels(frames, *self.normalisation)

    def embed_video_levels(self, x: torch.Tensor, levels: Sequence[str]) -> Mapping[str, torch.Tensor]:
        """(B, T, 3, 224, 224) windows -> (B, 256) unit vectors (see the module docstring)."""
        frames = self.model.encode_frames(x)  # (B, T, E) unit vectors
        emb = torch.nn.functional.normalize(frames.mean(dim=1), dim=-1)
        return {level: emb for level in levels}

    def embed_text(self, texts: Sequence[str], level: str) -> torch.Tensor:
        return self.model.embed_texts(list(texts))

    def truncated_prompts(self, texts: Sequence[str]) -> list[tuple[str, int]]:
        """Prompts longer than the model's 77 tokens (its tokenizer cuts them)."""
        return truncated_prompts(texts, self.model.tokenizer, surgclip_model.MAX_TOKENS)


@dataclass(frozen=True)
class SurgClipSource(ReleasedSource):
    """SurgCLIP-β's surgclip_beta.pth and the bert-base-uncased folder of its vocabulary."""

    format = "surgclip"
    transform = TRANSFORM

    @property
    def window(self) -> WindowSettings | None:
        """The authors' window (the protocol of the same name), used under the study protocol."""
        return get_protocol("surgclip").window

    def load(self, device: torch.device) -> Loaded:
        model = SurgClipEmbedder(surgclip_model.load_surgclip(self.weights, self.bert_dir, device=device))
        return Loaded(model, model_key(model), f"SurgCLIP-β released weights: {self.weights}")


def build(request: SourceRequest) -> SurgClipSource:
    """The model a `--format surgclip` command names, its options checked before anything loads."""
    weights = weights_file("surgclip", request.weights)
    bert_dir = tokenizer_dir("surgclip", request, "bert-base-uncased")
    return SurgClipSource(weights, bert_dir, short_name(request.name, weights))


FAMILY = SourceFamily(
    "surgclip",
    "SurgCLIP-β's surgclip_beta.pth (--bert-dir: bert-base-uncased)",
    build,
    JOINT,
    options=frozenset({"bert_dir", "name"}),
)
