"""Hugging Face CLIP-family models from a local folder as a model source (`--format hf-clip --weights DIR`).

Why: CLIP and SigLIP (MedSigLIP) are the general-purpose baselines the SurgLaVi authors report; any folder
written by transformers' `save_pretrained` (a `CLIPModel` or a `SiglipModel`, its tokenizer beside it) is
scored by the same pipeline as every other model. Nothing is downloaded.

- frames: the protocol's (params' `frames.transform`), as for our own models; `preprocess` resizes the
  shorter side to the model's image size and centre-crops where they are not that square already, then
  normalises with the folder's `preprocessor_config.json` mean and std (else the family's defaults);
- image embedding: `get_image_features(pixel_values).pooler_output`, the mean over a window's frames, unit
  length; text: `get_text_features(...)` on the folder's tokenizer, truncated to the text tower's positions,
  padded as the family was trained (SigLIP: to the maximum length, its pooling reads the last position);
- one embedding space for every level of text (`joint`), as for the released surgical models.

    hecvl evaluate --format hf-clip --weights models/clip-vit-base-patch16 --dataset cholec80 --out OUT
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils.constants import (
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
)

from hecvl.errors import HecvlError
from hecvl.evaluation.embed import model_key
from hecvl.evaluation.prompts import truncated_prompts
from hecvl.evaluation.sources import Loaded, SourceFamily, SourceRequest
from hecvl.models.visual_encoder import preprocess_frames
from hecvl.released.common import JOINT, ReleasedSource, short_name

# model_type -> (its normalisation when the folder has no preprocessor_config.json, text padding)
KINDS = {
    "clip": ((tuple(OPENAI_CLIP_MEAN), tuple(OPENAI_CLIP_STD)), "longest"),
    "siglip": ((tuple(IMAGENET_STANDARD_MEAN), tuple(IMAGENET_STANDARD_STD)), "max_length"),
}


class HFClipEmbedder:
    """A transformers `CLIPModel` / `SiglipModel` and its tokenizer as the scorer sees them (one space)."""

    temporal = False

    def __init__(
        self, model: Any, tokenizer: Any, normalisation: tuple[tuple[float, ...], tuple[float, ...]]
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        kind = model.config.model_type
        self.padding = KINDS[kind][1]
        self.normalisation = normalisation
        self.image_size: int | None = int(model.config.vision_config.image_size)
        self.max_length = int(model.config.text_config.max_position_embeddings)
        # besides the weights, what decides the embeddings: part of the embedding-cache key (model_key)
        self.config = {"format": "hf-clip", "model_type": kind, "image_size": self.image_size,
                       "normalisation": [list(v) for v in normalisation], "padding": self.padding,
                       "max_length": self.max_length}  # fmt: skip

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> normalised float (N, 3, S, S), S the vision tower's image size."""
        return preprocess_frames(frames, self.image_size, *self.normalisation)

    @torch.inference_mode()
    def embed_video_levels(self, x: torch.Tensor, levels: Sequence[str]) -> Mapping[str, torch.Tensor]:
        """(B, T, 3, S, S) -> (B, E) unit vectors: the mean of the T frames' image features."""
        b, t = x.shape[:2]
        pixels = x.flatten(0, 1).to(self.device, torch.float32)
        feats = self.model.get_image_features(pixel_values=pixels).pooler_output
        emb = torch.nn.functional.normalize(feats.view(b, t, -1).mean(dim=1), dim=-1)
        return {level: emb for level in levels}

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The texts as the family was trained on them: truncated to the text tower, padded its way."""
        enc = self.tokenizer(
            list(texts),
            padding=self.padding,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask") if k in enc}

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str], level: str) -> torch.Tensor:
        feats = self.model.get_text_features(**self.tokenize(texts)).pooler_output
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    def truncated_prompts(self, texts: Sequence[str]) -> list[tuple[str, int]]:
        """Prompts longer than the text tower's positions (cut by `tokenize`)."""
        return truncated_prompts(texts, self.tokenizer, self.max_length)


def folder_normalisation(folder: Path, kind: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of the folder's preprocessor_config.json, else the family's defaults."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return KINDS[kind][0]
    try:
        cfg = json.loads(path.read_text())
        mean, std = tuple(float(v) for v in cfg["image_mean"]), tuple(float(v) for v in cfg["image_std"])
    except (ValueError, KeyError, TypeError) as exc:
        raise HecvlError(f"no usable image_mean/image_std ({exc})", path) from None
    if len(mean) != 3 or len(std) != 3:
        raise HecvlError("image_mean and image_std must have 3 values each", path)
    return mean, std


@dataclass(frozen=True)
class HFClipSource(ReleasedSource):
    """A local CLIPModel or SiglipModel folder (config.json, weights, tokenizer files)."""

    format = "hf-clip"
    transform = None
    window = None

    @property
    def name(self) -> str:
        return f"hf_{self.short}"

    def load(self, device: torch.device) -> Loaded:
        from transformers import AutoModel, AutoTokenizer

        try:
            model = AutoModel.from_pretrained(self.weights, local_files_only=True, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(self.weights, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise HecvlError(f"cannot load a Hugging Face model and tokenizer: {exc}", self.weights) from None
        kind = model.config.model_type
        if kind not in KINDS:
            raise HecvlError(
                f"--format hf-clip takes a CLIPModel or SiglipModel folder, not {kind!r}", self.weights
            )
        embedder = HFClipEmbedder(
            model.to(device).eval(), tokenizer, folder_normalisation(self.weights, kind)
        )
        return Loaded(embedder, model_key(embedder), f"{type(model).__name__} from {self.weights}")


def build(request: SourceRequest) -> HFClipSource:
    """The folder a `--format hf-clip` command names, checked before anything loads."""
    folder = request.weights
    if folder is None or not (folder / "config.json").is_file():
        raise HecvlError(
            "--format hf-clip needs --weights DIR: a local CLIPModel or SiglipModel folder "
            "(config.json, weights and tokenizer files, as save_pretrained writes them)",
            folder,
        )
    short = short_name(request.name, Path(folder.resolve().name.lower().replace("-", "_").replace(".", "_")))
    return HFClipSource(folder, None, short)


FAMILY = SourceFamily(
    "hf-clip",
    "a local Hugging Face CLIPModel or SiglipModel folder (save_pretrained)",
    build,
    JOINT,
    options=frozenset({"name"}),
)
