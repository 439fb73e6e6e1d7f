"""PyTorch datasets over the pair manifests: decode each pair's frames through `hecvl.video`.

Training draws a fresh frame plan per sample (a random 3-5 s clip inside the narration window and a
random frame in each run of its 2 fps grid; a random time in each segment for phases and videos; one
random square crop per sample); validation uses the manifest's fixed frame times and a centre crop.

MIL-NCE (opt-in, `positives=PositiveRule(...)`, clip level): a sample also carries `texts`, its own
narration followed by the narrations of the same lecture near the clip span actually drawn (training)
or the manifest's fixed clip (validation); see `hecvl.pairing.positives`. Off, samples are unchanged.

Determinism: a sample's randomness comes from its own generator seeded with (seed, epoch, pair id), never
from a worker's global state, so the same seed gives the same batches with 0, 1 or 2 workers, with
or without persistent workers. `EpochSampler` yields (epoch, index) keys for that; `set_epoch` on the
sampler moves both the shuffle order and the per-sample draws on.

Workers: video readers are opened lazily inside each worker process (never inherited across a fork)
and a few are kept open per worker (LRU), since consecutive pairs usually come from the same lecture.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hecvl.config import coerce_params
from hecvl.config.pairing import PairingRules
from hecvl.errors import HecvlError
from hecvl.pairing.manifest import read_manifest
from hecvl.pairing.positives import NarrationNeighbours, PositiveRule
from hecvl.pairing.sampling import clamp_times, clip_span, clip_times, segment_times
from hecvl.video import FrameTransform, open_video
from hecvl.video.transform import centre_crop_origin

_CHILD_LEVEL = {"phase": "clip", "video": "phase"}
_INHERITED_READERS: list[Any] = []  # readers a forked worker inherited: never used, never destroyed
_CHILD_COLUMN = {"phase": "clip_ids", "video": "phase_ids"}


class PairDataset(Dataset):
    """The pairs of one level (`clip`, `phase` or `video`) as (frames, text, ids) samples.

    Each sample is a dict: `frames` (T, 3, H, W) uint8, or float32 in [0, 1] (normalised by `mean`/`std`
    when given); `times` (T,) float64 the frame times in seconds; `text`; `pair_id`; `lecture_id`; `index`;
    for phase and video pairs `child_texts` (the texts of the clip / phase pairs inside); with
    `positives` (clip level) `texts`, the sample's bag of positive narrations (own text first).
    `size` = (H, W) to decode to (None: the video's size), `crop` = square crop (None: no crop).
    `lectures` / `pair_ids` keep only those pairs (e.g. a split by lecture). Subclasses may override
    `reader(row)` to serve frames from elsewhere (anything with `info`, `frames_at`, `close`).
    """

    def __init__(
        self,
        pairs_dir: str | Path,
        level: str,
        corpus_root: str | Path,
        *,
        train: bool = False,
        seed: int = 0,
        rules: PairingRules | None = None,
        size: tuple[int, int] | None = None,
        crop: int | None = None,
        dtype: str = "uint8",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        lectures: Collection[str] | None = None,
        pair_ids: Collection[str] | None = None,
        backend: str = "auto",
        max_open_videos: int = 4,
        positives: PositiveRule | None = None,
    ) -> None:
        if positives is not None and level != "clip":
            raise ValueError(f"positives (MIL-NCE bags) are defined for the clip level only, not {level!r}")
        self.level = level
        self.corpus_root = Path(corpus_root)
        self.train = train
        self.seed = int(seed)
        self.epoch = 0
        self.rules = rules or PairingRules()
        self.transform = FrameTransform(size=size)
        self.crop = crop
        if dtype not in ("uint8", "float32"):
            raise ValueError(f"dtype must be uint8 or float32, got {dtype!r}")
        self.dtype = dtype
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.backend = backend
        self.max_open_videos = max_open_videos

        table = read_manifest(pairs_dir, level)
        rows = table.to_pylist()
        # neighbours come from the whole manifest: a pair filter must not hide a clip's neighbours
        self.neighbours = (
            None if positives is None else NarrationNeighbours.from_table(table, positives, lectures)
        )
        if lectures is not None:
            wanted = set(lectures)
            rows = [r for r in rows if r["lecture_id"] in wanted]
        if pair_ids is not None:
            wanted = set(pair_ids)
            rows = [r for r in rows if r["pair_id"] in wanted]
        self.rows = rows
        # a pair's random draws are keyed by its id, not its position: filtering or reordering the
        # manifest never changes what a given pair shows in a given epoch
        self._draw_keys = [_stable_key(r["pair_id"]) for r in rows]
        self.child_texts: list[list[str]] = []
        if level in _CHILD_LEVEL:
            child = read_manifest(pairs_dir, _CHILD_LEVEL[level]).select(["pair_id", "text"]).to_pydict()
            text_of = dict(zip(child["pair_id"], child["text"], strict=True))
            self.child_texts = [[text_of[c] for c in r[_CHILD_COLUMN[level]] if c in text_of] for r in rows]
        self._readers: OrderedDict[str, Any] = OrderedDict()
        self._pid = os.getpid()

    @classmethod
    def from_params(
        cls,
        pairs_dir: str | Path,
        level: str,
        corpus_root: str | Path,
        params: Any,
        **kwargs: Any,
    ) -> PairDataset:
        """A dataset with the `pairing:` rules and `pairing.loader` defaults; `kwargs` override them.

        Frames are resized as at test (`frames.transform.size`) and cropped to the model's input size,
        so one object covers as many pixels in training as in evaluation."""
        params = coerce_params(params)
        rules = params.pairing
        defaults = {
            "rules": rules,
            "size": params.frames.transform.size,
            "crop": params.model.visual.image_size,
            "dtype": rules.loader.dtype,
            "backend": rules.loader.backend,
            "max_open_videos": rules.loader.max_open_videos,
            "seed": params.seed,
        }
        return cls(pairs_dir, level, corpus_root, **{**defaults, **kwargs})

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Epoch for plain integer indices (with `EpochSampler` the epoch travels in the key instead)."""
        self.epoch = int(epoch)

    def frame_times(self, index: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """The sample's frame plan: the manifest's fixed times (rng None) or a random training draw."""
        return self._plan(index, rng)[0]

    def _plan(
        self, index: int, rng: np.random.Generator | None
    ) -> tuple[np.ndarray, tuple[float, float]]:
        """Frame times and the span they were drawn from (the clip span for MIL-NCE positives)."""
        row = self.rows[index]
        if rng is None:
            return np.asarray(row["frame_times"], dtype=np.float64), (row["start"], row["end"])
        if self.level == "clip":
            cfg = self.rules.clip
            start, end = clip_span(row["window_start"], row["window_end"], cfg.min_s, cfg.max_s, rng)
            return clip_times(start, end, row["fps"], row["frames"], rng), (start, end)
        return segment_times(row["start"], row["end"], row["frames"], rng), (row["start"], row["end"])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, tuple | list) else (self.epoch, int(key))
        row = self.rows[index]
        rng = np.random.default_rng([self.seed, epoch, self._draw_keys[index]]) if self.train else None
        reader = self.reader(row)
        info = reader.info
        planned, span = self._plan(index, rng)
        times = clamp_times(planned, (info.num_frames - 1) / info.fps)
        try:
            frames = reader.frames_at(times, self.transform)
        except HecvlError as exc:
            raise HecvlError(
                f"lecture {row['lecture_id']}, pair {row['pair_id']}: {exc.message}", exc.path
            ) from None
        frames = self._crop(frames, rng)
        sample: dict[str, Any] = {
            "frames": self._to_tensor(frames),
            "times": torch.from_numpy(np.asarray(times, dtype=np.float64)),
            "text": row["text"],
            "pair_id": row["pair_id"],
            "lecture_id": row["lecture_id"],
            "index": index,
        }
        if self.level in _CHILD_LEVEL:
            sample["child_texts"] = list(self.child_texts[index])
        if self.neighbours is not None:
            sample["texts"] = self.neighbours.positives(
                row["lecture_id"], row["pair_id"], row["text"], span[0], span[1]
            )
        return sample

    # -- internals ---------------------------------------------------------------------------------
    def reader(self, row: Mapping[str, Any]) -> Any:
        """A reader for the row's video, opened in this process and kept in a small LRU."""
        if os.getpid() != self._pid:  # a forked worker: the parent's readers are not ours to use
            # ... nor to free: their destructors would join decoder threads that do not exist in this
            # process and hang forever. Park them where the garbage collector never reaches.
            _INHERITED_READERS.append(self._readers)
            self._readers = OrderedDict()
            self._pid = os.getpid()
        path = row["video"]
        reader = self._readers.get(path)
        if reader is None:
            try:
                reader = open_video(self.corpus_root / path, backend=self.backend)
            except HecvlError as exc:
                raise HecvlError(f"lecture {row['lecture_id']}: {exc.message}", exc.path) from None
            self._readers[path] = reader
            while len(self._readers) > self.max_open_videos:
                _, old = self._readers.popitem(last=False)
                old.close()
        else:
            self._readers.move_to_end(path)
        return reader

    def _crop(self, frames: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        if self.crop is None:
            return frames
        h, w = frames.shape[1:3]
        if self.crop > min(h, w):
            raise HecvlError(f"crop {self.crop} is larger than the decoded frames ({h}x{w})")
        if rng is None:
            top, left = centre_crop_origin(h, w, self.crop)
        else:
            top, left = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        return frames[:, top : top + self.crop, left : left + self.crop]

    def _to_tensor(self, frames: np.ndarray) -> torch.Tensor:
        out = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # stacking copies anyway
        if self.dtype == "uint8":
            return out
        out = out.float().div_(255.0)
        if self.mean is not None and self.std is not None:
            out = (out - self.mean) / self.std
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"] = OrderedDict()  # open decoders never travel to another process
        return state

    def close(self) -> None:
        """Close this process's open readers."""
        while self._readers:
            _, reader = self._readers.popitem()
            reader.close()


class EpochSampler(Sampler):
    """Yields (epoch, index) keys: shuffled by (seed, epoch) or in order; `set_epoch` moves on."""

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True) -> None:
        self.size = size
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        else:
            order = np.arange(self.size)
        epoch = self.epoch
        return iter([(epoch, int(i)) for i in order])

    def __len__(self) -> int:
        return self.size


class PairCollate:
    """Stack frames and times, list the texts and ids (and `child_texts` / `texts` bags, as lists of
    lists); `tokenizer(text)` (optional) adds `tokens` of the one text per sample.

    A class, not a closure, so it pickles into worker processes with its tokenizer.
    """

    def __init__(self, tokenizer: Callable[[list[str]], Any] | None = None) -> None:
        self.tokenizer = tokenizer

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {
            # NumPy's single-threaded copy: torch.stack wakes the intra-op thread pool for every batch,
            # which costs more than the copy itself on a busy CPU
            "frames": torch.from_numpy(np.stack([b["frames"].numpy() for b in batch])),
            "times": torch.stack([b["times"] for b in batch]),
            "text": [b["text"] for b in batch],
            "pair_id": [b["pair_id"] for b in batch],
            "lecture_id": [b["lecture_id"] for b in batch],
            "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
        }
        if "child_texts" in batch[0]:
            out["child_texts"] = [b["child_texts"] for b in batch]
        if "texts" in batch[0]:
            out["texts"] = [list(b["texts"]) for b in batch]
        if self.tokenizer is not None:
            out["tokens"] = self.tokenizer(out["text"])
        return out


def _stable_key(pair_id: str) -> int:
    """A 64-bit integer from a pair id, the same in every process and Python run (unlike hash())."""
    return int.from_bytes(hashlib.blake2b(pair_id.encode("utf-8"), digest_size=8).digest(), "little")


def worker_init_fn(worker_id: int) -> None:
    """Seed Python, NumPy and torch in each worker from the loader's base seed (for any third-party
    randomness; the datasets' own draws do not depend on it)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)  # legacy global state other libraries may read
    torch.manual_seed(seed)


def make_loader(
    dataset: PairDataset,
    batch_size: int,
    *,
    shuffle: bool | None = None,
    num_workers: int = 0,
    seed: int | None = None,
    tokenizer: Callable[[list[str]], Any] | None = None,
    drop_last: bool = False,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """A DataLoader over (epoch, index) keys; call `loader.sampler.set_epoch(e)` before each epoch.

    `shuffle` defaults to the dataset's mode (training shuffles, validation does not).
    """
    seed = dataset.seed if seed is None else int(seed)
    sampler = EpochSampler(len(dataset), seed=seed, shuffle=dataset.train if shuffle is None else shuffle)
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(worker_init_fn=worker_init_fn, persistent_workers=persistent_workers)
        if prefetch_factor is not None:
            kwargs["prefetch_factor"] = prefetch_factor
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=PairCollate(tokenizer),
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )
