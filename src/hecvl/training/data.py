"""The training batches of each level as a pure function of (seed, level, batch number).

Batch k of a level is batch `k % per_epoch` of epoch `k // per_epoch`, where an epoch is a
permutation of the level's pairs drawn from `numpy.random.default_rng([seed, level, epoch])`; the
incomplete last batch of an epoch is dropped (a contrastive batch keeps its size). Every sample's own
random draws (clip position, frames, crop) come from `PairDataset`'s (seed, epoch, index) generator.
Hence the data position of a run is just "how many batches of each level so far", which the schedule
computes from the step, and a resumed run reads exactly the batches the uninterrupted run read.

Under DDP every rank computes the same global batch of keys and loads its contiguous slice.

One loader per run (`make_loader`): its batch sampler (`ScheduleBatches`) walks the step schedule
(per step, per micro-batch, per level of the step) and yields (level, epoch, index) keys, so every
worker serves every level in the order the steps consume them, and the next level's batches are
prefetched while the current one trains. Frames cross the worker boundary as uint8 (a quarter of
float32's bytes) and are normalised on the training device (`normalise`), by the same float
operations, in the same order, as `PairDataset` would in the worker: on CPU the values are identical.

Frame cache (`train.frame_cache`): decoding a few frames at random times of many videos costs far
more than the CPU default's forward and backward pass (about 30 ms per frame against 3 ms). With the
cache on, every lecture video is decoded once, at the training decode size, into `FrameCache`
entries (memory-mapped .npy, shared by every run, variant and seed of the study), and samples are
read from them. At the video's own frame rate (`frame_cache_fps: 0`) the frames are exactly those
the decoder would return for the same times (same time -> frame rule, same backend and resize);
a lower rate saves space for long real videos at the price of rounding times to its grid.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hecvl.config import Params, coerce_params
from hecvl.errors import HecvlError
from hecvl.pairing.datasets import PairCollate, PairDataset, worker_init_fn
from hecvl.pairing.positives import PositiveRule
from hecvl.training.distributed import DistEnv, barrier, per_rank_batch, shard
from hecvl.training.schedules import LEVELS, Schedule
from hecvl.video import FrameCache, VideoInfo, frame_indices, probe, sample_times

log = logging.getLogger(__name__)


class CachedReader:
    """The reader interface PairDataset uses (`info`, `frames_at`, `close`) over a cached frame array."""

    def __init__(self, frames: np.ndarray, info: VideoInfo, fps: float) -> None:
        self.frames, self.info, self.fps = frames, info, fps

    def frames_at(self, times_s: Any, transform: Any = None) -> np.ndarray:
        idx = frame_indices(times_s, self.info)  # the decoder's time -> frame rule
        rows = np.rint(idx * (self.fps / self.info.fps)).astype(np.int64)
        return np.asarray(self.frames[np.minimum(rows, len(self.frames) - 1)])

    def close(self) -> None:
        return None


class CachedPairDataset(PairDataset):
    """A PairDataset that reads its frames from FrameCache entries instead of decoding each sample."""

    def attach_cache(
        self, cache: FrameCache, fps: float = 0.0, max_gb: float = 8.0, progress: bool = False
    ) -> int:
        """Build (or find) the cache entry of every video of this level; returns the number of frames.

        Refuses (before decoding anything) when the entries would exceed `max_gb`: a real corpus at
        its native rate and the paper's 360x640 would fill the disk.
        """
        self._entries: dict[str, tuple[str, VideoInfo, float]] = {}
        self._maps: dict[str, np.ndarray] = {}
        videos = sorted({row["video"] for row in self.rows})
        infos = {video: probe(self.corpus_root / video) for video in videos}
        size = 0
        for info in infos.values():
            h, w = self.transform.size or (info.height, info.width)
            size += len(sample_times(info, fps or info.fps)) * h * w * 3
        if size > max_gb * 2**30:
            raise HecvlError(
                f"the training frame cache of the {self.level} pairs would take {size / 2**30:.1f} GB "
                f"(> train.frame_cache_max_gb {max_gb:g}): lower train.frame_cache_fps, or set "
                "train.frame_cache: false (and train.num_workers > 0)"
            )
        total = 0
        for video in videos:
            path, info = self.corpus_root / video, infos[video]
            rate = fps or info.fps
            arr = cache.get(path, self.transform, fps=rate, progress=progress)
            self._entries[video] = (str(cache.entry_paths(path, self.transform, rate)[0]), info, rate)
            total += len(arr)
        return total

    def reader(self, row: Mapping[str, Any]) -> Any:
        entry = getattr(self, "_entries", {}).get(row["video"])
        if entry is None:
            return super().reader(row)
        path, info, rate = entry
        frames = self._maps.get(path)
        if frames is None:  # opened lazily in each process (a worker never inherits a parent's map)
            frames = self._maps[path] = np.load(path, mmap_mode="r")
        return CachedReader(frames, info, rate)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_maps"] = {}
        return state


@dataclass(frozen=True)
class LevelData:
    """One level's dataset and its batching: global batch size and full batches per epoch."""

    level: str
    dataset: PairDataset
    batch_size: int
    per_epoch: int

    def keys(self, seed: int, k: int) -> list[tuple[int, int]]:
        """The (epoch, index) keys of global batch `k`."""
        epoch, j = divmod(k, self.per_epoch)
        order = _epoch_order(int(seed), LEVELS.index(self.level), epoch, len(self.dataset))
        return [(epoch, int(i)) for i in order[j * self.batch_size : (j + 1) * self.batch_size]]


