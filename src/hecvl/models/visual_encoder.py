"""The visual encoder: a `transformers` ResNet, random or initialised from a local checkpoint.

Frames go through the ResNet stem and stages and a global average pool, giving one feature vector
per frame (2048-d for ResNet-50, as the paper; 256-d for the small CPU preset). Weights are only ever
read from local files: an HF `ResNetModel`/`ResNetForImageClassification` directory, or a
torchvision-layout state dict (ImageNet `resnet50-*.pth`, or a whole released checkpoint whose ResNet
sits under a prefix such as `backbone_img.model.`), renamed by `resnet_keys`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import ResNetConfig, ResNetModel

from hecvl.config.model import VisualConfig
from hecvl.errors import HecvlError
from hecvl.models.resnet_keys import find_resnet_prefix, torchvision_to_hf
from hecvl.models.state_dicts import check_state_dict, read_state_dict

_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def resnet_config(cfg: VisualConfig) -> ResNetConfig:
    """The `ResNetConfig` of a visual config: torchvision-equivalent ResNet (stride on the 3x3, v1.5)."""
    arch = cfg.architecture()
    return ResNetConfig(
        num_channels=3,
        embedding_size=arch["embedding_size"],
        hidden_sizes=list(arch["hidden_sizes"]),
        depths=list(arch["depths"]),
        layer_type=arch["layer_type"],
        hidden_act="relu",
        downsample_in_first_stage=False,
        downsample_in_bottleneck=False,
    )


class VisualEncoder(nn.Module):
    """ResNet trunk + global average pool: (N, 3, H, W) normalised images -> (N, C) features."""

    def __init__(self, cfg: VisualConfig, pretrained: bool = True) -> None:
        super().__init__()
        self.resnet = ResNetModel(resnet_config(cfg))
        self.dim: int = int(cfg.architecture()["hidden_sizes"][-1])
        if pretrained and cfg.weights:
            self.resnet.load_state_dict(load_resnet_weights(cfg.weights, self.resnet))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.resnet(pixel_values=images).pooler_output.flatten(1)


def load_resnet_weights(path: str | Path, target: ResNetModel) -> dict[str, torch.Tensor]:
    """Read a local ResNet checkpoint as a state dict in `target`'s (HF) layout, checked key by key.

    Accepts an HF model directory (model.safetensors or pytorch_model.bin), a .safetensors file, or a
    torch state dict file (.pth/.pt/.bin/.tar, read with `weights_only=True`: never a full unpickle),
    optionally wrapped in {"state_dict": ...} and/or prefixed with "module.".
    """
    path = Path(path).expanduser()
    if path.is_dir():
        files = [path / name for name in _HF_WEIGHT_FILES if (path / name).is_file()]
        if not files:
            raise HecvlError(f"no {' or '.join(_HF_WEIGHT_FILES)} in this ResNet directory", path)
        path = files[0]
    state = read_state_dict(path)
    found = find_resnet_prefix(state)
    if found is None:
        raise HecvlError("no ResNet weights found (neither torchvision nor transformers key names)", path)
    layout, prefix = found
    try:
        if layout == "torchvision":
            state = torchvision_to_hf(state, prefix=prefix)
        else:
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    except HecvlError as exc:
        raise HecvlError(exc.message, path) from None
    expected = target.state_dict()
    for key in expected:  # files saved before torch 0.4.1 (e.g. the v1 ImageNet weights) lack these counters
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(expected[key])
    check_state_dict(state, expected, path, what="ResNet weights")
    return state


def preprocess_frames(
    frames: np.ndarray | torch.Tensor,
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> torch.Tensor:
    """uint8 RGB frames (..., H, W, 3) -> normalised float (..., 3, S, S).

    Frames already S x S (the evaluation's frame cache and the loaders' FrameTransform do the resize
    and crop) are only normalised; others are resized (shorter side to S, bilinear, antialiased) and
    centre-cropped. Why it is written this way (evaluation throughput, where this runs per frame):
    - the resize runs on the uint8 frames (torch's uint8 antialiased kernel on CPU, several times
      faster than on floats) and only the S x S crop is converted to float; the result differs from
      resizing floats by under one grey level (the uint8 kernel rounds its output), i.e. by under
      1/(255 * std) after normalisation;
    - normalisation is one fused multiply-add in the frames' own (H, W, 3) layout, and the result is
      returned as a channels-last view (strides of NHWC, shape (..., 3, S, S)): no transposing copy,
      and CPU convolutions run ~1.4x faster on it. Numbers are those of NCHW up to float rounding;
      call `.contiguous()` where NCHW strides are needed.
    Runs on the input's device, so DataLoader workers can call it on CPU tensors.
    """
    x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if x.dtype != torch.uint8 or x.ndim < 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB frames (..., H, W, 3), got {x.dtype} {tuple(x.shape)}")
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:])  # (N, H, W, 3)
    h, w = x.shape[1:3]
    if (h, w) != (image_size, image_size):
        x = _resize_crop(x, image_size, in_uint8=x.device.type == "cpu")
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device)
    scale = 1.0 / (255.0 * std_t)
    shift = -torch.tensor(mean, dtype=torch.float32, device=x.device) / std_t
    x = torch.addcmul(shift, x.float(), scale)  # (x / 255 - mean) / std, per channel (the last dim)
    return x.permute(0, 3, 1, 2).reshape(*lead, 3, image_size, image_size)


def _resize_crop(x: torch.Tensor, size: int, in_uint8: bool) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, S, S, 3): shorter side to S (bilinear, antialiased), centre crop.

    `in_uint8`: resize the uint8 values (torch's vectorised CPU kernel for channels-last uint8
    images; output rounded to integers), else float 0..255 values (exact; the only kind other
    devices' antialiased kernels take).
    """
    h, w = x.shape[1:3]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    nchw = x.permute(0, 3, 1, 2)  # a channels-last view, the layout the uint8 kernel wants
    if not in_uint8:
        nchw = nchw.float()
    out = F.interpolate(nchw, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return out[:, :, top:top + size, left:left + size].permute(0, 2, 3, 1)
