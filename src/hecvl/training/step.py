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

MIL-NCE (`train.mil_nce`): when a clip batch carries `texts` (each sample's bag of positive
narrations, `hecvl.pairing.positives`), the video-text term is `mil_nce` instead of `info_nce`, under
the same name `clip/video_text`. All bag texts go through the text encoder in one pass, each bag is
zero-padded to a FIXED K = `max_texts` (every rank then all-gathers the same (B_local, K, E) shape
and its (B_local, K) mask, whatever its own bags' sizes), and padding never counts (masked out of
numerators and denominators). `clip/positives` reports the global batch's mean bag size: a statistic,
not a loss (see `STATISTICS`), never part of `total`.

Chunked step (`train.chunk`, `ContrastiveStep.chunked_backward`): the same terms and, up to rounding,
the same gradients in the memory of `chunk` frames, by the gradient cache of Gao et al. 2021. The cache
sits at the backbone features (per frame, before the mean over T and the heads), so a chunk may split a
sample's frames and one setting fits every level. A trainable text encoder is chunked the same way
(`chunk` texts per pass: the paper's BERT over a phase batch's parent and child texts is no small
graph); a frozen one runs once, as unchunked. BatchNorm sees one chunk's statistics (see docs/method.md).

Duplicate texts (docs/method.md §2, `hecvl.models.losses`): identical texts of the GLOBAL batch are
positives of each other, in both directions and at every level. Each rank computes the `text_keys` of
its own texts and all-gathers them beside the embeddings, so twins held by different ranks still find
each other. InfoNCE: the positives of pair i are the pairs with the same text. Parent-child: pairs whose
parent texts are identical, or whose children are the same multiset of texts (`bag_keys`, hence equal
child means). MIL-NCE: a text of another clip's bag that is identical to one of clip i's bag texts is a
positive of clip i, and clip i of it. `<level>/duplicate_texts` (a statistic) counts the global batch's
texts that repeat another sample's (B minus the distinct texts; for bags, the texts shared between
bags); where it is 0 the losses are exactly those without the rule.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from hecvl.models.losses import (
    bag_keys,
    duplicate_texts,
    info_nce,
    mil_nce,
    pad_bags,
    parent_child_loss,
    same_text,
    text_keys,
)
from hecvl.training.distributed import gather

# terms of the step's output that describe the batch rather than measure a loss (logged apart)
STATISTICS = ("positives", "duplicate_texts")


