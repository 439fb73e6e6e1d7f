"""Rename ResNet weights between torchvision's layout and `transformers.ResNetModel`'s.

ImageNet weights and the released SurgVLP/HecVL/PeskaVLP checkpoints store a stock torchvision ResNet;
the project builds its ResNets with `transformers`. The rules (docs/checkpoints.md §5, checked there:
318 -> 318 keys for ResNet-50, strict load, identical outputs) are purely positional, so the same
mapping serves basic-block and bottleneck ResNets of any depth:

    conv1.weight                   -> embedder.embedder.convolution.weight
    bn1.<p>                        -> embedder.embedder.normalization.<p>
    layerL.M.convK.weight          -> encoder.stages.{L-1}.layers.M.layer.{K-1}.convolution.weight
    layerL.M.bnK.<p>               -> encoder.stages.{L-1}.layers.M.layer.{K-1}.normalization.<p>
    layerL.M.downsample.0.weight   -> encoder.stages.{L-1}.layers.M.shortcut.convolution.weight
    layerL.M.downsample.1.<p>      -> encoder.stages.{L-1}.layers.M.shortcut.normalization.<p>
    fc.*                           -> (dropped: ResNetModel has no classifier)

This is the one place that knows these names: the released-checkpoint loader imports it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

from hecvl.errors import HecvlError

V = TypeVar("V")

_P = r"(weight|bias|running_mean|running_var|num_batches_tracked)"  # a conv weight or a batch-norm entry
_TV_STEM = re.compile(rf"^(conv1\.weight|bn1\.{_P})$")
_TV_BLOCK = re.compile(rf"^layer(\d+)\.(\d+)\.(?:(conv|bn)(\d+)|downsample\.([01]))\.{_P}$")
_HF_STEM = re.compile(rf"^embedder\.embedder\.(convolution|normalization)\.{_P}$")
_HF_BLOCK = re.compile(
    rf"^encoder\.stages\.(\d+)\.layers\.(\d+)\.(?:layer\.(\d+)|(shortcut))\.(convolution|normalization)\.{_P}$"
)


def torchvision_key_to_hf(key: str) -> str | None:
    """The HF `ResNetModel` name of one torchvision ResNet key; None for the classifier (`fc.*`).

    Raises HecvlError for a key that is not part of a torchvision ResNet.
    """
    if key.startswith("fc."):
        return None
    if m := _TV_STEM.match(key):
        kind = "convolution" if key.startswith("conv1") else "normalization"
        return f"embedder.embedder.{kind}.{key.split('.', 1)[1]}"
    if m := _TV_BLOCK.match(key):
        stage, block, convbn, k, down, param = m.groups()
        if convbn is not None and (convbn == "bn" or param == "weight"):
            kind = "convolution" if convbn == "conv" else "normalization"
            # stage and conv/bn numbers are 1-based in torchvision, 0-based in transformers
            return f"encoder.stages.{int(stage) - 1}.layers.{block}.layer.{int(k) - 1}.{kind}.{param}"
        if down is not None and (down == "1" or param == "weight"):
            kind = "convolution" if down == "0" else "normalization"
            return f"encoder.stages.{int(stage) - 1}.layers.{block}.shortcut.{kind}.{param}"
    raise HecvlError(f"not a torchvision ResNet key: {key!r}")


def hf_key_to_torchvision(key: str) -> str:
    """The torchvision ResNet name of one HF `ResNetModel` key (the inverse of `torchvision_key_to_hf`)."""
    if m := _HF_STEM.match(key):
        kind, param = m.groups()
        if kind == "normalization" or param == "weight":
            return "conv1.weight" if kind == "convolution" else f"bn1.{param}"
    if m := _HF_BLOCK.match(key):
        stage, block, k, shortcut, kind, param = m.groups()
        if kind == "normalization" or param == "weight":
            head = f"layer{int(stage) + 1}.{block}"
            if shortcut:
                return f"{head}.downsample.{0 if kind == 'convolution' else 1}.{param}"
            return f"{head}.{'conv' if kind == 'convolution' else 'bn'}{int(k) + 1}.{param}"
    raise HecvlError(f"not a transformers ResNetModel key: {key!r}")


def torchvision_to_hf(state_dict: Mapping[str, V], prefix: str = "") -> dict[str, V]:
    """Rename a torchvision ResNet state dict for `ResNetModel.load_state_dict`.

    Only keys starting with `prefix` are taken (and the prefix stripped), so a whole released
    checkpoint can be passed with `prefix="backbone_img.model."`; `fc.*` is dropped.
    """
    out: dict[str, V] = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        new = torchvision_key_to_hf(key[len(prefix):])
        if new is not None:
            out[new] = value
    if not out:
        raise HecvlError(f"no torchvision ResNet keys found under prefix {prefix!r}")
    return out


def hf_to_torchvision(state_dict: Mapping[str, V]) -> dict[str, V]:
    """Rename an HF `ResNetModel` state dict to torchvision's layout (without `fc.*`)."""
    return {hf_key_to_torchvision(k): v for k, v in state_dict.items()}


def find_resnet_prefix(keys: Iterable[str]) -> tuple[str, str] | None:
    """Detect the layout and key prefix of the ResNet inside a state dict.

    Returns ("torchvision", prefix) or ("hf", prefix), e.g. ("torchvision", "backbone_img.model.")
    for a released checkpoint or ("hf", "resnet.") for `ResNetForImageClassification`; None if neither.
    The shortest matching prefix wins, so a model holding one ResNet is read unambiguously.
    """
    found: list[tuple[int, str, str]] = []
    for key in keys:
        if key.endswith("embedder.embedder.convolution.weight"):
            prefix = key[: -len("embedder.embedder.convolution.weight")]
            found.append((len(prefix), "hf", prefix))
        elif key.endswith("conv1.weight"):
            prefix = key[: -len("conv1.weight")]
            if (prefix == "" or prefix.endswith(".")) and not re.search(r"layer\d+\.\d+\.$", prefix):
                found.append((len(prefix), "torchvision", prefix))
    if not found:
        return None
    _, layout, prefix = min(found)
    return layout, prefix
