"""Gathered embeddings under 2-process Gloo give the single-process loss and gradient."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from hecvl.errors import HecvlError
from hecvl.training.distributed import effective_batch, gather, per_rank_batch, resolve_device, shard


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _contrastive(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    z = F.normalize(x @ w, dim=-1)
    logits = z @ z.roll(1, 0).T / 0.1
    return F.cross_entropy(logits, torch.arange(len(z)))


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        x, w = torch.randn(8, 5), torch.randn(5, 3)
        w = w.clone().requires_grad_(True)
        local = torch.tensor_split(x, 2)[rank]
        loss = _contrastive(gather(local), w)
        loss.backward()
        # DDP averages parameter gradients over ranks; do the same by hand here
        g = w.grad.clone()
        dist.all_reduce(g)
        torch.save({"loss": loss.detach(), "grad": g / 2}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gather_with_grad_matches_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    x, w = torch.randn(8, 5), torch.randn(5, 3)
    w.requires_grad_(True)
    loss = _contrastive(x, w)
    loss.backward()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got["grad"], w.grad, rtol=1e-5, atol=1e-6)


def test_sharding_and_device_rules() -> None:
    items = list(range(12))
    parts = [shard(items, r, 3) for r in range(3)]
    assert [i for p in parts for i in p] == items and parts[1] == [4, 5, 6, 7]
    assert per_rank_batch(12, 4) == 3
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(HecvlError, match=r"train\.device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(HecvlError, match="CUDA is not available"):
            resolve_device("cuda")


def test_uneven_global_batches_follow_the_authors_floor_rule(caplog: pytest.LogCaptureFixture) -> None:
    """The paper's video batch of 25 over 4 GPUs trains as 24 (6 per GPU), as the authors' code did."""
    with caplog.at_level(logging.INFO, logger="hecvl.training.distributed"):
        assert effective_batch(25, 4, "train.batch_size.video") == 24
        assert per_rank_batch(25, 4, "train.batch_size.video") == 6
    notes = [r.getMessage() for r in caplog.records]
    assert notes == ["train.batch_size.video 25 trains as 24 over 4 processes (6 each; the authors' "
                     "int(batch / GPUs) rule)"]  # once per process, however often it is asked
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hecvl.training.distributed"):
        assert effective_batch(120, 4, "train.batch_size.clip") == 120  # even: as configured, no line
        assert effective_batch(25, 1, "train.batch_size.video") == 25
        assert effective_batch(80, 3, "train.batch_size.phase") == 78
    assert [r.getMessage().split(" trains")[0] for r in caplog.records] == ["train.batch_size.phase 80"]
    # the effective batch splits back whole; a longer list leaves its tail out
    batch = list(range(effective_batch(25, 4, "train.batch_size.video")))
    assert [i for r in range(4) for i in shard(batch, r, 4)] == batch
    assert [i for r in range(4) for i in shard(list(range(25)), r, 4)] == batch
    message = r"^train\.batch_size\.video is 3: fewer samples than the 4 processes that split it; set it to"
    with pytest.raises(HecvlError, match=message + r" at least 4$"):
        per_rank_batch(3, 4, "train.batch_size.video")
