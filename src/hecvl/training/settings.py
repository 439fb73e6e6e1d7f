"""The `train:` section of params.yaml as one validated dataclass.

Unknown keys and wrongly typed values are errors (a typo such as `grad_clp: 0` must not silently
train with the default), and every value the trainer uses is read here, once.

`mil_nce` (off by default: HecVL's clip level is InfoNCE with one narration per clip): MIL-NCE
(Miech et al., CVPR 2020) over each clip's bag of nearby narrations, `enabled`, `context_s` (seconds
a narration may lie outside the drawn clip and still count) and `max_texts` (bag size cap, also the
fixed padding width under DDP); see `hecvl.pairing.positives` and `hecvl.training.step`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hecvl.errors import HecvlError
from hecvl.pairing.positives import PositiveRule
from hecvl.training.schedules import LEVELS, SCHEDULES

# Settings that change how a run executes but not what it computes: a resume may differ in these,
# and the workflow does not retrain a model when only they change.
OPERATIONAL = ("device", "gpus", "num_workers", "threads", "checkpoint_every", "keep_checkpoints",
               "log_every", "frame_cache_root", "frame_cache_max_gb", "text_cache")


def _per_level(**values: Any) -> dict[str, Any]:
    return dict(values)


@dataclass(frozen=True)
class TrainSettings:
    schedule: str = "fine_to_coarse"
    levels: tuple[str, ...] = LEVELS
    steps: int = 300
    alternation: dict[str, int] = field(default_factory=lambda: _per_level(clip=4, phase=2, video=1))
    level_weights: dict[str, float] = field(
        default_factory=lambda: _per_level(clip=1.0, phase=1.0, video=1.0)
    )
    epoch_alternation: dict[str, int] = field(default_factory=lambda: {"phase_every": 3, "video_every": 5})
    batch_size: dict[str, int] = field(default_factory=lambda: _per_level(clip=120, phase=80, video=25))
    grad_accum: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    precision: str = "auto"
    device: str = "auto"
    gpus: int = 1  # processes (GPUs) per job: the workflow launches torchrun with this many
    num_workers: int = 0
    threads: int = 0
    channels_last: bool = True
    frame_cache: bool = False
    frame_cache_fps: float = 0.0
    frame_cache_root: str = ""
    frame_cache_max_gb: float = 8.0
    text_cache: bool = False  # keep the frozen text encoder's corpus features on disk, beside the frame cache
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 1
    mil_nce: dict[str, Any] = field(
        default_factory=lambda: {"enabled": False, "context_s": 2.0, "max_texts": 4}
    )

    @classmethod
    def from_params(cls, params: Mapping[str, Any], steps: int | None = None) -> TrainSettings:
        """Settings from the resolved params' `train:` section; `steps` overrides `train.steps`."""
        section = dict(params.get("train") or {})
        if steps is not None:
            section["steps"] = steps
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise HecvlError(
                f"unknown setting(s) {', '.join('train.' + k for k in unknown)} (known: {', '.join(known)})"
            )
        defaults = cls()
        values: dict[str, Any] = {}
        for key, value in section.items():
            values[key] = _coerce(value, getattr(defaults, key), f"train.{key}")
        out = cls(**values)
        out.validate()
        return out

    def validate(self) -> None:
        if self.schedule not in SCHEDULES:
            raise HecvlError(f"train.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        bad = [lvl for lvl in self.levels if lvl not in LEVELS]
        if bad or not self.levels:
            raise HecvlError(f"train.levels must be drawn from {', '.join(LEVELS)}, got {list(self.levels)}")
        for name in ("steps", "grad_accum", "gpus", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise HecvlError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "num_workers", "warmup_steps", "threads"):
            if getattr(self, name) < 0:
                raise HecvlError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        for lvl in self.levels:
            size = self.batch_size.get(lvl)
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise HecvlError(f"train.batch_size.{lvl} must be a positive integer, got {size!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise HecvlError(f"train.precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.frame_cache_fps < 0:
            raise HecvlError(
                f"train.frame_cache_fps must be >= 0 (0 = the video's rate), got {self.frame_cache_fps}"
            )
        if self.grad_clip < 0:
            raise HecvlError(f"train.grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        try:  # the rule checks its own values, enabled or not (a typo must not wait for the day it is)
            self._positive_rule()
        except ValueError as exc:
            raise HecvlError(f"train.mil_nce.{exc}") from None

    def _positive_rule(self) -> PositiveRule:
        return PositiveRule(float(self.mil_nce["context_s"]), int(self.mil_nce["max_texts"]))

    @property
    def positives(self) -> PositiveRule | None:
        """The MIL-NCE bag rule of the clip level, or None when `mil_nce.enabled` is false (InfoNCE)."""
        return self._positive_rule() if self.mil_nce["enabled"] else None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["levels"] = list(self.levels)
        out["betas"] = list(self.betas)
        return out


def _coerce(value: Any, default: Any, name: str) -> Any:
    """Check a value against its default's type (YAML ints accepted for floats; lists for tuples)."""
    if isinstance(default, bool) or isinstance(value, bool):
        if not (isinstance(default, bool) and isinstance(value, bool)):
            raise HecvlError(f"{name} has the wrong type: {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int | float):
        return float(value)
    if isinstance(default, int) and isinstance(value, int):
        return value
    if isinstance(default, str) and isinstance(value, str):
        return value
    if isinstance(default, tuple) and isinstance(value, list | tuple):
        return tuple(value)
    if isinstance(default, dict) and isinstance(value, Mapping):
        unknown = sorted(set(value) - set(default))
        if unknown:
            raise HecvlError(f"unknown key(s) {', '.join(unknown)} in {name} (known: {', '.join(default)})")
        merged = dict(default)
        for key, item in value.items():
            merged[key] = _coerce(item, default[key], f"{name}.{key}")
        return merged
    raise HecvlError(f"{name} has the wrong type: {value!r} (expected like {default!r})")
