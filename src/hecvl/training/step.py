"""One training step's losses, computed on the GLOBAL batch even when the batch is split over ranks.

`HecVLModel.forward` computes a level's losses from one process's samples. Under DDP each rank holds
only `global / world` samples, and a contrastive loss over that slice would see fewer negatives than
the single-process run. So this module embeds the local slice with the model's own `embed_video` /
`embed_text`, all-gathers the embeddings (with gradients, `distributed.gather`), and then applies the
model's loss functions (`hecvl.models.losses`) to the whole batch: the same terms as
`HecVLModel.forward` (`<level>/video_text`, `<level>/parent_child`, `<level>/total`), the same numbers
on one process. It is an `nn.Module` whose `forward` is the DDP entry point, so DDP's
unused-parameter detection and gradient hooks see every level trained in the step.

Parent-child term: each parent text is aligned with the re-normalised mean of its children's text
embeddings (`parent_child_loss`); the mean is taken on the rank that holds the sample, so ranks never
exchange ragged child lists. Parents without any child (a keystep with no narration inside) take no
part in that term; it is skipped when fewer than two parents in the global batch have children.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hecvl.models.losses import info_nce, parent_child_loss
from hecvl.training.distributed import gather


class ContrastiveStep(nn.Module):
    """Wraps the model; `forward({level: batch})` returns every loss term and the weighted `total`."""

    def __init__(self, model: nn.Module, level_weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.model = model
        self.level_weights = dict(level_weights or {})

    def forward(self, batches: Mapping[str, Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        total = None
        for level, batch in batches.items():
            terms = self.level_terms(level, batch["frames"], batch["text"], batch.get("child_texts"))
            out.update(terms)
            weighted = self.level_weights.get(level, 1.0) * terms[f"{level}/total"]
            total = weighted if total is None else total + weighted
        assert total is not None, "a step trains at least one level"
        out["total"] = total
        return out

    def level_terms(
        self,
        level: str,
        frames: torch.Tensor,
        texts: Sequence[str],
        child_texts: Sequence[Sequence[str]] | None = None,
    ) -> dict[str, torch.Tensor]:
        model = self.model
        weight = float(model.config.loss.parent_child_weight)
        use_children = child_texts is not None and level != "clip" and weight > 0
        counts = [len(c) for c in child_texts] if use_children else []
        flat = list(texts) + [t for c in (child_texts or []) for t in c] if use_children else list(texts)
        scale = model.logit_scale()
        video = gather(model.embed_video(frames, level))
        text_all = model.embed_text(flat, level)  # one pass (and one cache lookup) for parents and children
        n = len(texts)
        parent = gather(text_all[:n])
        out = {f"{level}/video_text": info_nce(video, parent, scale)}
        total = out[f"{level}/video_text"]
        if use_children:
            child_mean, has = _child_means(text_all[n:], counts, text_all)
            child_mean, has = gather(child_mean), gather(has)
            keep = has.bool()
            if int(keep.sum()) >= 2:
                ones = torch.ones(int(keep.sum()), 1, dtype=torch.bool, device=parent.device)
                term = parent_child_loss(parent[keep], child_mean[keep].unsqueeze(1), ones, scale)
                out[f"{level}/parent_child"] = term
                total = total + weight * term
        out[f"{level}/total"] = total
        return out


def _child_means(
    children: torch.Tensor, counts: list[int], like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean of the child embeddings (zeros where there is none) and a has-children flag."""
    zero = like.new_zeros(like.shape[-1])
    means = torch.stack([part.mean(0) if len(part) else zero for part in torch.split(children, counts)])
    has = torch.tensor([c > 0 for c in counts], dtype=torch.float32, device=like.device)
    return means, has