class ContrastiveStep(nn.Module):
    """Wraps the model; `forward({level: batch})` returns every loss term and the weighted `total`.

    `max_texts`: the fixed bag width K for MIL-NCE batches (required under DDP, where ranks must
    all-gather equal shapes; None pads to the batch's largest bag, fine in one process).
    """

    def __init__(
        self, model: nn.Module, level_weights: Mapping[str, float] | None = None, max_texts: int | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.level_weights = dict(level_weights or {})
        self.max_texts = max_texts
        self._cache: _GradCache | None = None  # set during `chunked_backward` only

    def forward(self, batches: Mapping[str, Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        total = None
        for level, batch in batches.items():
            terms = self.level_terms(
                level, batch["frames"], batch["text"], batch.get("child_texts"), bags=batch.get("texts")
            )
            out.update(terms)
            weighted = self.level_weights.get(level, 1.0) * terms[f"{level}/total"]
            total = weighted if total is None else total + weighted
        assert total is not None, "a step trains at least one level"
        out["total"] = total
        return out

    def chunked_backward(
        self,
        batches: Mapping[str, Mapping[str, Any]],
        chunk: int,
        divide: int = 1,
        cast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        verify: bool = False,
    ) -> dict[str, torch.Tensor]:
        """`forward(batches)["total"] / divide`, backpropagated in the memory of `chunk` frames.

        The gradient cache (Gao et al. 2021; `train.chunk`): pass 1 runs the visual backbone (and a
        trainable text encoder) over the batch `chunk` frames (texts) at a time without a graph and
        keeps the features as leaf tensors; the losses of the whole (all-gathered) batch are computed
        from them and backpropagated down to the leaves; pass 2 re-runs each chunk with a graph, the
        RNG state of its first pass replayed, and backpropagates the leaves' gradient slice. The
        parameter gradients are the one-pass step's (up to float rounding) when the encoders are
        deterministic given the RNG and BatchNorm is in eval mode; in train mode BatchNorm normalises
        each chunk with its own statistics and its running statistics are updated once per chunk (pass
        1's updates are undone). Runs outside DDP's forward: under DDP call
        `distributed.average_gradients` after it. `cast()`: the autocast context of the forward parts.
        `verify`: refuse a pass 2 whose features differ from pass 1's in any bit (tests).
        Returns the detached terms.
        """
        self._cache = _GradCache(self.model, chunk, cast, verify)
        try:
            with cast():
                terms = self.forward(batches)
                loss = terms["total"] / divide
            loss.backward()
            self._cache.replay()
        finally:
            self._cache = None
        return {name: value.detach() for name, value in terms.items()}

    def _embed_video(self, frames: torch.Tensor, level: str) -> torch.Tensor:
        """`model.embed_video`, or in a chunked step the same from pass 1's cached backbone features."""
        if self._cache is None:
            return self.model.embed_video(frames, level)
        if frames.ndim == 4:
            frames = frames.unsqueeze(1)
        b, t = frames.shape[:2]
        feats = self._cache.encode(self.model.visual, frames.flatten(0, 1)).view(b, t, -1).mean(1)
        return F.normalize(self.model.video_heads[self.model._head_name(level)](feats), dim=-1)

    def _embed_text(self, texts: Sequence[str], level: str) -> torch.Tensor:
        """`model.embed_text`; in a chunked step a trainable text encoder goes through the cache too
        (a frozen one has no activations to keep: one pass, as unchunked)."""
        if self._cache is None or not any(p.requires_grad for p in self.model.text.parameters()):
            return self.model.embed_text(texts, level)
        feats = self._cache.encode(self.model.encode_text, list(texts))
        return F.normalize(self.model.text_heads[self.model._head_name(level)](feats), dim=-1)

    def level_terms(
        self,
        level: str,
        frames: torch.Tensor,
        texts: Sequence[str],
        child_texts: Sequence[Sequence[str]] | None = None,
        bags: Sequence[Sequence[str]] | None = None,
    ) -> dict[str, torch.Tensor]:
        """One level's terms on the global batch. `bags` (clip level): each sample's positive texts,
        own text first, for MIL-NCE; without them InfoNCE on `texts`."""
        if bags is not None:
            return self._bag_terms(level, frames, bags)
        model = self.model
        weight = float(model.config.loss.parent_child_weight)
        use_children = child_texts is not None and level != "clip" and weight > 0
        counts = [len(c) for c in child_texts] if use_children else []
        flat = list(texts) + [t for c in (child_texts or []) for t in c] if use_children else list(texts)
        scale = model.logit_scale()
        video = gather(self._embed_video(frames, level))
        text_all = self._embed_text(flat, level)  # one pass (and one cache lookup) for parents and children
        n = len(texts)
        parent = gather(text_all[:n])
        keys = gather(text_keys(texts, device=video.device))  # the global batch's texts, comparable
        positive = same_text(keys)
        out = {f"{level}/video_text": info_nce(video, parent, scale, positive)}
        total = out[f"{level}/video_text"]
        if use_children:
            child_mean, has = _child_means(text_all[n:], counts, text_all)
            child_mean, has = gather(child_mean), gather(has)
            child_keys = gather(bag_keys(child_texts, device=video.device))
            keep = has.bool()
            if int(keep.sum()) >= 2:
                ones = torch.ones(int(keep.sum()), 1, dtype=torch.bool, device=parent.device)
                pairs = (positive | same_text(child_keys))[keep][:, keep]
                term = parent_child_loss(parent[keep], child_mean[keep].unsqueeze(1), ones, scale, pairs)
                out[f"{level}/parent_child"] = term
                total = total + weight * term
        out[f"{level}/duplicate_texts"] = duplicate_texts(keys)
        out[f"{level}/total"] = total
        return out

    def _bag_terms(
        self, level: str, frames: torch.Tensor, bags: Sequence[Sequence[str]]
    ) -> dict[str, torch.Tensor]:
        if len(bags) != len(frames) or not all(len(b) for b in bags):
            raise ValueError(f"{len(frames)} videos need as many non-empty text bags, got {len(bags)}")
        model = self.model
        counts = [len(b) for b in bags]
        if self.max_texts is not None and max(counts) > self.max_texts:
            raise ValueError(f"a bag of {max(counts)} texts exceeds max_texts {self.max_texts}")
        scale = model.logit_scale()
        video = gather(self._embed_video(frames, level))
        every = [t for b in bags for t in b]
        flat = self._embed_text(every, level)  # one text-encoder pass
        padded, mask = pad_bags(flat, counts, self.max_texts)
        texts, valid = gather(padded), gather(mask.float()).bool()  # a float mask: every backend gathers it
        keys = pad_bags(text_keys(every, device=video.device), counts, self.max_texts)[0]
        keys = gather(keys)  # (B, K) keys of the bag texts, 0 where padded (masked out)
        term = mil_nce(video, texts, valid, scale, keys)
        positives = valid.sum(1).float().mean().detach()
        return {f"{level}/video_text": term, f"{level}/positives": positives,
                f"{level}/duplicate_texts": duplicate_texts(keys, valid), f"{level}/total": term}


def _child_means(
    children: torch.Tensor, counts: list[int], like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mean of the child embeddings (zeros where there is none) and a has-children flag."""
    zero = like.new_zeros(like.shape[-1])
    means = torch.stack([part.mean(0) if len(part) else zero for part in torch.split(children, counts)])
    has = torch.tensor([c > 0 for c in counts], dtype=torch.float32, device=like.device)
    return means, has


class _GradCache:
    """The two passes of a chunked step: `encode` is pass 1 (features of every chunk, no graph, as one
    leaf tensor), `replay` pass 2 (each chunk again with a graph, its slice of the leaf's gradient
    backpropagated). RNG states are saved per chunk so dropout and any random op draw the same in both
    passes; the global RNG ends as after pass 1. BatchNorm running statistics are restored before pass
    2, so each chunk updates them once."""

    def __init__(self, model: nn.Module, chunk: int, cast: Callable[[], Any], verify: bool) -> None:
        if chunk < 1:
            raise ValueError(f"train.chunk must be a positive number of frames, got {chunk}")
        self.chunk, self.cast, self.verify = int(chunk), cast, verify
        self.device = next(model.parameters()).device
        # per encoded input: the encoder, the leaf of its features, (first row, rows, RNG state) per chunk
        self.entries: list[tuple[Callable[[Any], torch.Tensor], torch.Tensor, list[tuple[int, Any, Any]]]]
        self.entries = []
        self.norm_state = [(m, {k: v.clone() for k, v in m.named_buffers(recurse=False)})
                           for m in model.modules() if isinstance(m, _BatchNorm) and m.training]

    def encode(self, fn: Callable[[Any], torch.Tensor], inputs: torch.Tensor | list[str]) -> torch.Tensor:
        """fn(inputs) computed `chunk` rows at a time without a graph, as a leaf that requires grad."""
        pieces, outs = [], []
        for start in range(0, len(inputs), self.chunk):
            piece = inputs[start : start + self.chunk]
            state = _rng_state(self.device)
            with torch.no_grad(), self.cast():
                outs.append(fn(piece))
            pieces.append((start, piece, state))
        leaf = torch.cat(outs).requires_grad_(True)
        self.entries.append((fn, leaf, pieces))
        return leaf

    def replay(self) -> None:
        """Pass 2: every chunk re-run with a graph and its gradient slice backpropagated."""
        for module, buffers in self.norm_state:  # pass 1 must not count in the running statistics
            for name, value in buffers.items():
                getattr(module, name).copy_(value)
        for fn, leaf, pieces in self.entries:
            if leaf.grad is None:
                continue
            for start, piece, state in pieces:
                with _replayed_rng(self.device, state), self.cast():
                    out = fn(piece)
                stop = start + len(piece)
                if self.verify and not torch.equal(out.detach(), leaf.detach()[start:stop]):
                    raise RuntimeError(f"chunk {start}:{stop}: pass 2 differs from pass 1 (a random op "
                                       "not replayed, or a non-deterministic kernel)")
                out.backward(leaf.grad[start:stop])


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


@contextlib.contextmanager
def _replayed_rng(device: torch.device, state: tuple[torch.Tensor, torch.Tensor | None]) -> Iterator[None]:
    """The RNG as it was at `state` inside the block; the global RNG as before the block afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield
