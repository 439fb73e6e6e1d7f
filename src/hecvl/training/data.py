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

Frame store (`train.store`, `hecvl.video.store`): decoding a few frames at random times of many
videos costs far more than the step that uses them (1.4-4.6 frames per CPU-second on 720p lectures).
Every lecture is decoded once, on a time grid, into a pack (the workflow's `store` jobs, one per
lecture; a run outside the workflow builds what is missing), and samples read their frames from it. At
the video's own rate (`train.store.fps: 0`, raw encoding: the CPU study) those are exactly the frames
the decoder would return for the same times; a lower rate rounds sample times to its grid.
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

from hecvl import layout
from hecvl.config import Params, coerce_params
from hecvl.errors import HecvlError
from hecvl.pairing.datasets import PairCollate, PairDataset, worker_init_fn
from hecvl.pairing.positives import PositiveRule
from hecvl.provenance import HashCache
from hecvl.training.distributed import DistEnv, barrier, effective_batch, per_rank_batch, shard
from hecvl.training.schedules import LEVELS, Schedule
from hecvl.video.store import Pack, SizeGuard, StoreSettings, build_pack, pack_is_current

log = logging.getLogger(__name__)


class StorePairDataset(PairDataset):
    """A PairDataset whose frames come from the frame store's packs (one per lecture) instead of the MP4s."""

    def attach_store(self, root: str | Path, settings: StoreSettings, build: bool = True,
                     max_gib: float | None = None) -> int:
        """Find the pack of every lecture video of this level, building a missing or stale one when `build`
        (the workflow's `store` jobs build them first; a run outside it builds what it lacks); returns the
        number of stored frames. A pack must come from the lecture's video bytes, with these settings."""
        self._packs: dict[str, str] = {}
        self._open: dict[str, Pack] = {}
        hashes = HashCache(Path(root) / "hashes.json")  # the lecture videos' hashes, by size and mtime
        frames = 0
        for video in sorted({row["video"] for row in self.rows}):
            source = self.corpus_root / video
            pack = Path(layout.store_pack(settings.key(), lecture_of(video), str(root)))
            sha = hashes.file(source)
            meta, why = pack_is_current(pack, settings, sha, checksum=False)  # no full read per run
            if meta is None:
                why = why or "no pack"
                if not build:
                    raise HecvlError(f"{why}: build it (`hecvl store build` or the store jobs)", pack)
                log.info("%s: building the pack (%s)", pack, why)
                guard = None if max_gib is None else SizeGuard(max_gib, _built_bytes(pack.parent, pack))
                meta = build_pack(source, pack, settings, guard=guard, source_sha256=sha)
            self._packs[video] = str(pack)
            frames += int(meta["frames"])
        hashes.save()
        return frames

    def reader(self, row: Mapping[str, Any]) -> Any:
        path = getattr(self, "_packs", {}).get(row["video"])
        if path is None:
            return super().reader(row)
        pack = self._open.get(path)
        if pack is None:  # a Pack opens its file lazily in each process (workers never share a descriptor)
            pack = self._open[path] = Pack(path)
        return pack

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_open"] = {}
        return state


def lecture_of(video: str) -> str:
    """A manifest video's lecture folder (`lecture_0001/video.mp4` -> `lecture_0001`): its pack's name."""
    return Path(video).parts[0]


def _built_bytes(folder: Path, pack: Path) -> int:
    """Bytes of the other packs already in a store folder (what the size guard counts as built)."""
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.glob("*.pack") if p.is_file() and p != pack)


@dataclass(frozen=True)
class FrameStore:
    """Where a run's training frames come from: the store folder, its settings and its size limit."""

    root: Path
    settings: StoreSettings
    max_gib: float | None = None

    @classmethod
    def from_params(cls, params: Params) -> FrameStore | None:
        """`train.store` of a run, or None when it is off (samples decoded from the MP4s)."""
        cfg = params.train.store
        if not cfg.enabled:
            return None
        return cls(Path(cfg.root or layout.STORE), StoreSettings.from_params(params), cfg.max_gib)


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
    store: FrameStore | None = None,
    positives: PositiveRule | None = None,
) -> dict[str, LevelData]:
    """Training datasets of `levels` (uint8 frames, randomly cropped to `image_size`; see `normalise`),
    batch sizes checked.

    A batch size below 2 (`train.batch_size.<level>`) is an error: a contrastive batch needs negatives.
    A level with fewer pairs than its batch size trains on batches of all its pairs (rounded down to a
    multiple of the world size), with a warning; one with too few pairs for a batch of 2 is an error.
    With `store`, frames come from its packs (the main rank builds missing ones first, the others then
    find them). `positives` (MIL-NCE): clip samples also carry
    their bag of positive narrations (`texts`).
    """
    size, crop = frame_geometry(coerce_params(params), image_size)
    out: dict[str, LevelData] = {}
    for level in levels:
        ds = StorePairDataset.from_params(
            pairs_dir, level, corpus_root, params,
            train=True, size=size, crop=crop, dtype="uint8",
            positives=positives if level == "clip" else None,
        )
        if store is not None:
            if env.is_main:
                frames = ds.attach_store(store.root, store.settings, max_gib=store.max_gib)
                log.info("%s level: %d stored frames of %d lectures (%s)", level, frames, len(ds._packs),
                         store.settings.key())
            barrier()
            if not env.is_main:
                ds.attach_store(store.root, store.settings, build=False)
        want = int(batch_sizes[level])
        if want < 2:
            raise HecvlError(
                f"train.batch_size.{level} is {want}: a contrastive batch needs at least 2 samples "
                "(the others are each sample's negatives)"
            )
        want = effective_batch(want, env.world_size, f"train.batch_size.{level}")
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
