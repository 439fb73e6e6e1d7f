"""`train:` pretraining (`hecvl pretrain`). Defaults: the CPU study; `preset: paper` the paper's."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from hecvl.config.base import LEVELS, LevelCounts, LevelSizes, LevelWeights, Section, reason
from hecvl.config.store import FrameStoreSettings

SCHEDULES: tuple[str, ...] = ("fine_to_coarse", "joint", "clip_only", "epoch_alternation")

# Settings that change how a run executes but not what it computes: a resume may differ in these, and
# the workflow does not retrain a model when only they change (see `hecvl.config.identity`).
OPERATIONAL = ("device", "gpus", "num_workers", "threads", "checkpoint_every", "keep_checkpoints",
               "log_every", "text_cache", "store.root", "store.max_gib")

# Settings added after runs existed: dumped only when set, so the run keys of runs without them stay.
OMITTED_WHEN_NULL = ("chunk", "epochs")


class EpochAlternation(Section):
    """epoch_alternation, as the public code: clip every epoch, phase every n-th, video every m-th."""

    phase_every: PositiveInt = 3
    video_every: PositiveInt = 5


class MilNce(Section):
    """Clip level: MIL-NCE (Miech et al., CVPR 2020) over nearby narrations instead of InfoNCE (paper)."""

    enabled: bool = reason("true: positives = the clip's narration + its lecture's narrations near it", False)
    context_s: NonNegativeFloat = reason("a narration counts when (start - context_s, end + context_s) "
                                         "overlaps the clip", 2.0, allow_inf_nan=False)
    max_texts: PositiveInt = reason("positives per clip, own first (public MIL-NCE code: 4); also the "
                                    "fixed bag width DDP ranks all-gather", 4)


class ValidationSettings(Section):
    """Zero-shot on the targets' validation split while pretraining (`hecvl.evaluation.validation`)."""

    every: NonNegativeInt = reason("steps between validations (and at step 0 and the last); 0 = off", 50)
    split: str = reason("the targets' split scored; never the test split the study reports", "val",
                        min_length=1)
    datasets: tuple[str, ...] | None = reason(
        "null = the study's datasets (study.datasets) the user configured: under data.targets and, with "
        "data.source local, on disk (none: validation off, one log line)", None)

    @field_validator("split")
    @classmethod
    def _not_test(cls, split: str) -> str:
        if split == "test":
            raise ValueError("must not be the test split: a budget chosen on it would be fitted to it")
        return split


