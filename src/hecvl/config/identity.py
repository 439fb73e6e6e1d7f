"""A run's identity: one hash of what decides a pretraining run's weights, for the DAG and the trainer.

Equal keys train identical models, so variants with equal keys share one run, and a checkpoint
resumes only a run with the same key. Execution-only settings (threads, caches, checkpoint interval:
`OPERATIONAL`) are not part of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from hecvl.config.train import OPERATIONAL


def training_settings(params: Any) -> dict[str, Any]:
    """The resolved settings that decide a pretraining run: model, train (not operational), pairing, seed,
    and the frame resize (training frames are resized as the evaluation's, `frames.transform.size`)."""
    train = {k: v for k, v in params.train.to_dict().items() if k not in OPERATIONAL}
    out = {"model": params.model.to_dict(), "train": train, "pairing": params.pairing.to_dict(),
           "seed": params.seed, "resize": params.frames.transform.to_dict()["size"]}
    if params.train.validation.every:  # what the run's validation.csv scores, and how
        frames = {k: v for k, v in params.frames.to_dict().items() if k != "cache"}
        out["validation"] = {"datasets": list(validation_datasets(params)), "frames": frames,
                             "prompts": params.eval.prompts, "prompt_file": params.eval.prompt_file}
    return out


def validation_datasets(params: Any) -> tuple[str, ...]:
    """The datasets a run validates on: train.validation.datasets, or the study's."""
    chosen = params.train.validation.datasets
    return tuple(params.study.datasets if chosen is None else chosen)


def run_key(params: Any, manifests: Mapping[str, str] | None = None) -> str:
    """SHA-256 of `training_settings` (and, for the trainer, the pair manifests' own hashes)."""
    blob: dict[str, Any] = dict(training_settings(params))
    if manifests is not None:
        blob["manifests"] = dict(manifests)
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()
