"""The authors' released SurgVLP / HecVL / PeskaVLP weights inside our zero-shot evaluation.

Why an adapter and not a second pipeline: the released rows must be scored exactly as our own models
(same 1 fps frames, labels, prompts, 100 x cosine argmax, metrics, outputs and MLflow run), so that a
difference in a table is the model's and never the evaluation's. What differs is only the model side:
- frames: the authors' transform, PIL bilinear resize of the full frame to 360x640, centre crop 224
  (a `FrameTransform(..., resample="pil")` frame-cache entry, kept apart from our models' frames);
- the forward pass: `hecvl.models.released` (ResNet-50 + 2048->768 linear, Bio_ClinicalBERT with the
  sum-of-last-4-layers embedding, checkpoints.md §3);
- one embedding space for every level of text, recorded as space `joint`.

    hecvl evaluate --format surgvlp --weights HecVL.pth --bert-dir Bio_ClinicalBERT \
        --dataset cholec80 --out results/eval/released/hecvl/cholec80/joint-decomposed
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hecvl.config import RELEASED_MODELS, Params
from hecvl.config.model import IMAGENET_MEAN, IMAGENET_STD
from hecvl.errors import HecvlError
from hecvl.evaluation.prompts import truncated_prompts
from hecvl.models.released import CROP, MAX_TOKENS, RESIZE_HW, ReleasedModel, normalise_crops
from hecvl.released_runs import RELEASED_SPACE
from hecvl.video.transform import FrameTransform

TRANSFORM = FrameTransform(size=RESIZE_HW, crop=CROP, resample="pil")


class ReleasedEmbedder:
    """A ReleasedModel behind the evaluation's model interface (preprocess, embed_video, embed_text).

    Every level answers from the same space. Embeddings are L2-normalised, as our models return them;
    the score is then the original's 100 x cosine.
    """

    normalisation = (IMAGENET_MEAN, IMAGENET_STD)  # what `preprocess` applies (a protocol's imagenet: no-op)

    def __init__(self, model: ReleasedModel) -> None:
        self.model = model
        # what decides the embeddings besides the weights: part of the embedding-cache key (model_key)
        self.config = {
            "format": "surgvlp-released",
            "forward": "resnet50+global_embedder; bio_clinical_bert sum_last4",
            "transform": TRANSFORM.key(),
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (N, 224, 224, 3) crops of the PIL transform -> normalised float (N, 3, 224, 224)."""
        return normalise_crops(np.asarray(frames))

    def embed_video(self, x: torch.Tensor, level: str) -> torch.Tensor:
        """(B, T, 3, 224, 224) -> (B, 768) unit vectors: the mean of the T frames' image embeddings."""
        b, t = x.shape[:2]
        emb = self.model.encode_pixels(x.flatten(0, 1)).view(b, t, -1).mean(dim=1)
        return torch.nn.functional.normalize(emb, dim=-1)

    def embed_text(self, texts: Sequence[str], level: str) -> torch.Tensor:
        return torch.nn.functional.normalize(self.model.embed_texts(list(texts)), dim=-1)

    def truncated_prompts(self, texts: Sequence[str]) -> list[tuple[str, int]]:
        """Prompts longer than the original 77 tokens (the original cut them silently)."""
        return truncated_prompts(texts, self.model.tokenizer, MAX_TOKENS)


@dataclass(frozen=True)
class ReleasedSource:
    """Where a released model comes from; `evaluate` loads it and takes its transform and space."""

    weights: Path
    bert_dir: Path
    name: str

    transform = TRANSFORM
    space = RELEASED_SPACE

    @property
    def variant(self) -> str:
        return f"released_{self.name}"

    def load(self, device: torch.device) -> tuple[ReleasedEmbedder, str, str]:
        """(model, embedding-cache key, description)."""
        from hecvl.evaluation.embed import model_key
        from hecvl.models.released import load_released

        model = ReleasedEmbedder(load_released(self.weights, self.bert_dir, device=device))
        title = RELEASED_MODELS.get(self.name, self.name)
        return model, model_key(model), f"{title} released weights: {self.weights}"


def released_source(
    params: Params, weights: Path | None, bert_dir: Path | None, name: str | None
) -> ReleasedSource:
    """The released model a `--format surgvlp` command names; --bert-dir defaults to released.bert_dir."""
    if weights is None:
        raise HecvlError("--format surgvlp needs --weights FILE.pth (the authors' released checkpoint)")
    if weights.is_dir():
        raise HecvlError("--format surgvlp takes the .pth file itself, not a folder", weights)
    if bert_dir is None:
        configured = params.released.bert_dir
        if not configured:
            raise HecvlError(
                "--format surgvlp needs --bert-dir (or released.bert_dir in params.yaml): a local "
                "Bio_ClinicalBERT folder with its vocab.txt"
            )
        bert_dir = Path(configured)
    name = (name or weights.stem).lower()
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise HecvlError(f"--name must be letters, digits and underscores, got {name!r}")
    return ReleasedSource(weights=weights, bert_dir=bert_dir, name=name)
