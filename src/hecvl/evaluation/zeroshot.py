"""Zero-shot classification: score = 100 x cosine(frame, class prompt), argmax (docs/method.md §7).

A class with several prompts (template ensemble) is represented by the mean of its L2-normalised
prompt embeddings, normalised again (the CLIP recipe). The `ensemble` space averages the score
matrices of the clip, phase and video levels; with a shared head (the public code's realisation)
all levels coincide and the ensemble equals any single level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from hecvl.errors import HecvlError
from hecvl.evaluation.prompts import PromptSet

if TYPE_CHECKING:
    from hecvl.evaluation.sources import ScoredModel

SCALE = 100.0


def normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    if (norm == 0).any():
        raise HecvlError("an embedding has zero length and cannot be compared by cosine")
    return x / norm


@torch.inference_mode()
def class_embeddings(model: ScoredModel, prompts: PromptSet, levels: Sequence[str]) -> dict[str, np.ndarray]:
    """{level: (K, E)} unit class embeddings; all prompts embedded in one batch per level."""
    texts = prompts.flat()
    owner = np.repeat(np.arange(len(prompts.texts)), [len(t) for t in prompts.texts])
    out = {}
    for level in levels:
        emb = normalise(model.embed_text(texts, level).float().cpu().numpy().astype(np.float64))
        sums = np.zeros((len(prompts.texts), emb.shape[1]))
        np.add.at(sums, owner, emb)
        out[level] = normalise(sums).astype(np.float32)
    return out


def zero_shot_scores(
    frame_emb: Mapping[str, np.ndarray], class_emb: Mapping[str, np.ndarray], levels: Sequence[str]
) -> np.ndarray:
    """(T, K) scores, 100 x cosine, averaged over `levels` (one level unless the space is `ensemble`)."""
    total = None
    for level in levels:
        frames = normalise(np.asarray(frame_emb[level], dtype=np.float64))
        scores = SCALE * frames @ np.asarray(class_emb[level], dtype=np.float64).T
        total = scores if total is None else total + scores
    return (total / len(levels)).astype(np.float32)
