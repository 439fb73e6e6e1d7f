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

Epochs (`train.epochs`, the paper's "200 epochs"): an epoch is one pass over the pairs of the finest level
the run trains (clip, whenever it is trained: the finest and most numerous pairs), and a run of E epochs
lasts the fewest whole schedule units in which that level is given E passes' worth of batches
(`steps_for_epochs`). Per schedule:
- `fine_to_coarse`: whole m/n/l cycles, ceil(E * clip batches per epoch / m) of them; the coarser levels
  get the n and l batches of those cycles (more or fewer passes than E, as m/n/l and the corpus decide);
- `joint`, `clip_only`: E * clip batches per epoch steps (joint: every level a batch each step);
- `epoch_alternation`: E of its own epochs (each one clip pass, plus the phase and video passes due).
Without the clip level the next finest (phase) counts the passes the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hecvl.config import LEVELS, SCHEDULES, TrainSettings
from hecvl.errors import HecvlError

__all__ = ["LEVELS", "SCHEDULES", "Schedule", "build_schedule", "steps_for_epochs"]


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


def build_schedule(
    train: TrainSettings,
    steps: int,
    batches_per_epoch: Mapping[str, int] | None = None,
) -> Schedule:
    """The schedule `train.schedule`, expanded over `steps` optimizer steps (the settings are validated:
    every level of `train.levels` is known and the schedule trains at least one of them).

    `batches_per_epoch[level]` is needed by `epoch_alternation` only (one pass over each level).
    """
    if steps < 1:
        raise HecvlError(f"a schedule needs at least 1 step, got {steps}")
    enabled = train.trained_levels  # fine to coarse, each given batches by the schedule
    weights = {lvl: float(w) for lvl, w in train.level_weights.items()}
    if train.schedule == "fine_to_coarse":
        block = [(lvl,) for lvl in enabled for _ in range(train.alternation[lvl])]
        plan = [block[s % len(block)] for s in range(steps)]
    elif train.schedule == "epoch_alternation":
        plan = _epoch_alternation(train, steps, batches_per_epoch, enabled)
    else:  # joint: every trained level each step; clip_only: the clip level
        plan = [enabled] * steps
    return Schedule(name=train.schedule, plan=tuple(plan), weights=weights)


def steps_for_epochs(train: TrainSettings, batches_per_epoch: Mapping[str, int]) -> int:
    """The run's length in optimizer steps: `train.steps`, or with `train.epochs` set the fewest whole
    schedule units (see the module's docstring) in which the finest trained level gets `epochs` passes.

    `batches_per_epoch[level]`: optimizer steps of that level per pass over its pairs (what
    `build_schedule` takes); the finest trained level's is needed, every trained level's under
    `epoch_alternation`. Call it before the schedule and the optimizer's learning-rate curve are built.
    """
    epochs = train.epochs
    if epochs is None:
        return train.steps
    enabled = train.trained_levels
    finest = enabled[0]
    needed = enabled if train.schedule == "epoch_alternation" else (finest,)
    for lvl in needed:
        if int(batches_per_epoch.get(lvl, 0)) < 1:
            raise HecvlError(f"train.epochs: the {lvl} level has no batches per epoch (not one full batch)")
    per = {lvl: int(batches_per_epoch[lvl]) for lvl in needed}
    passes = epochs * per[finest]  # batches of the finest level the run must give
    if train.schedule == "fine_to_coarse":
        cycle = sum(train.alternation[lvl] for lvl in enabled)
        return -(-passes // train.alternation[finest]) * cycle
    if train.schedule == "epoch_alternation":
        every = _alternation_every(train)
        last = (epochs - 1) * every[finest]  # the schedule epoch of the finest level's last pass
        return sum(per[lvl] for e in range(last + 1) for lvl in enabled if e % every[lvl] == 0)
    return passes  # joint, clip_only: one batch of the finest level every step


def _alternation_every(train: TrainSettings) -> dict[str, int]:
    """epoch_alternation: each level trains on the schedule epochs divisible by this."""
    alt = train.epoch_alternation
    return {"clip": 1, "phase": alt.phase_every, "video": alt.video_every}


def _epoch_alternation(
    train: TrainSettings,
    steps: int,
    batches_per_epoch: Mapping[str, int] | None,
    enabled: tuple[str, ...],
) -> list[tuple[str, ...]]:
    if not batches_per_epoch:
        raise HecvlError("the epoch_alternation schedule needs the number of batches per epoch of each level")
    every = _alternation_every(train)
    for lvl in enabled:
        if batches_per_epoch.get(lvl, 0) < 1:
            raise HecvlError(f"the {lvl} level has no batches per epoch")
    plan: list[tuple[str, ...]] = []
    epoch = 0
    while len(plan) < steps:
        for lvl in enabled:
            if epoch % every[lvl] == 0:
                plan += [(lvl,)] * batches_per_epoch[lvl]
        epoch += 1
    return plan[:steps]
