"""HecVL: one video-language model with an embedding space per level of text (clip, phase, video).

References:
- HecVL, Yuan et al., "Hierarchical Video-Language Pretraining for Zero-shot Surgical Phase
  Recognition", MICCAI 2024, arXiv 2405.10075 (the method);
- SurgVLP, Yuan et al., arXiv 2307.15220, and the public code github.com/CAMMA-public/SurgVLP
  (ResNet-50 + global average pool + linear 2048->768; Bio_ClinicalBERT with last-4-layer pooling);
- docs/method.md §2 and docs/checkpoints.md §3 of this project for what is known of both.

The forward pass, for a level L in {clip, phase, video}:

    frames (B, T, 3, H, W) --ResNet per frame--> (B, T, C) --mean over T--> (B, C) --video_head[L]--> L2
    texts  [B strings]     --BERT + pooling-->   (B, Dt)                    --text_head[L]--->  L2

`heads.mode: separate` gives each level its own pair of heads (the paper's separate spaces);
`shared` uses one pair for all levels (what the public code does). The mean over frames commutes with
the linear heads, so averaging features or per-frame embeddings is the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hecvl.config.model import LEVELS, ModelConfig
from hecvl.errors import HecvlError
from hecvl.models.losses import (
    LogitScale,
    bag_keys,
    info_nce,
    masked_mean,
    mil_nce,
    pad_bags,
    parent_child_loss,
    same_text,
    text_keys,
)
from hecvl.models.text_encoder import TextEncoder
from hecvl.models.visual_encoder import VisualEncoder, preprocess_frames

TextBatch = Sequence[str] | Sequence[Sequence[str]]


class HecVLModel(nn.Module):
    def __init__(self, config: ModelConfig, pretrained: bool = True) -> None:
        """`pretrained=False` builds the architecture only (weights to be loaded from a saved model)."""
        super().__init__()
        self.config = config
        self.visual = VisualEncoder(config.visual, pretrained=pretrained)
        self.text = TextEncoder(config.text, pretrained=pretrained)
        dim = config.heads.dim
        names = LEVELS if config.heads.mode == "separate" else ("shared",)
        self.video_heads = nn.ModuleDict({n: nn.Linear(self.visual.dim, dim) for n in names})
        if config.heads.text == "identity":
            if self.text.dim != dim:
                raise HecvlError(f"model.heads.text: identity needs heads.dim == text width {self.text.dim}")
            self.text_heads = nn.ModuleDict({n: nn.Identity() for n in names})
        else:
            self.text_heads = nn.ModuleDict({n: nn.Linear(self.text.dim, dim) for n in names})
        loss = config.loss
        self.logit_scale = LogitScale(loss.temperature, loss.learn_temperature, loss.max_logit_scale)

    @property
    def device(self) -> torch.device:
        return next(self.visual.parameters()).device

    def _head_name(self, level: str) -> str:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        return level if self.config.heads.mode == "separate" else "shared"

    # --- features ----------------------------------------------------------------------------
    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 RGB (..., H, W, 3) -> normalised float (..., 3, S, S) for the configured image size.

        No resize when frames are already S x S (only normalisation); the result is a channels-last
        view (see `preprocess_frames`)."""
        v = self.config.visual
        return preprocess_frames(frames, v.image_size, v.mean, v.std)

    def encode_video(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, 3, H, W) normalised frames -> (B, C) backbone features averaged over T.

        (N, 3, H, W) is taken as N single-frame videos. `mask` (B, T) marks valid frames when videos
        were padded to a common T: padding frames are not run through the network at all.
        """
        if frames.ndim == 4:
            frames = frames.unsqueeze(1)
        if frames.ndim != 5:
            raise ValueError(f"expected frames (B, T, 3, H, W), got {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        if mask is None:
            return self.visual(frames.flatten(0, 1)).view(b, t, -1).mean(1)
        mask = mask.bool()
        if mask.shape != (b, t) or not bool(mask.any(1).all()):
            raise ValueError("mask must be (B, T) with at least one valid frame per video")
        feats = self.visual(frames[mask])
        full = feats.new_zeros(b, t, feats.shape[-1]).masked_scatter(mask.unsqueeze(-1), feats)
        return masked_mean(full, mask)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """B texts -> (B, Dt) pooled features (tokenised here; a warning when a text is truncated)."""
        return self.text(texts)

    # --- embeddings --------------------------------------------------------------------------
    def embed_video(self, frames: torch.Tensor, level: str, mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised (B, E) video embeddings in the space of `level`."""
        head = self.video_heads[self._head_name(level)]
        return F.normalize(head(self.encode_video(frames, mask)), dim=-1)

    def embed_video_levels(
        self, frames: torch.Tensor, levels: Sequence[str], mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """{level: L2-normalised (B, E)} for several levels from ONE backbone pass.

        The backbone is nearly all the cost and is shared by the levels (only the heads differ), so
        an ensemble evaluation costs one level's time instead of three. Equal to `embed_video` per level.
        """
        names = {level: self._head_name(level) for level in levels}
        feats = self.encode_video(frames, mask)
        by_head = {n: F.normalize(self.video_heads[n](feats), dim=-1) for n in dict.fromkeys(names.values())}
        return {level: by_head[name] for level, name in names.items()}

    def embed_text(self, texts: Sequence[str], level: str) -> torch.Tensor:
        """L2-normalised (B, E) text embeddings in the space of `level`."""
        head = self.text_heads[self._head_name(level)]
        return F.normalize(head(self.encode_text(texts)), dim=-1)

    # --- training ----------------------------------------------------------------------------
    def forward(
        self,
        level: str,
        frames: torch.Tensor,
        texts: TextBatch,
        child_texts: Sequence[Sequence[str]] | None = None,
        frame_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The losses of one batch of `level` pairs, each term named `<level>/<term>`.

        texts: one string per sample (InfoNCE), or a list of strings per sample (MIL-NCE over the
        overlapping narrations of a clip). child_texts (phase and video levels): per sample the
        texts one level down, aligned with the parent text through their mean.
        Terms: `video_text`, `parent_child` (when child_texts are given), `total` (weighted sum,
        the one to backpropagate). Going through forward() keeps DDP's gradient hooks in play.
        Identical texts of the batch are positives of each other in every term (`hecvl.models.losses`;
        for parent-child also identical lists of children), as in `hecvl.training.step`.
        """
        bags = _as_bags(texts)
        if not bags or len(bags) != len(frames):
            raise ValueError(f"{len(frames)} videos but {len(bags)} texts")
        multi = not all(isinstance(t, str) for t in texts)
        flat = [t for b in bags for t in b]
        children = None
        if child_texts is not None:
            if level == "clip":
                raise ValueError("the parent-child loss is defined for the phase and video levels only")
            if multi:
                raise ValueError("the parent-child loss needs one parent text per sample")
            children = _as_bags(child_texts)
            if len(children) != len(bags):
                raise ValueError(f"{len(bags)} parent texts but {len(children)} lists of child texts")
            flat += [t for c in children for t in c]
        scale = self.logit_scale()
        video = self.embed_video(frames, level, frame_mask)
        text_all = self.embed_text(flat, level)  # one text-encoder pass for parents and children
        n = sum(len(b) for b in bags)
        out: dict[str, torch.Tensor] = {}
        keys = text_keys(flat[:n], device=video.device)
        if multi:
            counts = [len(b) for b in bags]
            padded, mask = pad_bags(text_all[:n], counts)
            out[f"{level}/video_text"] = mil_nce(video, padded, mask, scale, pad_bags(keys, counts)[0])
        else:
            out[f"{level}/video_text"] = info_nce(video, text_all[:n], scale, same_text(keys))
        total = out[f"{level}/video_text"]
        if children is not None:
            padded, mask = pad_bags(text_all[n:], [len(c) for c in children])
            pairs = same_text(keys) | same_text(bag_keys(children, device=video.device))
            out[f"{level}/parent_child"] = parent_child_loss(text_all[:n], padded, mask, scale, pairs)
            total = total + self.config.loss.parent_child_weight * out[f"{level}/parent_child"]
        out[f"{level}/total"] = total
        return out


def _as_bags(texts: TextBatch) -> list[list[str]]:
    """Normalise a batch of texts to one non-empty list of strings per sample."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list (one entry per sample), not a string")
    bags = [[t] if isinstance(t, str) else list(t) for t in texts]
    for bag in bags:
        if not bag or not all(isinstance(t, str) for t in bag):
            raise ValueError("every sample needs at least one text, and texts must be strings")
    return bags


def build_model(
    model_cfg: Mapping[str, Any] | ModelConfig | None = None,
    *,
    pretrained: bool = True,
    seed: int | None = None,
) -> HecVLModel:
    """Build the model of params["model"]. With `seed`, random initialisation is reproducible and leaves
    the global RNG untouched; pretrained weights are read from local files only."""
    cfg = ModelConfig.from_dict(model_cfg)
    if seed is None:
        return HecVLModel(cfg, pretrained=pretrained)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HecVLModel(cfg, pretrained=pretrained)
