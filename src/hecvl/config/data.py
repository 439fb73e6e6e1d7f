"""`data:` where the lecture corpus and the target datasets live (`hecvl acquire`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hecvl.config.base import Section, reason

FORMATS: tuple[str, ...] = ("cholec80", "autolaparo", "multibypass140", "generic")
# The generic format's layout (README, "Evaluate a model on your dataset"): what a target leaves out.
GENERIC_DEFAULTS: dict[str, str] = {"videos": "videos/{video}.*", "labels": "labels", "splits": "splits.json"}
CENTRES: tuple[str, ...] = ("strasbourg", "bern")


class SyntheticSettings(Section):
    """The embedded synthetic world (`hecvl synth`), generated when data.source is synthetic."""

    preset: Literal["smoke", "default"] = reason("smoke: 3 short lectures for tests; default: the study",
                                                 "default")
    seed: int = 0
    scale: PositiveFloat = reason("multiplies the number of lectures (targets keep their size)", 1.0)
    narration_relevance: float = reason("fraction of narration sentences that describe what is visible",
                                        0.5, ge=0, le=1)


# Defaults that depend on the format, resolved by TargetSettings._layout_default once the format is known.
_UNSET = "<format default>"
PUBLISHED_DEFAULTS: dict[str, str | None] = {"videos": "videos/{video}.mp4", "labels": None, "splits": None}


def _generic_schema(schema: dict[str, Any]) -> None:
    """In the schema as in validation, a generic target may leave out labels and splits."""
    for key, default in PUBLISHED_DEFAULTS.items():
        schema["properties"][key].pop("default", None)
        if default is not None:
            schema["properties"][key]["default"] = default
    schema["if"] = {"properties": {"format": {"not": {"const": "generic"}}}}
    schema["then"] = {"required": ["labels", "splits"]}


class TargetSettings(Section):
    """One target dataset in its published layout (docs/protocol.md §4); paths relative to `root`."""

    model_config = ConfigDict(**Section.model_config, json_schema_extra=_generic_schema)

    format: Literal["cholec80", "autolaparo", "multibypass140", "generic"]
    root: str = Field(min_length=1)
    videos: str = reason("video file pattern with {video}; a '.*' extension: any of .mp4 .mkv .webm .avi "
                         ".mov (generic default: videos/{video}.*)", _UNSET)
    labels: str = reason("folder of the label files (generic default: labels)", _UNSET)
    splits: str = reason('a JSON {split: [video ids]} inside root, or "official" (generic default: '
                         'splits.json)', _UNSET)
    centre: Literal["strasbourg", "bern"] | None = reason("MultiBypass140 only: which hospital", None)
    fold: NonNegativeInt = reason("MultiBypass140 official split fold", 0)
    split_pickles: str = reason("MultiBypass140 official split pickles", "labels/{centre}/labels_by70_splits")
    tables: str = reason("MultiBypass140 class tables (phase.csv)", "tables")
    ignore: tuple[str, ...] | None = reason(
        "classes left out of the protocol (their frames unscored, never predicted); null = the published "
        "protocol's: MultiBypass140 drops other_intervention, generic the ignore list of its classes.yaml, "
        "the others none", None)

    @field_validator("videos", "labels", "splits", mode="before")
    @classmethod
    def _layout_default(cls, value: Any, info: ValidationInfo) -> Any:
        """A generic dataset folder needs only its format and root (the rest is its layout); the published
        layouts need labels and splits."""
        if value != _UNSET:
            return value
        name = str(info.field_name)
        default = GENERIC_DEFAULTS[name] if info.data.get("format") == "generic" else PUBLISHED_DEFAULTS[name]
        if default is None:
            raise PydanticCustomError("missing", "Field required")
        return default

    @model_validator(mode="after")
    def _consistent(self) -> TargetSettings:
        if "{video}" not in self.videos:
            raise ValueError(f"videos must contain '{{video}}', got {self.videos!r}")
        if self.format == "generic" and self.splits == "official":
            raise ValueError("a generic dataset has no official split: give its splits JSON file")
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
