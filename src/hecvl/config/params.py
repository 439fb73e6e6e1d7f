"""The whole of params.yaml as one typed model: the sections, the variants, the ablations, the presets."""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr, model_validator

from hecvl.config.base import Section, reason
from hecvl.config.data import DataSettings
from hecvl.config.evaluation import SPACES, STYLES, EvalSettings
from hecvl.config.frames import FramesSettings
from hecvl.config.model import ModelConfig
from hecvl.config.pairing import PairingRules
from hecvl.config.released import ReleasedSettings
from hecvl.config.study import REFERENCES, AblationSpec, StudySettings
from hecvl.config.train import TrainSettings
from hecvl.config.validate import deep_merge, validate_section, validate_with
from hecvl.errors import HecvlError

# The sections a variant may override: what one run computes (the study's design is not per variant).
RUN_SECTIONS = ("seed", "data", "model", "train", "pairing", "frames", "eval", "released")


class Params(Section):
    """A resolved configuration: the active preset and the command line's overrides already applied.

    `variants` stay overrides (a variant is "the main configuration plus these changes"); `variant(name)`
    gives the configuration one variant's jobs run with.
    """

    preset: str | None = reason("the preset that was applied (a resolved file has it applied already)", None)
    seed: int = reason("top-level seed of a run (the study's jobs pass their own)", 0)
    study: StudySettings = Field(default_factory=StudySettings)
    data: DataSettings = Field(default_factory=DataSettings)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainSettings = Field(default_factory=TrainSettings)
    pairing: PairingRules = Field(default_factory=PairingRules)
    frames: FramesSettings = Field(default_factory=FramesSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    released: ReleasedSettings = Field(default_factory=ReleasedSettings)
    variants: dict[str, dict[str, Any]] = reason(
        "named overrides of the sections above; the main configuration is variant `main`",
        default_factory=dict)
    ablations: dict[str, AblationSpec] = reason("each a target `ablation_<name>`", default_factory=dict)
    presets: dict[str, dict[str, Any]] = reason("overrides applied first, selected by `preset:`",
                                                default_factory=dict)

    _variant_cache: dict[str, Params] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _names_exist(self) -> Params:
        """Every name the study uses is defined (a typo here would only fail when its job starts).

        study.datasets is checked against data.targets by `Study` (a file for one stage run by hand
        may define only the targets it needs).
        """
        def check(names: Any, known: Any, where: str, what: str) -> None:
            for name in names or ():
                if name not in known:
                    known_names = ", ".join(sorted(known)) or "none"
                    raise ValueError(f"{where} names {what} {name!r} (known: {known_names})")

        s = self.study
        if self.variants:
            check([s.main_variant, s.baseline_variant], self.variants, "study", "an undefined variant")
            check(s.noise.variants, self.variants, "study.noise.variants", "an undefined variant")
        check(s.ablations, self.ablations, "study.ablations", "an undefined ablation")
        for name, spec in self.ablations.items():
            check(spec.variants, self.variants, f"ablations.{name}.variants", "an undefined variant")
            check(spec.references, REFERENCES, f"ablations.{name}.references", "an unknown reference")
            check(spec.spaces, SPACES, f"ablations.{name}.spaces", "a space")
            check(spec.prompts, STYLES, f"ablations.{name}.prompts", "a prompt style")
        for name, overrides in self.variants.items():
            check(overrides, RUN_SECTIONS, f"variants.{name}", "a section a variant cannot override:")
        return self

    @model_validator(mode="after")
    def _training_crop_fits(self) -> Params:
        """Training crops model.visual.image_size from frames resized to frames.transform.size."""
        size, crop = self.frames.transform.size, self.model.visual.image_size
        if size is not None and crop > min(size):
            raise ValueError(f"model.visual.image_size {crop} is larger than frames.transform.size "
                             f"{list(size)}, which training frames are resized to")
        return self

    def updated(self, changes: dict[str, Any]) -> Params:
        """This configuration with `changes` merged in (e.g. `{"train": {"steps": 5}}`), validated."""
        return validate_section(Params, deep_merge(self.to_dict(), changes), "", "overrides")

    def variant(self, name: str | None) -> Params:
        """The configuration of one variant's jobs (None or "main": the main configuration)."""
        return apply_variant(self, name)


def apply_variant(params: Params, name: str | None, source: str = "params.yaml") -> Params:
    """The configuration of variant `name`: the main one plus its overrides (None or "main": unchanged)."""
    if name in (None, "main"):
        return params
    cache = getattr(params, "_variant_cache", None)
    if cache is not None and name in cache:
        return cache[name]
    if name not in params.variants:
        known = ", ".join(sorted(params.variants)) or "none"
        raise HecvlError(f"{source}: unknown variant {name!r} (known: {known})")
    merged = deep_merge(params.to_dict(), params.variants[name] or {})
    out = validate_with(type(params), merged, source, f"variants.{name}: ")
    if cache is not None:
        cache[name] = out
    return out
