"""Zero-shot accuracy on the targets' validation split during pretraining: convergence, measured.

Why during training: whether a budget is enough is a question about the zero-shot task, not about
the losses (a loss can keep falling while accuracy has long plateaued, or the reverse). The frames of
the validation videos are read once from the frame cache (the evaluation transform, 1 fps) and kept in
memory; every `train.validation.every` steps the model embeds them, embeds the prompts, and scores
every space the run trains, exactly as `hecvl evaluate` would (same prompts, same ignored classes,
same video-wise mean). Inference only: no random draw is consumed, so training is unchanged by it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hecvl.config import Params
from hecvl.errors import HecvlError
from hecvl.evaluation.embed import embed_frames, levels_for
from hecvl.evaluation.metrics import argmax_predictions, video_scores
from hecvl.evaluation.prompts import prompts_for
from hecvl.evaluation.zeroshot import class_embeddings, zero_shot_scores

log = logging.getLogger(__name__)

COLUMNS = ["step", "dataset", "split", "space", "prompts", "accuracy", "f1"]


def validation_spaces(trained: Sequence[str]) -> list[str]:
    """Every space a run trains, plus their ensemble when it trains more than one level."""
    return [*trained, "ensemble"] if len(trained) > 1 else list(trained)


@dataclass
class _Target:
    name: str
    frames: dict[str, np.ndarray]  # video -> (T, H, W, 3) uint8, second t in row t
    labels: dict[str, tuple[np.ndarray, np.ndarray]]  # video -> (labelled seconds, phase ids)
    prompts: Any  # PromptSet
    num_classes: int
    ignored: list[int]


class Validation:
    """The validation frames of every target dataset, and the scoring of one model state on them."""

    def __init__(self, params: Params, datasets: Sequence[str], trained: Sequence[str]) -> None:
        from hecvl.datasets.registry import TargetDataset
        from hecvl.evaluation.evaluate import frame_source

        cfg = params.train.validation
        self.split, self.prompts = cfg.split, params.eval.prompts
        self.spaces = validation_spaces(trained)
        self.levels = list(trained)
        self.batch_size = params.eval.batch_size
        cache, transform = frame_source(params)
        self.targets: list[_Target] = []
        for name in datasets:
            ds = TargetDataset.from_params(name, params)
            videos = ds.split(self.split)
            if not videos:
                raise HecvlError(f"split {self.split!r} of {name} has no videos (train.validation)")
            table = ds.labels(self.split)
            frames, labels = {}, {}
            for video in videos:
                frames[video] = np.asarray(cache.get(ds.video_path(video), transform, fps=1.0))
                rows = table[table["video"] == video]
                secs = rows["frame_sec"].to_numpy(dtype=np.int64)
                keep = secs < len(frames[video])
                labels[video] = (secs[keep], rows["phase_id"].to_numpy(dtype=np.int64)[keep])
            prompt_set = prompts_for(ds, self.prompts, params.eval.prompt_file)
            self.targets.append(_Target(name, frames, labels, prompt_set, len(ds.classes), ds.ignored))
        n = sum(len(f) for t in self.targets for f in t.frames.values())
        log.info("validation: %d frames of %d datasets (%s split), spaces %s",
                 n, len(self.targets), self.split, ", ".join(self.spaces))

    @torch.no_grad()
    def __call__(self, model: Any, step: int, device: torch.device) -> list[dict[str, Any]]:
        """Rows (step, dataset, split, space, prompts, accuracy, f1) of the model as it is now; the
        model is put in eval mode and handed back in training mode."""
        model.eval()
        try:
            rows = []
            for t in self.targets:
                class_emb = class_embeddings(model, t.prompts, self.levels)
                emb = {v: embed_frames(model, f, self.levels, self.batch_size, device)
                       for v, f in t.frames.items()}
                for space in self.spaces:
                    accs, f1s = [], []
                    for video, (secs, gt) in t.labels.items():
                        if not len(secs):
                            continue
                        scores = zero_shot_scores(emb[video], class_emb, levels_for(space, self.levels))
                        scores[:, t.ignored] = -np.inf
                        acc, f1, _ = video_scores(gt, argmax_predictions(scores)[secs], t.num_classes)
                        accs.append(acc)
                        f1s.append(f1)
                    rows.append({"step": step, "dataset": t.name, "split": self.split, "space": space,
                                 "prompts": self.prompts, "accuracy": round(100 * float(np.mean(accs)), 3),
                                 "f1": round(100 * float(np.nanmean(f1s)), 3)})
            return rows
        finally:
            model.train()
