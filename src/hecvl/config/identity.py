"""A run's identity: one hash of what decides a pretraining run's weights, for the DAG and the trainer.

Equal keys train identical models, so variants with equal keys share one run, and a checkpoint
resumes only a run with the same key. Execution-only settings (threads, caches, checkpoint interval:
`OPERATIONAL`) are not part of it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hecvl.config.train import OPERATIONAL

log = logging.getLogger(__name__)


def training_settings(params: Any) -> dict[str, Any]:
    """The resolved settings that decide a pretraining run: model, train (not operational), pairing, seed,
    and the frame resize (training frames are resized as the evaluation's, `frames.transform.size`)."""
    train = _without(params.train.to_dict(), OPERATIONAL)
    out = {"model": params.model.to_dict(), "train": train, "pairing": params.pairing.to_dict(),
           "seed": params.seed, "resize": params.frames.transform.to_dict()["size"]}
    datasets = validation_datasets(params) if params.train.validation.every else ()
    if datasets:  # what the run's validation.csv scores, and how (none: as with validation off)
        frames = {k: v for k, v in params.frames.to_dict().items() if k != "cache"}
        out["validation"] = {"datasets": list(datasets), "frames": frames,
                             "prompts": params.eval.prompts, "prompt_file": params.eval.prompt_file}
    return out


def _without(settings: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """`settings` less `names`, dotted for a nested setting (`store.root`)."""
    out = dict(settings)
    for name in names:
        head, _, rest = name.partition(".")
        if rest and isinstance(out.get(head), dict):
            out[head] = _without(out[head], (rest,))
        elif not rest:
            out.pop(head, None)
    return out


def validation_datasets(params: Any) -> tuple[str, ...]:
    """The datasets a run validates on: `train.validation.datasets` as given, or else the targets the user
    configured: those of `study.datasets` defined under `data.targets` and, with `data.source: local`
    (nothing is generated), whose root folder exists. A corpus-only setup, whose params still name the
    study's synthetic targets, then trains without validation instead of failing at step 0 on a missing
    splits file. A dataset left out, or validation off for want of any, is one log line (once per process).
    """
    chosen = params.train.validation.datasets
    if chosen is not None:
        if not chosen:
            _note("validation off: train.validation.datasets is empty")
        return tuple(chosen)
    targets, source = params.data.targets, params.data.source
    missing = {name: "not under data.targets" for name in params.study.datasets if name not in targets}
    if source == "local":
        missing.update({name: f"no folder {targets[name].root}" for name in params.study.datasets
                        if name in targets and not Path(targets[name].root).is_dir()})
    found = tuple(name for name in params.study.datasets if name not in missing)
    if missing and params.train.validation.every:
        why = "; ".join(f"{name}: {reason}" for name, reason in missing.items())
        _note(f"validation on {', '.join(found)} only ({why})" if found else
              f"validation off: no target dataset of study.datasets is configured ({why})")
    return found


@functools.cache
def _note(message: str) -> None:
    log.info(message)


def run_key(params: Any, manifests: Mapping[str, str] | None = None) -> str:
    """SHA-256 of `training_settings` (and, for the trainer, the pair manifests' own hashes)."""
    blob: dict[str, Any] = dict(training_settings(params))
    if manifests is not None:
        blob["manifests"] = dict(manifests)
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()