class TrainSettings(Section):
    schedule: Literal["fine_to_coarse", "joint", "clip_only", "epoch_alternation"] = reason(
        "fine_to_coarse: HecVL; joint: all levels every step; clip_only: SurgVLP-style baseline",
        "fine_to_coarse")
    levels: tuple[Literal["clip", "phase", "video"], ...] = reason(
        "levels the schedule may train (the clip+phase ablation drops video)", LEVELS, min_length=1)
    steps: PositiveInt = reason(
        "optimizer steps: a count, not a time budget (bit-identical reruns); 600: where the CPU study's "
        "validation accuracy has plateaued (results/paper/convergence.png)", 600)
    epochs: PositiveInt | None = reason(
        "the run's length in passes over the data (the paper: 200): the finest level the run trains (clip, "
        "normally) makes this many passes, in whole schedule units (`schedules.steps_for_epochs`); the steps "
        "follow from the corpus and are logged; null = train.steps counts steps", None)
    alternation: LevelCounts = reason(
        "fine_to_coarse: m clip, n phase, l video batches, repeated (not published for HecVL; the "
        "successor used 25/15/115)", LevelCounts(clip=4, phase=2, video=1))
    level_weights: LevelWeights = reason("joint: per-level loss weights", default_factory=LevelWeights)
    epoch_alternation: EpochAlternation = Field(default_factory=EpochAlternation)
    batch_size: LevelSizes = reason("GLOBAL batch per level, split over DDP ranks (paper: 120 / 80 / 25)",
                                    LevelSizes(clip=64, phase=16, video=8))
    grad_accum: PositiveInt = reason("micro-batches per step (negatives stay per micro-batch)", 1)
    chunk: PositiveInt | None = reason(
        "frames (trainable texts) per encoder pass of a two-pass gradient-cache step: the whole batch's "
        "negatives in the memory of one chunk, ~1.33x visual compute; null = off (one pass)", None)
    lr: PositiveFloat = reason("peak learning rate of a random-init CPU model (paper: 5e-5, pretrained)",
                               1e-3)
    weight_decay: NonNegativeFloat = reason("decoupled, on weight matrices and kernels only", 0.01)
    betas: tuple[float, float] = reason("AdamW betas", (0.9, 0.999))
    eps: PositiveFloat = 1e-8
    warmup_steps: NonNegativeInt = reason("linear warm-up, then cosine decay to min_lr_ratio * lr", 30)
    min_lr_ratio: float = reason("floor of the cosine decay, relative to lr", 0.0, ge=0, le=1)
    grad_clip: NonNegativeFloat = reason("max global gradient norm; 0 = off", 1.0)
    precision: Literal["auto", "fp32", "bf16"] = reason("auto: bf16 autocast on CUDA, fp32 on CPU", "auto")
    device: str = reason("auto (CUDA when available, else CPU) | cpu | cuda | cuda:N", "auto")
    gpus: PositiveInt = reason("processes per job: > 1 runs DDP under torchrun", 1)
    num_workers: NonNegativeInt = reason("loader worker processes per rank", 0)
    threads: NonNegativeInt = reason("torch intra-op threads per rank; 1: a 64 px step is too small for 2 "
                                     "threads to pay, so the study runs one job per core; 0 = torch's", 1)
    channels_last: bool = reason("NHWC kernels: same numbers up to rounding, ~1.3x faster on CPU", True)
    store: FrameStoreSettings = Field(default_factory=FrameStoreSettings)
    text_cache: bool = reason("frozen text encoder: corpus text features stored once per study (same bits)",
                              True)
    checkpoint_every: NonNegativeInt = reason("steps between resumable checkpoints (0 = only at the end)", 50)
    keep_checkpoints: PositiveInt = reason("newest kept (older good ones back up a corrupt one)", 2)
    log_every: PositiveInt = reason("steps between logged losses", 1)
    mil_nce: MilNce = Field(default_factory=MilNce)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)

    @model_serializer(mode="wrap")
    def _omit_when_off(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Settings added later (`OMITTED_WHEN_NULL`) are left out of the dumped settings while null, so
        runs without them keep their run keys (`hecvl.config.identity`) and train_config.json of before."""
        out = handler(self)
        for name in OMITTED_WHEN_NULL:
            if name in out and out[name] is None:
                del out[name]
        return out

    @field_validator("levels")
    @classmethod
    def _fine_to_coarse(cls, levels: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(levels)) != len(levels):
            raise ValueError(f"repeats a level: {list(levels)}")
        return tuple(lvl for lvl in LEVELS if lvl in levels)

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
            raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {device!r}")
        return device

    @model_validator(mode="after")
    def _schedule_trains_something(self) -> TrainSettings:
        if not self.trained_levels:
            raise ValueError({
                "fine_to_coarse": "alternation gives no batches to any of train.levels",
                "joint": "level_weights must give at least one of train.levels a positive weight",
                "clip_only": "the clip_only schedule needs clip in train.levels",
            }[self.schedule])
        return self

    @property
    def trained_levels(self) -> tuple[str, ...]:
        """The levels this run trains (fine to coarse): those of `levels` the schedule gives batches.
        The schedules (`hecvl.training.schedules`) and the evaluation's ensemble both follow it."""
        if self.schedule == "clip_only":
            return tuple(lvl for lvl in self.levels if lvl == "clip")
        if self.schedule == "fine_to_coarse":
            return tuple(lvl for lvl in self.levels if self.alternation[lvl] > 0)
        if self.schedule == "joint":
            return tuple(lvl for lvl in self.levels if self.level_weights[lvl] > 0)
        return self.levels

