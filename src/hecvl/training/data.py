"""The training batches of each level as a pure function of (seed, level, batch number).

Batch k of a level is batch `k % per_epoch` of epoch `k // per_epoch`, where an epoch is a
permutation of the level's pairs drawn from `numpy.random.default_rng([seed, level, epoch])`; the
incomplete last batch of an epoch is dropped (a contrastive batch keeps its size). Every sample's own
random draws (clip position, frames, crop) come from `PairDataset`'s (seed, epoch, index) generator.
Hence the data position of a run is just "how many batches of each level so far", which the schedule
computes from the step, and a resumed run reads exactly the batches the uninterrupted run read.

Under DDP every rank computes the same global batch of keys and loads its contiguous slice.

Frame cache (`train.frame_cache`): decoding a few frames at random times of many videos costs far
more than the CPU default's forward and backward pass (about 30 ms per frame against 3 ms). With the
cache on, every lecture video is decoded once, at the training decode size, into `FrameCache`
entries (memory-mapped .npy, shared by every run, variant and seed of the study), and samples are
read from them. At the video's own frame rate (`frame_cache_fps: 0`) the frames are exactly those
the decoder would return for the same times (same time -> frame rule, same backend and resize);
a lower rate saves space for long real videos at the price of rounding times to its grid.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Sampler

from hecvl.config import Params, coerce_params
from hecvl.errors import HecvlError
from hecvl.pairing.datasets import PairCollate, PairDataset, worker_init_fn
from hecvl.pairing.positives import PositiveRule
from hecvl.training.distributed import DistEnv, barrier, per_rank_batch, shard
from hecvl.training.schedules import LEVELS
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
        order = np.random.default_rng([seed, LEVELS.index(self.level), epoch]).permutation(len(self.dataset))
        return [(epoch, int(i)) for i in order[j * self.batch_size : (j + 1) * self.batch_size]]


class KeyBatches(Sampler):
    """Global batches `start .. stop-1` of one level, this rank's slice of each."""

    def __init__(self, data: LevelData, seed: int, start: int, stop: int, env: DistEnv) -> None:
        self.data, self.seed, self.start, self.stop, self.env = data, seed, start, stop, env
        self.per_rank = per_rank_batch(data.batch_size, env.world_size, f"{data.level} batch")

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for k in range(self.start, self.stop):
            yield shard(self.data.keys(self.seed, k), self.env.rank, self.env.world_size)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


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
    mean: tuple[float, ...],
    std: tuple[float, ...],
    frame_cache: FrameCache | None = None,
    frame_cache_fps: float = 0.0,
    frame_cache_max_gb: float = 8.0,
    positives: PositiveRule | None = None,
) -> dict[str, LevelData]:
    """Training datasets of `levels` (normalised float frames at `image_size`), batch sizes checked.

    A level with fewer pairs than its batch size trains on batches of all its pairs (rounded down to a
    multiple of the world size), with a warning; a level with fewer than 2 pairs is an error (no
    contrastive negatives). With `frame_cache`, frames come from its entries (the main rank builds
    missing ones first, the others then find them). `positives` (MIL-NCE): clip samples also carry
    their bag of positive narrations (`texts`).
    """
    size, crop = frame_geometry(coerce_params(params), image_size)
    out: dict[str, LevelData] = {}
    for level in levels:
        ds = CachedPairDataset.from_params(
            pairs_dir, level, corpus_root, params,
            train=True, size=size, crop=crop, dtype="float32", mean=mean, std=std,
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
        per_rank_batch(want, env.world_size, f"{level} batch")
        batch = min(want, len(ds) - len(ds) % env.world_size)
        if batch < 2:
            raise HecvlError(f"only {len(ds)} {level} pairs: a contrastive batch needs at least 2", pairs_dir)
        if batch < want and env.is_main:
            log.warning("%s level: %d pairs < batch size %d; training on batches of %d",
                        level, len(ds), want, batch)
        out[level] = LevelData(level, ds, batch, len(ds) // batch)
    return out


def make_loader(
    data: LevelData, seed: int, start: int, stop: int, env: DistEnv, num_workers: int
) -> DataLoader:
    """A loader yielding this rank's part of global batches `start .. stop-1` of one level."""
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(worker_init_fn=worker_init_fn, prefetch_factor=2)
    return DataLoader(
        data.dataset,
        batch_sampler=KeyBatches(data, seed, start, stop, env),
        num_workers=num_workers,
        collate_fn=PairCollate(),
        **kwargs,
    )
