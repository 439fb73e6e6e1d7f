"""Identical texts of the GLOBAL batch are positives of each other in `ContrastiveStep`, also under DDP.

A tiny stand-in model (linear heads over fixed per-text features) keeps this about the step: which
texts it compares, what it gathers, what it reports. Under 2-process Gloo the twins sit on different
ranks, and the loss, the statistics and the gradient must still be the single process's.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from hecvl.models.losses import (
    LogitScale,
    bag_keys,
    info_nce,
    mil_nce,
    pad_bags,
    parent_child_loss,
    same_text,
    text_keys,
)
from hecvl.training.distributed import shard
from hecvl.training.step import STATISTICS, ContrastiveStep

FEATURES = 6


class TinyModel(nn.Module):
    """What `ContrastiveStep` uses of `HecVLModel`: embed_video, embed_text, logit_scale, config.loss."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.video_head = nn.Linear(FEATURES, 4)
        self.text_head = nn.Linear(FEATURES, 4)
        self.logit_scale = LogitScale(0.1, learn=True)
        self.config = SimpleNamespace(loss=SimpleNamespace(parent_child_weight=0.5))

    def embed_video(self, frames: torch.Tensor, level: str) -> torch.Tensor:
        return F.normalize(self.video_head(frames), dim=-1)

    def embed_text(self, texts: list[str], level: str) -> torch.Tensor:
        feats = torch.stack([_feature(t) for t in texts]) if texts else torch.zeros(0, FEATURES)
        return F.normalize(self.text_head(feats), dim=-1)


def _feature(text: str) -> torch.Tensor:
    """A fixed random feature per text: identical texts, identical features."""
    seed = int(text_keys([text])[0]) % (2**31)
    return torch.randn(FEATURES, generator=torch.Generator().manual_seed(seed))


# a global batch of 4 per level; rank 0 holds samples 0-1, rank 1 samples 2-3: every twin is split
FRAMES = torch.randn(4, FEATURES, generator=torch.Generator().manual_seed(1))
CLIP = ["we open the peritoneum", "So let's go on.", "the clip applier fires", "So let's go on."]
PHASE = ["Preparation", "Dissection", "Clipping", "Preparation"]
CHILDREN = [["we start"], ["the hook", "we dissect"], ["we dissect", "the hook"], []]  # 1, 2: equal
BAGS = [["the hook", "as you can see"], ["we clip"], ["as you can see", "we cut"], ["we cut it"]]
MAX_TEXTS = 3


def _batches(rank: int = 0, world: int = 1) -> dict[str, dict]:
    part = lambda items: shard(list(items), rank, world)  # noqa: E731
    frames = torch.cat(part(FRAMES.split(1)))
    return {"clip": {"frames": frames, "text": part(CLIP)},
            "phase": {"frames": frames, "text": part(PHASE), "child_texts": part(CHILDREN)},
            "video": {"frames": frames, "text": part(CLIP), "texts": part(BAGS)}}  # "video": MIL-NCE bags


def _run(rank: int = 0, world: int = 1) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    model = TinyModel()
    step = ContrastiveStep(model, max_texts=MAX_TEXTS)
    terms = step(_batches(rank, world))
    terms["total"].backward()
    grads = {}
    for name, p in model.named_parameters():
        g = p.grad.clone()
        if world > 1:  # DDP averages parameter gradients over ranks; do the same by hand
            dist.all_reduce(g)
            g /= world
        grads[name] = g
    return {k: float(v.detach()) for k, v in terms.items()}, grads


def test_the_step_makes_identical_texts_positives_and_reports_them() -> None:
    model = TinyModel()
    step = ContrastiveStep(model, max_texts=MAX_TEXTS)
    batches = _batches()
    with torch.no_grad():
        terms = step(batches)
        scale = model.logit_scale()
        video = model.embed_video(FRAMES, "clip")
        clip = model.embed_text(CLIP, "clip")
        expected = info_nce(video, clip, scale, same_text(text_keys(CLIP)))
        torch.testing.assert_close(terms["clip/video_text"], expected)
        assert not torch.isclose(expected, info_nce(video, clip, scale))  # the rule is in play
        # parent-child over the three phases with children: identical parents or identical children
        parents = model.embed_text(PHASE[:3], "phase")
        means = torch.stack([model.embed_text(c, "phase").mean(0) for c in CHILDREN[:3]])
        pairs = same_text(text_keys(PHASE[:3])) | same_text(bag_keys(CHILDREN[:3]))
        assert pairs[1, 2] and pairs[2, 1] and pairs.sum() == 5
        one = torch.ones(3, 1, dtype=torch.bool)
        torch.testing.assert_close(terms["phase/parent_child"],
                                   parent_child_loss(parents, means[:, None], one, scale, pairs))
        flat = model.embed_text([t for b in BAGS for t in b], "video")
        counts = [len(b) for b in BAGS]
        padded, mask = pad_bags(flat, counts, MAX_TEXTS)
        keys = pad_bags(text_keys([t for b in BAGS for t in b]), counts, MAX_TEXTS)[0]
        torch.testing.assert_close(terms["video/video_text"], mil_nce(video, padded, mask, scale, keys))
    assert {k: terms[k].item() for k in terms if k.endswith("/duplicate_texts")} == {
        "clip/duplicate_texts": 1.0, "phase/duplicate_texts": 1.0, "video/duplicate_texts": 1.0}
    assert "duplicate_texts" in STATISTICS
    from hecvl.training.trainer import _metrics  # here: the DDP workers need not import the trainer

    row = {k: float(v) for k, v in terms.items() if k != "total"}
    metrics = _metrics({**row, "loss": 1.0, "lr": 0.1, "grad_norm": 1.0}, 1.0, 1.0)
    assert metrics["batch/clip/duplicate_texts"] == 1.0 and "loss/clip/duplicate_texts" not in metrics
    # a batch without repeats: 0 and exactly the plain InfoNCE
    distinct = ["a", "b", "c", "d"]
    with torch.no_grad():
        plain = step.level_terms("clip", FRAMES, distinct)
        assert plain["clip/duplicate_texts"].item() == 0.0
        reference = info_nce(video, model.embed_text(distinct, "clip"), scale)
        assert torch.equal(plain["clip/video_text"], reference)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        terms, grads = _run(rank, 2)
        torch.save({"terms": terms, "grads": grads}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two spawned Gloo processes: about 10 s on 2 shared cores
@pytest.mark.skipif(not dist.is_gloo_available(), reason="torch built without Gloo")
def test_duplicates_split_across_ranks_are_still_positives(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    terms, grads = _run()
    assert terms["clip/duplicate_texts"] == 1.0 and terms["phase/duplicate_texts"] == 1.0
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["terms"].keys() == terms.keys()
        for name, value in terms.items():  # losses and statistics of the global batch
            assert got["terms"][name] == pytest.approx(value, rel=1e-6, abs=1e-7), name
        for name, g in grads.items():
            torch.testing.assert_close(got["grads"][name], g, rtol=1e-5, atol=1e-6)
