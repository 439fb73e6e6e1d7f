"""`data:` where the lecture corpus and the target datasets live (`hecvl acquire`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, model_validator

from hecvl.config.base import Section, reason

FORMATS: tuple[str, ...] = ("cholec80", "autolaparo", "multibypass140")
CENTRES: tuple[str, ...] = ("strasbourg", "bern")


class SyntheticSettings(Section):
    """The embedded synthetic world (`hecvl synth`), generated when data.source is synthetic."""

    preset: Literal["smoke", "default"] = reason("smoke: 3 short lectures for tests; default: the study",
                                                 "default")
    seed: int = 0
    scale: PositiveFloat = reason("multiplies the number of lectures (targets keep their size)", 1.0)
    narration_relevance: float = reason("fraction of narration sentences that describe what is visible",
                                        0.5, ge=0, le=1)


class TargetSettings(Section):
    """One target dataset in its published layout (docs/protocol.md §4); paths relative to `root`."""

    format: Literal["cholec80", "autolaparo", "multibypass140"]
    root: str = Field(min_length=1)
    videos: str = reason("video file pattern with {video}", "videos/{video}.mp4")
    labels: str = reason("folder of the label files")
    splits: str = reason('a JSON {split: [video ids]} inside root, or "official"')
    centre: Literal["strasbourg", "bern"] | None = reason("MultiBypass140 only: which hospital", None)
    fold: NonNegativeInt = reason("MultiBypass140 official split fold", 0)
    split_pickles: str = reason("MultiBypass140 official split pickles", "labels/{centre}/labels_by70_splits")
    tables: str = reason("MultiBypass140 class tables (phase.csv)", "tables")
    ignore: tuple[str, ...] | None = reason(
        "classes left out of the protocol (their frames unscored, never predicted); null = the published "
        "protocol's: MultiBypass140 drops other_intervention, the others none", None)

    @model_validator(mode="after")
    def _consistent(self) -> TargetSettings:
        if "{video}" not in self.videos:
            raise ValueError(f"videos must contain '{{video}}', got {self.videos!r}")
        if self.centre is not None and self.format != "multibypass140":
            raise ValueError(f"centre is for the multibypass140 format, not {self.format}")
        return self


class DataSettings(Section):
    source: Literal["synthetic", "local"] = reason(
        "synthetic: generate the embedded world; local: use the paths below as given", "synthetic")
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)
    root: str = reason("the generated world (or your local copies)", "data/world")
    corpus: str = reason("lecture corpus: one folder per lecture (README, 'Lecture corpus format')",
                         "data/world/corpus")
    targets: dict[str, TargetSettings] = reason("target datasets for zero-shot evaluation, by name",
                                                default_factory=dict)
