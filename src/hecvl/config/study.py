"""`study:` the design: what is compared, on which datasets, over which seeds; and `ablations:`."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator

from hecvl.config.base import Section, reason

REFERENCES: tuple[str, ...] = ("untrained", "linear_probe")
SeedSet = Literal["main", "ablation"]  # an ablation's `seeds:` by name: study.seeds, study.ablation_seeds
SEED_SETS: tuple[str, ...] = get_args(SeedSet)


class NoiseSettings(Section):
    """`snakemake narration_noise`: the synthetic world regenerated at each narration relevance."""

    relevance: tuple[float, ...] = reason("fractions of narrations that describe the picture",
                                          (0.25, 0.5, 0.8), min_length=1)
    variants: tuple[str, ...] | None = reason("pretrained and evaluated on each; null = baseline and main",
                                              None)
    seeds: tuple[int, ...] | None = reason("null = study.seeds", None)


class StudySettings(Section):
    name: str = reason("MLflow experiment name; one experiment per study", "hecvl-synthetic", min_length=1)
    datasets: tuple[str, ...] = reason("target datasets (names under data.targets)",
                                       ("cholec80", "autolaparo", "strasbypass70", "bernbypass70"),
                                       min_length=1)
    seeds: tuple[int, ...] = reason("the main comparison runs over every seed", (0, 1, 2), min_length=1)
    ablation_seeds: tuple[int, ...] | None = reason(
        "ablation blocks with `seeds: ablation` run on these (single runs swing: read them with care); "
        "null = the first of study.seeds, so choosing the main seeds chooses these too", None, min_length=1)
    main_variant: str = "hecvl"
    baseline_variant: str = "clip_only"
    ablations: tuple[str, ...] | None = reason(
        "built by `rule all` and in the ablation table; others are targets on demand; null = all", None)
    noise: NoiseSettings = Field(default_factory=NoiseSettings)

    def ablation_seed_list(self) -> tuple[int, ...]:
        """`ablation_seeds`, or the first main seed when it is null."""
        return self.ablation_seeds if self.ablation_seeds is not None else self.seeds[:1]


class AblationSpec(Section):
    """One ablation: its variants x test-time options (space, prompts), and reference models."""

    variants: tuple[str, ...] = ()
    spaces: tuple[str, ...] | None = reason("null = each variant's eval.space", None)
    prompts: tuple[str, ...] | None = reason("null = each variant's eval.prompts", None)
    references: tuple[str, ...] = reason("untrained | linear_probe", ())
    seeds: tuple[int, ...] | SeedSet = reason(
        "main = study.seeds, so cutting those cuts this block too; ablation = study.ablation_seeds; "
        "or a list of seeds", "main")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_set(cls, value: Any) -> Any:
        """One line for a typo (`mian`) or a list that is not seeds, instead of one error per union arm."""
        names = ", ".join(SEED_SETS)
        if isinstance(value, str) and value in SEED_SETS:
            return value
        if isinstance(value, list | tuple) and value and all(type(s) is int for s in value):
            return tuple(value)  # strict validation after this one takes a tuple, not a list
        raise ValueError(f"must be {names} or a non-empty list of integer seeds, got {value!r}")

    def seed_list(self, study: StudySettings) -> tuple[int, ...]:
        """The seeds this block runs, its name resolved against the study's settings."""
        if isinstance(self.seeds, tuple):
            return self.seeds
        return study.seeds if self.seeds == "main" else study.ablation_seed_list()