@functools.lru_cache(maxsize=16)
def _epoch_order(seed: int, level: int, epoch: int, size: int) -> np.ndarray:
    """An epoch's permutation of a level's pairs, drawn once per epoch, not once per batch (a real
    corpus has 10^5 clip pairs; the schedule reads every level's batches in turn)."""
    order = np.random.default_rng([seed, level, epoch]).permutation(size)
    order.flags.writeable = False
    return order


LevelKey = tuple[str, int, int]  # (level, epoch, index): one sample of one level's epoch


class ScheduleBatches(Sampler):
    """This rank's slice of every batch a run reads from `start_step` to its end, in the order the
    steps consume them: for each step, each of its `grad_accum` micro-batches, each level of
    `schedule.levels_at(step)`, the level's next global batch (`LevelData.keys`), keys tagged with
    the level. The level's batch counter starts at `grad_accum * schedule.batches_before(start_step)`,
    so a resumed run reads exactly the tail of the uninterrupted run's sequence.
    """

    def __init__(
        self,
        data: Mapping[str, LevelData],
        schedule: Schedule,
        seed: int,
        start_step: int,
        grad_accum: int,
        env: DistEnv,
    ) -> None:
        missing = [lvl for lvl in schedule.levels if lvl not in data]
        if missing:
            raise ValueError(f"the schedule trains {missing} but no training data was built for them")
        for d in data.values():
            per_rank_batch(d.batch_size, env.world_size, f"{d.level} batch")
        self.data, self.schedule, self.seed, self.env = data, schedule, int(seed), env
        self.start_step, self.grad_accum = int(start_step), int(grad_accum)

    def positions(self) -> Iterator[tuple[int, int, str, int]]:
        """(step, micro-batch, level, global batch number k), in the order batches are read."""
        begin = self.schedule.batches_before(self.start_step)
        count = {lvl: self.grad_accum * begin[lvl] for lvl in self.data}
        for step in range(self.start_step, len(self.schedule.plan)):
            levels = self.schedule.levels_at(step)
            for micro in range(self.grad_accum):
                for level in levels:
                    yield step, micro, level, count[level]
                    count[level] += 1

    def __iter__(self) -> Iterator[list[LevelKey]]:
        rank, world = self.env.rank, self.env.world_size
        for _, _, level, k in self.positions():
            keys = self.data[level].keys(self.seed, k)
            yield [(level, epoch, index) for epoch, index in shard(keys, rank, world)]

    def __len__(self) -> int:
        steps = self.schedule.plan[self.start_step :]
        return self.grad_accum * sum(len(levels) for levels in steps)


class LevelDataset(Dataset):
    """The training datasets of several levels behind one index: key (level, epoch, index) is sample
    (epoch, index) of that level's dataset, tagged with `level`."""

    def __init__(self, datasets: Mapping[str, PairDataset]) -> None:
        self.datasets = dict(datasets)

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets.values())

    def __getitem__(self, key: LevelKey) -> dict[str, Any]:
        level, epoch, index = key
        sample = self.datasets[level][(epoch, index)]
        sample["level"] = level
        return sample


class LevelCollate(PairCollate):
    """`PairCollate` plus the batch's `level` (one level per batch)."""

    def __call__(self, batch: Any) -> dict[str, Any]:
        levels = {b["level"] for b in batch}
        if len(levels) != 1:
            raise ValueError(f"a training batch mixes levels {sorted(levels)}")
        out = super().__call__(batch)
        out["level"] = batch[0]["level"]
        return out


