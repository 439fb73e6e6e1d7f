"""Temporal windows: the frames scored together for each second, as the protocols place them.

A model with no temporal encoder (ours, SurgVLP's) scores a window by the mean of its frames' unit
embeddings (renormalised), computed from the per-frame embeddings already cached: no frame is decoded
or embedded twice. A model with its own temporal encoder (SurgCLIP's TimeSformer, SurgLIME's attention
pooling) says so with `temporal = True` (evaluation.sources.ScoredModel), and receives the window's
frames, gathered from the frame cache's array of the video.

How windows meet a video's ends differs between harnesses, and it is part of the protocol:
- `shift` (SurgCLIP): the window moves inside the video; a video shorter than the window repeats its last
  frame;
- `clamp`: indices outside the video take the nearest edge frame;
- `anchor` (SurgLIME): indices outside the video take the scored frame itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from hecvl.config.evaluation import WindowSettings
from hecvl.errors import HecvlError

if TYPE_CHECKING:
    from hecvl.evaluation.sources import ScoredModel


def window_indices(num_frames: int, window: WindowSettings) -> np.ndarray:
    """(num_frames, window.frames) frame indices of every second's window, inside [0, num_frames)."""
    if num_frames < 1:
        raise HecvlError("a video with no frames has no windows")
    n, size = num_frames, window.frames
    anchors = np.arange(n)[:, None]
    steps = np.arange(size)[None, :]
    if window.ends == "shift":
        start = np.clip(anchors + window.first, 0, max(n - size, 0))
        return np.minimum(start + steps, n - 1)
    idx = anchors + window.first + steps
    if window.ends == "clamp":
        return np.clip(idx, 0, n - 1)
    outside = (idx < 0) | (idx >= n)
    return np.where(outside, np.broadcast_to(anchors, idx.shape), idx)


def pool_windows(emb: np.ndarray, window: WindowSettings) -> np.ndarray:
    """(T, E) per-frame unit embeddings -> (T, E) unit embeddings of each second's window (mean, renormed)."""
    if window.frames == 1:
        return emb
    idx = window_indices(len(emb), window)
    pooled = np.asarray(emb, dtype=np.float64)[idx].mean(axis=1)
    norm = np.linalg.norm(pooled, axis=1, keepdims=True)
    if (norm == 0).any():
        raise HecvlError("a window's frame embeddings cancel out (zero mean): cannot score it by cosine")
    return (pooled / norm).astype(np.float32)


@torch.inference_mode()
def embed_windows(
    model: ScoredModel,
    frames: np.ndarray,
    levels: list[str],
    batch_size: int,
    device: torch.device | None,
    *,
    window: WindowSettings,
) -> dict[str, np.ndarray]:
    """{level: (T, E)} embeddings of each second's window by a temporal model, `batch_size` frames a pass."""
    idx = window_indices(len(frames), window)
    per_batch = max(1, batch_size // window.frames)
    out: dict[str, list[np.ndarray]] = {lv: [] for lv in levels}
    for start in range(0, len(idx), per_batch):
        rows = idx[start : start + per_batch]
        x = model.preprocess(np.ascontiguousarray(frames[rows.reshape(-1)]))
        x = x.reshape(len(rows), window.frames, *x.shape[1:]).to(device or torch.device("cpu"))
        for level, emb in model.embed_video_levels(x, levels).items():
            out[level].append(emb.float().cpu().numpy())
    return {lv: np.concatenate(parts) for lv, parts in out.items()}
