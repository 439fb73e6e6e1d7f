"""The synthetic world's public entry points: generate, reuse an identical one, check.

`ensure_world` is what the study's acquire stage calls: it regenerates only when the folder does not
already hold a world with the same generator, data files and settings, and every listed file intact.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hecvl.io import sha256_file
from hecvl.synth import vocab
from hecvl.synth.generate import GENERATOR, GENERATOR_VERSION, generate_world, world_params

log = logging.getLogger(__name__)

__all__ = [
    "ensure_world",
    "existing_world",
    "failed_criteria",
    "format_report",
    "generate_world",
    "run_check",
]


def existing_world(root: str | Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of the world at `root` if it was made with these settings and is intact, else None."""
    path = Path(root) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    gen = manifest.get("generator") or {}
    same = (
        gen.get("name") == GENERATOR
        and gen.get("version") == GENERATOR_VERSION
        and gen.get("data_sha256") == vocab.data_digest()
        and manifest.get("params") == params
    )
    if not same:
        return None
    for rel, digest in (manifest.get("files") or {}).items():
        file = Path(root) / rel
        if not file.is_file() or sha256_file(file) != digest:
            log.info("synthetic world at %s: %s changed or missing, regenerating", root, rel)
            return None
    return manifest


def ensure_world(
    root: str | Path,
    preset: str = "default",
    seed: int = 0,
    scale: float = 1,
    narration_relevance: float | None = None,
    workers: int = 2,
    lecture_video: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Generate the world at `root` unless an identical, intact one is already there; returns its manifest.
    `lecture_video` (data.synthetic.lecture_video) is part of the compared settings."""
    relevance = 0.5 if narration_relevance is None else float(narration_relevance)
    params = world_params(preset, seed, scale, relevance, lecture_video)
    manifest = existing_world(root, params)
    if manifest is not None:
        log.info("synthetic world at %s is up to date (%s)", root, params)
        return manifest
    return generate_world(root, preset, seed, scale, relevance, workers=workers, lecture_video=lecture_video)


def run_check(world: str | Path, progress: bool = False, transform: Any = None) -> dict[str, Any]:
    """The world's sanity figures and criteria (see hecvl.synth.check; imported lazily: it needs
    scikit-learn). `transform` (a hecvl.video.FrameTransform) defaults to check.MODEL_INPUT."""
    from hecvl.synth import check

    return check.run_check(world, progress=progress, transform=transform or check.MODEL_INPUT)


def failed_criteria(report: dict[str, Any]) -> list[str]:
    """The criteria of a check report that fail (`name[item]`); empty when the world passes."""
    from hecvl.synth.check import failed_criteria as _failed

    return _failed(report)


def format_report(report: dict[str, Any]) -> str:
    from hecvl.synth.check import format_report as _format_report

    return _format_report(report)
