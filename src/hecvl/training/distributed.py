"""Data-parallel training under `torchrun`: process group, deterministic sharding, gathered embeddings.

The same `hecvl pretrain` command runs single-process or under `torchrun --nproc_per_node N`; the
environment variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) decide which.
NCCL on CUDA, Gloo on CPU.

Batch sizes in params.yaml are global. A global batch that does not split evenly over the processes
trains as the largest multiple of the world size below it, `world * int(global / world)` (the rule of
the authors' code: their 4-GPU video batch of 25 trained as 24; `effective_batch`), with a log line;
fewer samples than processes is an error naming the setting. Every rank draws the same global batch
(same seed), keeps its contiguous slice of `int(global / world)` samples, and the embeddings are
all-gathered (with gradients) before the contrastive loss, so the loss and, after DDP's gradient
averaging, the gradient equal those of one process seeing the whole global batch. BatchNorm layers
would still normalise each rank's slice with its own statistics, so they are synchronised too: torch's
SyncBatchNorm on CUDA, and on CPU (where SyncBatchNorm refuses to run) `GlobalBatchNorm2d`, which
all-reduces the per-channel sums. What remains different is floating-point summation order.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from hecvl.errors import HecvlError

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job: rank, world size and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Only the main rank logs, tracks and writes checkpoints and weights."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto`: CUDA when available (the local rank's GPU), else CPU; `cpu` / `cuda` / `cuda:N` as given."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise HecvlError(f"train.device is {preference!r} but CUDA is not available")
        if preference == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
    elif preference != "cpu":
        raise HecvlError(f"train.device must be auto, cpu, cuda or cuda:N, got {preference!r}")
    return torch.device(preference)


def init_distributed(device_preference: str = "auto") -> DistEnv:
    """Join the torchrun job if there is one (WORLD_SIZE > 1), else describe a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(minutes=30),
            device_id=device if device.type == "cuda" else None,
        )
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=device)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def per_rank_batch(global_batch: int, world_size: int, what: str = "batch") -> int:
    """Samples each process holds of a global batch: `int(global_batch / world_size)` (the floor rule of
    `effective_batch`; a remainder is left out, with a log line). Fewer than 1 is an error naming `what`."""
    return effective_batch(global_batch, world_size, what) // world_size


def effective_batch(global_batch: int, world_size: int, what: str = "batch") -> int:
    """The global batch that trains over `world_size` processes: `world_size * int(global / world_size)`.

    One rule, the authors' (CAMMA-public/PeskaVLP, train_hierarchy_ssl.py divides the global batch by the
    GPU count with `int()`): the paper's video batch of 25 over 4 GPUs trains as 24, every process holding
    the same number of samples (DDP's gradient averaging and the all-gathered contrastive loss assume
    that). When it differs from `global_batch` one line is logged (once per process); `what` names the
    setting (`train.batch_size.video`) in that line and in the error when not every process gets a sample.
    """
    if world_size < 1:
        raise HecvlError(f"{what}: the world size must be at least 1, got {world_size}")
    per = int(global_batch) // int(world_size)
    if per < 1:
        raise HecvlError(
            f"{what} is {global_batch}: fewer samples than the {world_size} processes that split it; "
            f"set it to at least {world_size}"
        )
    if per * world_size != global_batch:
        _note_floor(int(global_batch), int(world_size), what)
    return per * world_size


@functools.cache
def _note_floor(global_batch: int, world_size: int, what: str) -> None:
    per = global_batch // world_size
    log.info("%s %d trains as %d over %d processes (%d each; the authors' int(batch / GPUs) rule)",
             what, global_batch, world_size * per, world_size, per)


def shard(items: list, rank: int, world_size: int) -> list:
    """This rank's contiguous slice of a global batch, `per_rank_batch` items (concatenating the slices
    gives the batch back when its size is a multiple of the world size, as `effective_batch` makes it)."""
    per = per_rank_batch(len(items), world_size)
    return items[rank * per : (rank + 1) * per]


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums each slice's gradient over ranks and returns this rank's slice.

    Written with all_reduce (not reduce_scatter/all_to_all) because every backend, Gloo included, has it.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world = dist.get_world_size()
        ctx.rank, ctx.n = dist.get_rank(), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """The global batch from every rank's slice, in rank order, differentiable; identity on one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Each gradient replaced by its mean over ranks (one all-reduce): what DDP's reducer does, for a
    step whose backward ran outside DDP's forward (the chunked step). Parameters without a gradient
    keep none (every rank trains the same levels, so the same ones have one). No-op on one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat.div_(dist.get_world_size())
    for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(part.view_as(g))


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: object, src: int = 0) -> object:
    """The main rank's value on every rank (e.g. the resume step it found on disk)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]



class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of every rank's input is the sum of the output gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = tensor.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span all ranks (a SyncBatchNorm that also runs on CPU/Gloo).

    Two passes (global mean, then the global sum of squared deviations), differentiable through the
    all-reduce, so normalisation, gradients and running statistics equal those of one process holding
    the whole batch. Outside a multi-process job, or in eval mode, it is a plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        synced = self.training and dist.is_available() and dist.is_initialized()
        if not synced or dist.get_world_size() == 1:
            return super().forward(x)
        dims = (0, 2, 3)
        count = _AllReduceSum.apply(torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device))
        mean = _AllReduceSum.apply(x.sum(dims)) / count
        centred = x - mean.view(1, -1, 1, 1)
        var = _AllReduceSum.apply(centred.pow(2).sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                n = float(count)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1.0, 1.0)), alpha=m)
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm2d by its cross-rank version (SyncBatchNorm on CUDA, GlobalBatchNorm2d
    elsewhere), keeping parameters, buffers and state-dict keys."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats,
                device=child.weight.device if child.affine else None,
            )
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new)
        else:
            sync_batchnorm(child, device)
    return module
