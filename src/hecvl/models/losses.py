"""Contrastive losses of hierarchical video-language pretraining.

All take L2-normalised embeddings and a logit scale (1 / temperature) and compute in float32, so they
are safe under bf16 autocast. The batch provides the negatives: sample i's text is the positive of
sample i's video and a negative of every other video, and vice versa.

Identical texts in a batch are positives of each other (docs/method.md §2). A batch of phase pairs
may hold the same keystep title twice ("Preparation" of two lectures), a clip batch the same stock
phrase twice; counting the twin as a negative would push video i away from a text that is, character
for character, its own. So every loss takes an optional positive set per sample, P(i) = {j : text_j ==
text_i}, and computes -log sum_{j in P(i)} e^{s_ij} / sum_k e^{s_ik} (MIL-NCE over the duplicates) in
both directions. Duplicates are kept, not merged: each copy stays a row and a column, so every sample
still contributes one term per direction. Texts are compared through `text_keys`, 64-bit digests that
are the same in every process (DDP ranks gather them beside the embeddings). When no text repeats, the
positive set is {i} and the losses run the plain code, bit for bit.

- `info_nce`: symmetric InfoNCE (CLIP; Oord et al. 2018), the loss of every level in HecVL.
- `mil_nce`: MIL-NCE (Miech et al., CVPR 2020) for a clip with several overlapping narrations, any of
  which may be the one that describes it: the positives of a sample are a set, summed in the
  numerator. Made symmetric like `info_nce` (video -> narrations and narrations -> video, averaged),
  so with one narration per clip it equals `info_nce` exactly.
- `parent_child_loss`: HecVL's alignment of a parent text (keystep title, abstract) with the mean of
  its child texts (the narrations inside the keystep, the keystep texts of the lecture).
- `text_keys`, `bag_keys`, `same_text`, `bag_positives`, `duplicate_texts`: which texts of a batch are
  identical, as tensors.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

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


def text_keys(texts: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
    """(N,) int64 keys of N texts, equal exactly when the texts are (up to a 2^-64 collision).

    blake2b digests of the UTF-8 text, not Python's `hash` (salted per process): every DDP rank computes
    the same key for the same text, so gathered keys compare across ranks. No normalisation: texts that
    differ only in case or spacing count as different (even where a tokeniser maps them alike).
    """
    return torch.tensor([_digest(t.encode("utf-8")) for t in texts], dtype=torch.int64, device=device)


def bag_keys(bags: Sequence[Sequence[str]], device: torch.device | str | None = None) -> torch.Tensor:
    """(N,) int64 keys of N bags of texts as multisets (order ignored, repeats counted): equal bags of
    child texts have equal mean embeddings."""
    def encode(bag: Sequence[str]) -> bytes:
        parts = sorted(t.encode("utf-8") for t in bag)
        return b"".join(len(p).to_bytes(8, "little") + p for p in parts)

    return torch.tensor([_digest(encode(b)) for b in bags], dtype=torch.int64, device=device)


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def same_text(keys: torch.Tensor) -> torch.Tensor:
    """(B, B) bool: True where sample i's and sample j's text keys are equal (the diagonal always)."""
    if keys.ndim != 1:
        raise ValueError(f"expected (B,) keys, got {tuple(keys.shape)}")
    return keys[:, None] == keys[None, :]


def bag_positives(keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, B, K) bool for bags of texts: [i, j, k] is True when text k of sample j is valid and equal to
    one of sample i's valid texts. [i, i, k] is sample i's own bag; the rest are duplicates across bags."""
    mask = mask.bool()
    if keys.shape != mask.shape or keys.ndim != 2:
        raise ValueError(f"keys {tuple(keys.shape)} and mask {tuple(mask.shape)} must both be (B, K)")
    # same[i, k', j, k]: text k' of sample i equals text k of sample j, both valid
    same = keys[:, :, None, None] == keys[None, None, :, :]
    same &= mask[:, :, None, None] & mask[None, None, :, :]
    return same.any(1)


