"""`study:` the design: what is compared, on which datasets, over which seeds; and `ablations:`."""

from __future__ import annotations

from pydantic import Field

from hecvl.config.base import Section, reason

REFERENCES: tuple[str, ...] = ("untrained", "linear_probe")


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
    ablation_seeds: tuple[int, ...] = reason("single runs swing: read ablations with care", (0,),
                                             min_length=1)
    main_variant: str = "hecvl"
    baseline_variant: str = "clip_only"
    ablations: tuple[str, ...] | None = reason(
        "built by `rule all` and in the ablation table; others are targets on demand; null = all", None)
    noise: NoiseSettings = Field(default_factory=NoiseSettings)


class AblationSpec(Section):
    """One ablation: its variants x test-time options (space, prompts), and reference models."""

    variants: tuple[str, ...] = ()
    spaces: tuple[str, ...] | None = reason("null = each variant's eval.space", None)
    prompts: tuple[str, ...] | None = reason("null = each variant's eval.prompts", None)
    references: tuple[str, ...] = reason("untrained | linear_probe", ())
    seeds: tuple[int, ...] | None = reason("null = study.ablation_seeds", None)
