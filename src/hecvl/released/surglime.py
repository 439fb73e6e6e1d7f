"""SurgLIME's released weights as a model source (`--format surglime`).

Why an adapter, as for SurgVLP (surgvlp.py): the rows are scored by the same pipeline as every other model;
only the model side differs: the frame transform (PIL bilinear squash to 224, its own frame-cache entry), the
forward pass (`surglime_model`: attention pooling over a window's frames, LoRA merged) and windows of frames
instead of single frames: the evaluation hands the model each second's window (B, T, 3, h, w), T the
protocol's (8 under the authors' protocol; a 1-frame window is one frame). A window's embedding is one unit
vector, scored by the dot product, so 100 x cosine is the model's own score.

    hecvl evaluate --format surglime --weights surglime.pth --bert-dir PubMedBERT --dataset D ...
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
from hecvl.released import surglime_model
from hecvl.released.common import (
    JOINT,
    ReleasedSource,
    frames_to_pixels,
    short_name,
    tokenizer_dir,
    weights_file,
)
from hecvl.video.transform import FrameTransform

TRANSFORM = FrameTransform(size=(224, 224), resample="pil")


class SurgLimeEmbedder:
    """A `surglime_model.SurgLimeModel` as the scorer sees it: windows of frames, one space for all levels."""

    temporal = True  # encodes a window's frames jointly: the evaluation hands it the frames (windows.py)
    normalisation = (surglime_model.IMAGENET_MEAN, surglime_model.IMAGENET_STD)
    image_size = None  # the frames come squashed to 224 by the transform

    def __init__(self, model: surglime_model.SurgLimeModel) -> None:
        self.model = model
        # besides the weights, what decides the embeddings: part of the embedding-cache key (model_key)
        self.config = {"format": "surglime-released", "transform": TRANSFORM.key(),
                       "window_frames": get_protocol("surglime").window.frames,
                       "forward": "surglime: attention pooling over frames, merged LoRA"}  # fmt: skip

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (N, 224, 224, 3) squashed frames -> normalised float (N, 3, 224, 224)."""
        return frames_to_pixels(frames, *self.normalisation)

    def embed_video_levels(self, x: torch.Tensor, levels: Sequence[str]) -> Mapping[str, torch.Tensor]:
        """(B, T, 3, 224, 224) windows -> (B, 256) unit vectors."""
        emb = self.model.encode_windows(x).float()
        return {level: emb for level in levels}

    def embed_text(self, texts: Sequence[str], level: str) -> torch.Tensor:
        return self.model.embed_texts(list(texts))

    def truncated_prompts(self, texts: Sequence[str]) -> list[tuple[str, int]]:
        """Prompts longer than the model's 77 tokens (its tokenizer cuts them)."""
        return truncated_prompts(texts, self.model.tokenizer, surglime_model.MAX_TOKENS)


@dataclass(frozen=True)
class SurgLimeSource(ReleasedSource):
    """SurgLIME's surglime.pth and the PubMedBERT folder of its vocabulary."""

    format = "surglime"
    transform = TRANSFORM

    @property
    def window(self) -> WindowSettings | None:
        """The authors' window (the protocol of the same name), used under the study protocol."""
        return get_protocol("surglime").window

    def load(self, device: torch.device) -> Loaded:
        model = SurgLimeEmbedder(surglime_model.load_surglime(self.weights, self.bert_dir, device=device))
        return Loaded(model, model_key(model), f"SurgLIME released weights: {self.weights}")


def build(request: SourceRequest) -> SurgLimeSource:
    """The model a `--format surglime` command names, its options checked before anything loads."""
    weights = weights_file("surglime", request.weights)
    bert_dir = tokenizer_dir("surglime", request, "PubMedBERT")
    return SurgLimeSource(weights, bert_dir, short_name(request.name, weights))


FAMILY = SourceFamily(
    "surglime",
    "SurgLIME's surglime.pth (--bert-dir: PubMedBERT)",
    build,
    JOINT,
    options=frozenset({"bert_dir", "name"}),
)
