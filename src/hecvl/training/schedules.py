"""Which level(s) each optimizer step trains: the four pretraining schedules of the study.

A schedule is a pure function of the settings (and, for `epoch_alternation`, of how many batches
one pass over each level's pairs takes), so a run is a deterministic sequence step -> levels. That
is what makes a resumed run bit-identical to an uninterrupted one: the data position of every level
is recomputed from the step alone.

- `fine_to_coarse` (HecVL): m clip batches, then n phase batches, then l video batches, repeated,
  so the fine level keeps being revisited and is not forgotten.
- `joint`: every step sees one batch of every level; the losses are summed with per-level weights.
- `clip_only`: the SurgVLP-style baseline, clip-narration pairs only.
- `epoch_alternation`: as the authors' public code is described (the training script itself is not
  public in full): every epoch is one pass over the clip pairs; every `phase_every`-th epoch also
  makes one pass over the phase pairs and every `video_every`-th epoch one over the video pairs,
  in fine-to-coarse order within the epoch. Epochs count from 0, so epoch 0 trains all three levels.

`train.levels` (default all three) restricts any schedule to a subset, e.g. `[clip, phase]` for the
clip + phase ablation: the other levels' batches are simply left out of the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hecvl.errors import HecvlError

LEVELS: tuple[str, ...] = ("clip", "phase", "video")
SCHEDULES: tuple[str, ...] = ("fine_to_coarse", "joint", "clip_only", "epoch_alternation")


@dataclass(frozen=True)
class Schedule:
    """The levels trained at every optimizer step of a run (`plan[step]`, steps counted from 0)."""

    name: str
    plan: tuple[tuple[str, ...], ...]
    weights: Mapping[str, float]

    def levels_at(self, step: int) -> tuple[str, ...]:
        return self.plan[step]

    @property
    def levels(self) -> tuple[str, ...]:
        """The levels this schedule ever trains, in fine-to-coarse order."""
        used = {lvl for step in self.plan for lvl in step}
        return tuple(lvl for lvl in LEVELS if lvl in used)

    def batches_before(self, step: int) -> dict[str, int]:
        """How many batches of each level steps 0..step-1 consumed: the data position at `step`."""
        counts = dict.fromkeys(LEVELS, 0)
        for levels in self.plan[:step]:
            for lvl in levels:
                counts[lvl] += 1
        return counts

    def counts(self) -> dict[str, int]:
        """Batches of each level over the whole run."""
        return self.batches_before(len(self.plan))


def _positive_int(value: Any, name: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        raise HecvlError(f"train.{name} must be an integer {bound}, got {value!r}")
    return value


def build_schedule(
    train_cfg: Mapping[str, Any],
    steps: int,
    batches_per_epoch: Mapping[str, int] | None = None,
) -> Schedule:
    """The schedule named by `train_cfg["schedule"]`, expanded over `steps` optimizer steps.

    `batches_per_epoch[level]` is needed by `epoch_alternation` only (one pass over each level).
    """
    name = train_cfg.get("schedule", "fine_to_coarse")
    steps = _positive_int(steps, "steps")
    enabled = _levels(train_cfg)
    weights = {lvl: float((train_cfg.get("level_weights") or {}).get(lvl, 1.0)) for lvl in LEVELS}
    if name == "fine_to_coarse":
        alt = train_cfg.get("alternation") or {}
        block: list[tuple[str, ...]] = []
        for lvl in LEVELS:
            count = _positive_int(alt.get(lvl, 1), f"alternation.{lvl}", allow_zero=True)
            block += [(lvl,)] * (count if lvl in enabled else 0)
        if not block:
            raise HecvlError("train.alternation gives no batches to any of train.levels")
        plan = [block[s % len(block)] for s in range(steps)]
    elif name == "joint":
        active = tuple(lvl for lvl in LEVELS if weights[lvl] > 0 and lvl in enabled)
        if not active:
            raise HecvlError("train.level_weights must give at least one of train.levels a positive weight")
        plan = [active] * steps
    elif name == "clip_only":
        if "clip" not in enabled:
            raise HecvlError("the clip_only schedule needs clip in train.levels")
        plan = [("clip",)] * steps
    elif name == "epoch_alternation":
        plan = _epoch_alternation(train_cfg, steps, batches_per_epoch, enabled)
    else:
        raise HecvlError(f"unknown train.schedule {name!r} (known: {', '.join(SCHEDULES)})")
    return Schedule(name=name, plan=tuple(plan), weights=weights)


def _levels(train_cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """`train.levels`, validated, in fine-to-coarse order."""
    levels = train_cfg.get("levels") or list(LEVELS)
    if isinstance(levels, str) or not all(lvl in LEVELS for lvl in levels):
        raise HecvlError(f"train.levels must be a list drawn from {', '.join(LEVELS)}, got {levels!r}")
    return tuple(lvl for lvl in LEVELS if lvl in levels)


def _epoch_alternation(
    train_cfg: Mapping[str, Any],
    steps: int,
    batches_per_epoch: Mapping[str, int] | None,
    enabled: tuple[str, ...],
) -> list[tuple[str, ...]]:
    if not batches_per_epoch:
        raise HecvlError("the epoch_alternation schedule needs the number of batches per epoch of each level")
    cfg = train_cfg.get("epoch_alternation") or {}
    every = {
        "clip": 1,
        "phase": _positive_int(cfg.get("phase_every", 3), "epoch_alternation.phase_every"),
        "video": _positive_int(cfg.get("video_every", 5), "epoch_alternation.video_every"),
    }
    for lvl in enabled:
        _positive_int(batches_per_epoch.get(lvl, 0), f"batches per epoch of {lvl}")
    plan: list[tuple[str, ...]] = []
    epoch = 0
    while len(plan) < steps:
        for lvl in enabled:
            if epoch % every[lvl] == 0:
                plan += [(lvl,)] * batches_per_epoch[lvl]
        epoch += 1
    return plan[:steps]
