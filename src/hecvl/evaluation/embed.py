"""Frame embeddings at 1 fps: decoded once (the frame cache), embedded once per model, cached as .npy.

Why a cache: every ablation of the test-time options (space, prompts) and the linear probe reuse
the same frame embeddings; only the text side changes. An entry is keyed by
(model key, dataset, frame transform, level, video) and carries a small JSON sidecar with the
video's identity (the frame cache's content hash) and the frame count, so a regenerated or
replaced video is never scored with stale embeddings, and the array's SHA-256 and size
(`hecvl.checksums`), so a damaged entry is rebuilt with a warning instead of feeding every later
evaluation.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hecvl.checksums import BadEntry, read_checked, write_checked
from hecvl.config import LEVELS, SPACES
from hecvl.config.model import IMAGENET_MEAN, IMAGENET_STD
from hecvl.errors import HecvlError
from hecvl.models.state_dicts import hash_state_dict

if TYPE_CHECKING:
    from hecvl.evaluation.sources import ScoredModel

log = logging.getLogger(__name__)



def levels_for(space: str, trained: Sequence[str] = LEVELS) -> list[str]:
    """The embedding levels a space needs: one head, or for the ensemble every level the model trained
    (a head that never saw a batch is its random initialisation: averaging it in only adds noise)."""
    if space not in SPACES:
        raise HecvlError(f"unknown embedding space {space!r} (choose from {', '.join(SPACES)})")
    return [lv for lv in LEVELS if lv in trained] if space == "ensemble" else [space]


def model_key(model: Any) -> str:
    """A short hash of what decides a model's embeddings: its configuration and every tensor it holds.

    Hashing the loaded state (not a file or a seed) means a saved model and the same model built
    fresh share their cache entries, and a change of code defaults can never serve stale ones.
    """
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    cfg = config.to_dict() if hasattr(config, "to_dict") else repr(config)
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    hash_state_dict(h, model.state_dict())
    return h.hexdigest()[:16]


def video_identity(path: str | Path) -> dict[str, Any]:
    """Cheap identity of a video file (hashing multi-GB surgical videos on every run is not)."""
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass(frozen=True)
class EmbeddingCache:
    """Where the embeddings of one (model, dataset, transform) live: `root/model/dataset/transform/`."""

    root: Path
    model_key: str
    dataset: str
    transform_key: str

    @property
    def folder(self) -> Path:
        return Path(self.root) / self.model_key / self.dataset / self.transform_key

    def path(self, video: str, level: str) -> Path:
        return self.folder / f"{video}.{level}.npy"

    def record(self, video: str, level: str) -> Path:
        return self.folder / f"{video}.{level}.json"

    def load(self, video: str, level: str, identity: Mapping[str, Any]) -> np.ndarray | None:
        """The cached (T, E) float32 embeddings, or None if absent, made from another file, or bad.

        A bad entry (bytes that do not match its checksum record, no record, unreadable) is one
        warning naming the file; it is never used, and the caller's rebuild replaces it.
        """
        path = self.path(video, level)
        try:
            entry = read_checked(path, self.record(video, level))
            if entry is None:
                return None
            data, info = entry
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except BadEntry as exc:
            log.warning("bad embedding cache entry, re-embedding its video: %s", exc)
            return None
        except (OSError, ValueError, EOFError) as exc:  # bytes as recorded, yet no array
            log.warning("bad embedding cache entry, re-embedding its video: %s: not an array (%s)", path, exc)
            return None
        if info.get("video") != dict(identity) or info.get("frames") != len(arr):
            return None  # made from another version of the video: stale, not damaged
        return arr

    def save(self, video: str, level: str, arr: np.ndarray, identity: Mapping[str, Any]) -> None:
        """Array first, its checksum record last: a record only ever describes a complete array."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
        fields = {"video": dict(identity), "frames": len(arr)}
        write_checked(self.path(video, level), buf.getvalue(), self.record(video, level), fields)


NORMALISATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # SurgCLIP's transform
}


class Renormalised:
    """A model whose frames a protocol normalises with its own mean and std instead of the model's.

    Why a wrapper: harnesses apply their transform to every model they score, so a protocol's
    normalisation is part of its result even for a model trained with another. Everything but
    `preprocess` is the model's own.
    """

    def __init__(self, model: ScoredModel, normalise: str) -> None:
        if normalise not in NORMALISATIONS:
            raise HecvlError(
                f"unknown normalisation {normalise!r} (choose from model, {', '.join(NORMALISATIONS)})")
        self.model = model
        self.normalise = normalise
        self.normalisation = NORMALISATIONS[normalise]
        self.temporal: bool = model.temporal
        self.image_size: int | None = model.image_size

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """Frames at the model's image size (as they come where it has none), the protocol's mean and std."""
        from hecvl.models.visual_encoder import preprocess_frames

        size = self.image_size if self.image_size is not None else int(np.shape(frames)[-3])
        return preprocess_frames(frames, size, *self.normalisation)

    def embed_video_levels(self, x: torch.Tensor, levels: Sequence[str]) -> Mapping[str, torch.Tensor]:
        return self.model.embed_video_levels(x, levels)

    def embed_text(self, texts: Sequence[str], level: str) -> torch.Tensor:
        return self.model.embed_text(texts, level)

    def truncated_prompts(self, texts: Sequence[str]) -> list[tuple[str, int]]:
        return self.model.truncated_prompts(texts)