def duplicate_texts(keys: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """How many texts of the batch repeat one of another sample (a float scalar, no gradient).

    One text per sample, keys (B,): B minus the number of distinct texts (two equal texts: 1). Bags,
    keys (B, K) with mask (B, K): the sum over samples of their distinct texts minus the distinct texts
    of the batch, so repeats inside one bag (already positives of each other) do not count.
    """
    if keys.ndim == 1:
        keys = keys[:, None]
    mask = torch.ones_like(keys, dtype=torch.bool) if mask is None else mask.bool()
    k = keys.shape[1]
    same = (keys[:, :, None] == keys[:, None, :]) & mask[:, :, None] & mask[:, None, :]  # (B, K, K)
    earlier = torch.ones(k, k, dtype=torch.bool, device=keys.device).tril(-1)  # [k, k'] with k' < k
    first = mask & ~(same & earlier).any(-1)  # each distinct text of a bag once
    return (first.sum() - torch.unique(keys[mask]).numel()).float()


def _checked_positive(positive: torch.Tensor, b: int) -> bool:
    """Validate a (B, B) positive matrix; True when it holds positives besides the diagonal."""
    if positive.shape != (b, b) or positive.dtype != torch.bool:
        raise ValueError(f"positive must be a ({b}, {b}) bool tensor, got {tuple(positive.shape)} "
                         f"{positive.dtype}")
    eye = torch.eye(b, dtype=torch.bool, device=positive.device)
    own, extra = torch.stack([positive[eye].all(), positive[~eye].any()]).tolist()
    if not own:
        raise ValueError("every sample must be a positive of itself (the diagonal of positive)")
    return bool(extra)


def _multi_positive_rows(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """mean_i -log sum_{j in P(i)} softmax(logits[i])_j, P(i) the True entries of positive[i]."""
    numerator = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
    return (torch.logsumexp(logits, dim=1) - numerator).mean()


def info_nce(
    video: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor | float,
    positive: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matched pairs (B, E) x (B, E): the mean of both directions.

    positive (B, B) bool, optional: [i, j] True when text j is also a positive of video i (identical
    texts, `same_text(text_keys(texts))`); the diagonal must be True. video -> text, row i:
    -log sum_{j: positive[i, j]} e^{s_ij} / sum_k e^{s_ik}; text -> video, column j: the same over
    {i: positive[i, j]}. Without off-diagonal positives this is plain InfoNCE, computed by the very
    same code as with positive=None.
    """
    if video.shape != text.shape or video.ndim != 2:
        shapes = f"{tuple(video.shape)} and {tuple(text.shape)}"
        raise ValueError(f"expected two (B, E) tensors of equal shape, got {shapes}")
    logits = logit_scale * (video.float() @ text.float().T)
    if positive is not None and _checked_positive(positive, len(logits)):
        return (_multi_positive_rows(logits, positive) + _multi_positive_rows(logits.T, positive.T)) / 2
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def mil_nce(
    video: torch.Tensor,
    texts: torch.Tensor,
    mask: torch.Tensor,
    logit_scale: torch.Tensor | float,
    keys: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric MIL-NCE: video (B, E), texts (B, K, E) with mask (B, K) of the valid texts (>= 1 per sample).

    video -> text:  -log sum_{k in P_i} e^{s v_i.t_ik} / sum_{j, k in P_j} e^{s v_i.t_jk}
    text -> video:  -log sum_{k in P_i} e^{s v_i.t_ik} / sum_{k in P_i} sum_j e^{s v_j.t_ik}

    keys (B, K) int64, optional (`text_keys` of the bag texts): duplicates across bags are positives.
    A text t_jk of another bag that is identical to a text of bag i joins video i's numerator
    (video -> text), and video i joins the numerator of t_jk (text -> video):
    positives[i, j, k] = `bag_positives(keys, mask)`. Denominators are unchanged. Without duplicates
    across bags this is the formula above, computed by the same code as with keys=None.
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
    if keys is not None:
        positives = bag_positives(keys, mask)
        others = ~torch.eye(b, dtype=torch.bool, device=sim.device).unsqueeze(-1)
        if bool((positives & others).any()):
            return _mil_nce_with_positives(sim, positives)
    idx = torch.arange(b, device=sim.device)
    positive = torch.logsumexp(sim[idx, idx], dim=1)  # (B,)
    video_to_text = torch.logsumexp(sim.reshape(b, b * k), dim=1) - positive
    text_to_video = torch.logsumexp(sim.transpose(0, 1).reshape(b, b * k), dim=1) - positive
    return (video_to_text.mean() + text_to_video.mean()) / 2


def _mil_nce_with_positives(sim: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """MIL-NCE of sim (B, B, K) [video i, bag j, text k] with positives (B, B, K) of the same layout."""
    b, _, k = sim.shape
    neg_inf = float("-inf")
    video_to_text = (torch.logsumexp(sim.reshape(b, b * k), dim=1)
                     - torch.logsumexp(sim.masked_fill(~positives, neg_inf).reshape(b, b * k), dim=1))
    # [bag i, video j, text k]: the texts of bag i against every video, video j a positive of t_ik
    # when t_ik is identical to a text of bag j (positives[j, i, k])
    sim_t, pos_t = sim.transpose(0, 1), positives.transpose(0, 1)
    text_to_video = (torch.logsumexp(sim_t.reshape(b, b * k), dim=1)
                     - torch.logsumexp(sim_t.masked_fill(~pos_t, neg_inf).reshape(b, b * k), dim=1))
    return (video_to_text.mean() + text_to_video.mean()) / 2


def pad_bags(
    flat: torch.Tensor, counts: list[int], k: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (sum(counts), E) rows into a zero-padded (B, K, E) tensor and its (B, K) validity mask.

    K is the largest count unless given: a fixed K gives every DDP rank the same shape to all-gather.
    (sum(counts),) values (the `text_keys` of bag texts) give (B, K).
    """
    if flat.ndim == 1:
        padded, mask = pad_bags(flat[:, None], counts, k)
        return padded[..., 0], mask
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
    parent: torch.Tensor,
    children: torch.Tensor,
    mask: torch.Tensor,
    logit_scale: torch.Tensor | float,
    positive: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE between parent texts (B, E) and the re-normalised mean of their children (B, K, E).

    positive (B, B) bool, optional, as in `info_nce`: pairs i and j are positives of each other when
    their parents are identical texts or their children identical multisets
    (`same_text(text_keys(parents)) | same_text(bag_keys(children))`).
    """
    if not bool(mask.bool().any(1).all()):
        raise ValueError("every parent needs at least one child text")
    child = F.normalize(masked_mean(children.float(), mask), dim=-1)
    return info_nce(parent, child, logit_scale, positive)