def normalise(
    frames: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, device: torch.device | None = None
) -> torch.Tensor:
    """uint8 frames (..., 3, H, W) -> float32 `(x / 255 - mean) / std` on `device` (default: mean's).

    The copy to the device carries uint8 (non-blocking: from pinned memory it overlaps the step); the
    float operations are `PairDataset._to_tensor`'s, in its order, so CPU results are bit-identical to
    the worker normalisation the loader used before. `mean` / `std`: (1, 3, 1, 1) float32 tensors.
    """
    if frames.dtype != torch.uint8:
        raise ValueError(f"training frames must arrive as uint8 (normalised here once), got {frames.dtype}")
    x = frames.to(device or mean.device, non_blocking=True).float().div_(255.0)
    return (x - mean) / std


def frame_geometry(params: Params, image_size: int) -> tuple[tuple[int, int] | None, int]:
    """Training decode size and random crop: the evaluation resize (`frames.transform.size`) and the
    model's input size, so train and test frames share one pixel scale and one aspect handling (the
    paper resizes both to 360x640, then crops 336 at training and 224 at test)."""
    return params.frames.transform.size, image_size


def build_level_data(
    pairs_dir: str | Path,
    corpus_root: str | Path,
    params: Mapping[str, Any],
    levels: tuple[str, ...],
    batch_sizes: Mapping[str, int],
    env: DistEnv,
    image_size: int,
    frame_cache: FrameCache | None = None,
    frame_cache_fps: float = 0.0,
    frame_cache_max_gb: float = 8.0,
    positives: PositiveRule | None = None,
) -> dict[str, LevelData]:
    """Training datasets of `levels` (uint8 frames, randomly cropped to `image_size`; see `normalise`),
    batch sizes checked.

    A batch size below 2 (`train.batch_size.<level>`) is an error: a contrastive batch needs negatives.
    A level with fewer pairs than its batch size trains on batches of all its pairs (rounded down to a
    multiple of the world size), with a warning; one with too few pairs for a batch of 2 is an error.
    With `frame_cache`, frames come from its entries (the main rank builds missing ones first, the
    others then find them). `positives` (MIL-NCE): clip samples also carry
    their bag of positive narrations (`texts`).
    """
    size, crop = frame_geometry(coerce_params(params), image_size)
    out: dict[str, LevelData] = {}
    for level in levels:
        ds = CachedPairDataset.from_params(
            pairs_dir, level, corpus_root, params,
            train=True, size=size, crop=crop, dtype="uint8",
            positives=positives if level == "clip" else None,
        )
        if frame_cache is not None:
            if env.is_main:
                frames = ds.attach_cache(frame_cache, frame_cache_fps, frame_cache_max_gb)
                log.info("%s level: %d cached frames of %d videos", level, frames, len(ds._entries))
            barrier()
            if not env.is_main:
                ds.attach_cache(frame_cache, frame_cache_fps, frame_cache_max_gb)
        want = int(batch_sizes[level])
        if want < 2:
            raise HecvlError(
                f"train.batch_size.{level} is {want}: a contrastive batch needs at least 2 samples "
                "(the others are each sample's negatives)"
            )
        per_rank_batch(want, env.world_size, f"{level} batch")
        batch = min(want, len(ds) - len(ds) % env.world_size)
        if batch < 2:
            why = ("a contrastive batch needs at least 2" if len(ds) < 2
                   else f"no batch of at least 2 splits over {env.world_size} processes")
            raise HecvlError(f"only {len(ds)} {level} pairs: {why}", pairs_dir)
        if batch < want and env.is_main:
            log.warning("%s level: %d pairs < batch size %d; training on batches of %d",
                        level, len(ds), want, batch)
        out[level] = LevelData(level, ds, batch, len(ds) // batch)
    return out


def make_loader(
    data: Mapping[str, LevelData],
    schedule: Schedule,
    seed: int,
    start_step: int,
    grad_accum: int,
    env: DistEnv,
    num_workers: int,
    pin_memory: bool = False,
    prefetch_factor: int = 2,
) -> DataLoader:
    """The run's one loader: this rank's batches of every level from `start_step` to the end, in
    schedule order (`ScheduleBatches`), each with its `level`; uint8 frames (`normalise` on the device).

    Workers are persistent and serve every level; `pin_memory` (CUDA) lets the copy to the device
    overlap the step. The loader's own generator (from `seed`) seeds the workers, so making a loader
    draws nothing from the global torch generator.
    """
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(worker_init_fn=worker_init_fn, prefetch_factor=prefetch_factor, persistent_workers=True)
    return DataLoader(
        LevelDataset({lvl: d.dataset for lvl, d in data.items()}),
        batch_sampler=ScheduleBatches(data, schedule, seed, start_step, grad_accum, env),
        num_workers=num_workers,
        collate_fn=LevelCollate(),
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(int(seed)),
        **kwargs,
    )