def with_normalisation(model: ScoredModel, normalise: str) -> ScoredModel:
    """The model as a protocol normalises its frames: unchanged for `model`, or where the protocol's
    mean and std are the model's own (so their embeddings, and cache entries, are shared)."""
    if normalise == "model":
        return model
    if tuple(map(tuple, model.normalisation)) == NORMALISATIONS.get(normalise):
        return model
    return Renormalised(model, normalise)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.inference_mode()
def embed_frames(
    model: ScoredModel,
    frames: np.ndarray,
    levels: Sequence[str],
    batch_size: int = 64,
    device: torch.device | None = None,
) -> dict[str, np.ndarray]:
    """L2-normalised embeddings (T, E) per level of uint8 frames (T, H, W, 3), each frame a 1-frame video.

    Each frame is embedded alone (a video of one frame) because the protocol classifies every second
    on its own; the model averages over frames, so a 1-frame video is exactly the frame's embedding.
    """
    device = device or torch.device("cpu")
    out: dict[str, list[np.ndarray]] = {lv: [] for lv in levels}
    for start in range(0, len(frames), batch_size):
        batch = np.array(frames[start : start + batch_size])  # a writable copy of the memmap rows
        x = model.preprocess(batch).to(device, non_blocking=True).unsqueeze(1)  # (B, 1, 3, h, w)
        for level, emb in model.embed_video_levels(x, list(levels)).items():
            out[level].append(emb.float().cpu().numpy())
    width = {lv: (out[lv][0].shape[1] if out[lv] else 0) for lv in levels}
    return {lv: np.concatenate(out[lv]) if out[lv] else np.zeros((0, width[lv]), np.float32) for lv in levels}


def prefetch(items: Sequence[str], load: Callable[[str], Any]) -> Iterator[tuple[str, Any]]:
    """Yield (item, load(item)) while the next item loads in a background thread.

    Decoding (native code that releases the GIL) then overlaps with embedding the previous video,
    which is what lets a first, uncached evaluation run close to the decode-only rate.
    """
    if not items:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(load, items[0])
        for i, item in enumerate(items):
            result = future.result()
            if i + 1 < len(items):
                future = pool.submit(load, items[i + 1])
            yield item, result


@contextlib.contextmanager
def one_core_for_the_decoder(device: torch.device | None) -> Iterator[None]:
    """While frames decode in the background, let CPU inference use one thread fewer.

    Decoding and embedding then run side by side instead of fighting for the same cores (on 2 cores
    this is what brings a first evaluation close to the decode-only rate). Restored afterwards.
    """
    threads = torch.get_num_threads()
    reduce = device is not None and device.type == "cpu" and threads > 1
    if reduce:
        torch.set_num_threads(threads - 1)
    try:
        yield
    finally:
        if reduce:
            torch.set_num_threads(threads)


def check_embeddings(arr: np.ndarray, video: str, level: str) -> np.ndarray:
    if arr.ndim != 2 or not np.isfinite(arr).all():
        raise HecvlError(f"the model produced non-finite or malformed embeddings for {video} ({level})")
    return arr


def video_embeddings(
    model: ScoredModel,
    videos: Mapping[str, Path],
    load_frames: Callable[[Path], np.ndarray],
    identify: Callable[[Path], str] | None,
    cache: EmbeddingCache | None,
    levels: Sequence[str],
    batch_size: int = 64,
    device: torch.device | None = None,
    embed_video_frames: Callable[..., dict[str, np.ndarray]] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """{video: {level: (T, E)}} for every video, from the cache where possible.

    Only videos with a missing level are decoded (via `load_frames`, e.g. the frame cache), and the
    decoding of the next one overlaps with embedding the current one. `identify(path)` names a
    video's content for the cache (the frame cache's content hash); None = size and mtime.
    `embed_video_frames` replaces `embed_frames` (same arguments), e.g. by a temporal model's windows.
    """
    from tqdm.auto import tqdm

    out: dict[str, dict[str, np.ndarray]] = {}
    todo: list[str] = []
    identities = {}
    for video, path in videos.items():
        ident = identities[video] = {"sha256": identify(path)} if identify else video_identity(path)
        cached = {lv: cache.load(video, lv, ident) for lv in levels} if cache else {}
        if cache and all(v is not None for v in cached.values()):
            out[video] = cached  # type: ignore[assignment]
        else:
            todo.append(video)
    if todo:
        log.info(
            "embedding %d of %d videos (%d served from the cache)",
            len(todo),
            len(videos),
            len(videos) - len(todo),
        )
    with one_core_for_the_decoder(device if todo else None):
        for video, frames in tqdm(
            prefetch(todo, lambda v: load_frames(videos[v])),
            total=len(todo),
            desc="embed",
            unit="video",
            disable=None,
        ):
            emb = (embed_video_frames or embed_frames)(model, frames, levels, batch_size=batch_size,
                                                       device=device)
            ident = identities[video]
            for level, arr in emb.items():
                check_embeddings(arr, video, level)
                if cache:
                    cache.save(video, level, arr, ident)
            out[video] = emb
    return {v: out[v] for v in videos}
