"""Contrastive losses of hierarchical video-language pretraining.

All take L2-normalised embeddings and a logit scale (1 / temperature) and compute in float32, so they
are safe under bf16 autocast. The batch provides the negatives: sample i's text is the positive of
sample i's video and a negative of every other video, and vice versa.

- `info_nce`: symmetric InfoNCE (CLIP; Oord et al. 2018), the loss of every level in HecVL.
- `mil_nce`: MIL-NCE (Miech et al., CVPR 2020) for a clip with several overlapping narrations, any of
  which may be the one that describes it: the positives of a sample are a set, summed in the
  numerator. Made symmetric like `info_nce` (video -> narrations and narrations -> video, averaged),
  so with one narration per clip it equals `info_nce` exactly.
- `parent_child_loss`: HecVL's alignment of a parent text (keystep title, abstract) with the mean of
  its child texts (the narrations inside the keystep, the keystep texts of the lecture).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LogitScale(nn.Module):
    """exp(log_scale) = 1 / temperature: a fixed buffer, or a learned parameter clamped as in CLIP."""

    def __init__(self, temperature: float, learn: bool = False, max_scale: float = 100.0) -> None:
        super().__init__()
        init = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        if learn:
            self.log_scale = nn.Parameter(init)
        else:
            self.register_buffer("log_scale", init)
        self.max_scale = float(max_scale)

    def forward(self) -> torch.Tensor:
        return self.log_scale.float().exp().clamp(max=self.max_scale)


def info_nce(video: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matched pairs (B, E) x (B, E): the mean of both directions."""
    if video.shape != text.shape or video.ndim != 2:
        shapes = f"{tuple(video.shape)} and {tuple(text.shape)}"
        raise ValueError(f"expected two (B, E) tensors of equal shape, got {shapes}")
    logits = logit_scale * (video.float() @ text.float().T)
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def mil_nce(
    video: torch.Tensor, texts: torch.Tensor, mask: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """Symmetric MIL-NCE: video (B, E), texts (B, K, E) with mask (B, K) of the valid texts (>= 1 per sample).

    video -> text:  -log sum_{k in P_i} e^{s v_i.t_ik} / sum_{j, k in P_j} e^{s v_i.t_jk}
    text -> video:  -log sum_{k in P_i} e^{s v_i.t_ik} / sum_{k in P_i} sum_j e^{s v_j.t_ik}
    """
    b, k, e = texts.shape
    if video.shape != (b, e) or mask.shape != (b, k):
        raise ValueError(f"shapes do not fit: video {tuple(video.shape)}, texts {tuple(texts.shape)}, "
                         f"mask {tuple(mask.shape)}")
    mask = mask.bool()
    if not bool(mask.any(1).all()):
        raise ValueError("every sample needs at least one valid text")
    # sim[i, j, k] = s * video_i . text_jk; invalid texts never count, as positives or negatives
    sim = logit_scale * torch.einsum("ie,jke->ijk", video.float(), texts.float())
    sim = sim.masked_fill(~mask.unsqueeze(0), float("-inf"))
    idx = torch.arange(b, device=sim.device)
    positive = torch.logsumexp(sim[idx, idx], dim=1)  # (B,)
    video_to_text = torch.logsumexp(sim.reshape(b, b * k), dim=1) - positive
    text_to_video = torch.logsumexp(sim.transpose(0, 1).reshape(b, b * k), dim=1) - positive
    return (video_to_text.mean() + text_to_video.mean()) / 2


def pad_bags(
    flat: torch.Tensor, counts: list[int], k: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (sum(counts), E) rows into a zero-padded (B, K, E) tensor and its (B, K) validity mask.

    K is the largest count unless given: a fixed K gives every DDP rank the same shape to all-gather.
    """
    width = max(counts) if k is None else int(k)
    if max(counts) > width:
        raise ValueError(f"a bag of {max(counts)} entries does not fit K = {width}")
    mask = torch.tensor([[i < c for i in range(width)] for c in counts], device=flat.device)
    padded = flat.new_zeros(len(counts), width, flat.shape[-1]).masked_scatter(mask.unsqueeze(-1), flat)
    return padded, mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of (B, K, E) using the (B, K) mask of valid entries."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def parent_child_loss(
    parent: torch.Tensor, children: torch.Tensor, mask: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """InfoNCE between parent texts (B, E) and the re-normalised mean of their children (B, K, E)."""
    if not bool(mask.bool().any(1).all()):
        raise ValueError("every parent needs at least one child text")
    child = F.normalize(masked_mean(children.float(), mask), dim=-1)
    return info_nce(parent, child, logit_scale)
