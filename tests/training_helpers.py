"""The smoke world for the training tests: generated once per test session, paired, and a small params file.

`hecvl synth --preset smoke` (3 lectures of ~35 s, real H.264 videos) and `hecvl pair` run in-process;
the parameters are the project's params.yaml with tiny batches, few frames and few steps, so each
training test runs in seconds on 2 CPU cores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from hecvl.cli import main
from hecvl.config import deep_merge, load_params

ROOT = Path(__file__).resolve().parents[1]

# Few frames and tiny global batches (even sizes, so 2-process DDP splits them); the smoke corpus has
# 3 lectures: ~19 clip pairs, ~19 phase pairs, 3 video pairs.
SMALL: dict[str, Any] = {
    "train": {
        "schedule": "fine_to_coarse",
        "levels": ["clip", "phase", "video"],
        "steps": 8,
        "alternation": {"clip": 2, "phase": 1, "video": 1},
        "batch_size": {"clip": 8, "phase": 8, "video": 2},
        "grad_accum": 1,
        "lr": 2.0e-3,
        "warmup_steps": 2,
        "min_lr_ratio": 0.1,
        "grad_clip": 1.0,
        "precision": "auto",
        "device": "cpu",
        "num_workers": 0,
        "threads": 1,  # tiny tensors: one thread is several times faster than two on shared cores
        "checkpoint_every": 2,
        "keep_checkpoints": 2,
        "validation": {"every": 0},  # on in test_training_validation.py, which points data at the world
    },
    "pairing": {"clip": {"frames": 2}, "phase": {"frames": 4}, "video": {"frames": 4}},
    "model": {"visual": {"image_size": 32}},
    # training frames are resized as the evaluation's: the default 103x183 -> 64 proportions at 32 px
    "frames": {"transform": {"size": [52, 92], "crop": 32}},
}


def smoke_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """corpus, pairs and params of the session's smoke world (built on first use)."""
    base = tmp_path_factory.getbasetemp() / "training_smoke"
    done = base / "ready"
    if not done.exists():
        previous = os.environ.get("HECVL_TRACKING")
        os.environ["HECVL_TRACKING"] = "off"  # building the fixture is not a tracked run
        try:
            assert main(["synth", "--preset", "smoke", "--seed", "0", "--out", str(base / "world")]) == 0
            params = write_params(base / "params.yaml", base / "frames")
            corpus = base / "world" / "corpus"
            assert main(["pair", str(corpus), "--params", str(params), "--out", str(base / "pairs"),
                         "--no-progress"]) == 0
        finally:
            if previous is None:
                os.environ.pop("HECVL_TRACKING", None)
            else:
                os.environ["HECVL_TRACKING"] = previous
        done.touch()
    return {"corpus": base / "world" / "corpus", "pairs": base / "pairs", "params": base / "params.yaml",
            "frames": base / "frames"}


def small_params(frames: Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The project's params (active preset applied) with SMALL and `overrides` on top; the training
    frame store and the shared caches go to `frames` (a test folder, never the project's data/)."""
    own = {"train": {"store": {"root": str(frames / "store")}}, "frames": {"cache": str(frames)}}
    small = deep_merge(SMALL, own)
    merged = deep_merge(deep_merge(load_params(ROOT / "params.yaml").to_dict(), small), overrides or {})
    merged["preset"] = None  # already applied: the written file must not apply it again
    return merged


def write_params(path: Path, frames: Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """`small_params(frames, overrides)` as a params file for the command line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(small_params(frames, overrides), sort_keys=False), encoding="utf-8")
    return path
