"""The authors' released SurgVLP / HecVL / PeskaVLP weights as a model source (`--format surgvlp`).

Why an adapter and not a second pipeline: the released rows must be scored exactly as our own models
(same 1 fps frames, labels, prompts, 100 x cosine argmax, metrics, outputs and MLflow run), so that a
difference in a table is the model's and never the evaluation's. What differs is only the model side:
- frames: the authors' transform, PIL bilinear resize of the full frame to 360x640, centre crop 224
  (a `FrameTransform(..., resample="pil")` frame-cache entry, kept apart from our models' frames);
- the forward pass: `surgvlp_model` (ResNet-50 + 2048->768 linear, Bio_ClinicalBERT with the
  sum-of-last-4-layers embedding, checkpoints.md §3);
- one embedding space for every level of text, recorded as space `joint`.

    hecvl evaluate --format surgvlp --weights HecVL.pth --bert-dir Bio_ClinicalBERT \
        --dataset cholec80 --out results/eval/released/hecvl/cholec80/joint-decomposed
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hecvl.config import RELEASED_MODELS
from hecvl.config.model import IMAGENET_MEAN, IMAGENET_STD
from hecvl.errors import HecvlError
from hecvl.evaluation.embed import model_key
from hecvl.evaluation.prompts import truncated_prompts
from hecvl.evaluation.sources import Loaded, SourceFamily, SourceRequest
from hecvl.released import surgvlp_model
from hecvl.released.common import JOINT, ReleasedSource, short_name, weights_file
from hecvl.released.surgvlp_model import CROP, MAX_TOKENS, RESIZE_HW, normalise_crops
from hecvl.video.transform import FrameTransform

TRANSFORM = FrameTransform(size=RESIZE_HW, crop=CROP, resample="pil")


class ReleasedEmbedder:
    """A `surgvlp_model.ReleasedModel` as the scorer sees it (a `ScoredModel`): every level answers from the
    same space. Embeddings are L2-normalised, as our models return them; the score is then the original's
    100 x cosine.
    """

    temporal = False
    normalisation = (IMAGENET_MEAN, IMAGENET_STD)  # what `preprocess` applies (a protocol's imagenet: no-op)
    image_size = None  # the frames come cropped to 224 by the transform

    def __init__(self, model: surgvlp_model.ReleasedModel) -> None:
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

    def embed_video_levels(self, x: torch.Tensor, levels: Sequence[str]) -> Mapping[str, torch.Tensor]:
        """(B, T, 3, 224, 224) -> (B, 768) unit vectors: the mean of the T frames' image embeddings."""
        b, t = x.shape[:2]
        emb = self.model.encode_pixels(x.flatten(0, 1)).view(b, t, -1).mean(dim=1)
        emb = torch.nn.functional.normalize(emb, dim=-1)
        return {level: emb for level in levels}

    def embed_text(self, texts: Sequence[str], level: str) -> torch.Tensor:
        return torch.nn.functional.normalize(self.model.embed_texts(list(texts)), dim=-1)

    def truncated_prompts(self, texts: Sequence[str]) -> list[tuple[str, int]]:
        """Prompts longer than the original 77 tokens (the original cut them silently)."""
        return truncated_prompts(texts, self.model.tokenizer, MAX_TOKENS)


@dataclass(frozen=True)
class SurgVLPSource(ReleasedSource):
    """A released SurgVLP / HecVL / PeskaVLP .pth and the Bio_ClinicalBERT folder of its vocabulary."""

    format = "surgvlp"
    transform = TRANSFORM
    window = None

    def load(self, device: torch.device) -> Loaded:
        model = ReleasedEmbedder(surgvlp_model.load_released(self.weights, self.bert_dir, device=device))
        title = RELEASED_MODELS.get(self.short, self.short)
        return Loaded(model, model_key(model), f"{title} released weights: {self.weights}")


def build(request: SourceRequest) -> SurgVLPSource:
    """The released model a `--format surgvlp` command names; --bert-dir defaults to released.bert_dir."""
    weights = weights_file("surgvlp", request.weights)
    bert_dir = request.bert_dir
    if bert_dir is None:
        configured = request.params.released.bert_dir
        if not configured:
            raise HecvlError(
                "--format surgvlp needs --bert-dir (or released.bert_dir in params.yaml): a local "
                "Bio_ClinicalBERT folder with its vocab.txt"
            )
        bert_dir = Path(configured)
    return SurgVLPSource(weights, bert_dir, short_name(request.name, weights))


FAMILY = SourceFamily(
    "surgvlp",
    "the authors' released SurgVLP/HecVL/PeskaVLP .pth (--bert-dir: Bio_ClinicalBERT)",
    build,
    JOINT,
    options=frozenset({"bert_dir", "name"}),
)
