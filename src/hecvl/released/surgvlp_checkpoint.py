"""The released SurgVLP / HecVL / PeskaVLP checkpoint container: read it safely, check it, normalise its keys.

Why a strict check: the original code loads these files with `load_state_dict(strict=True)`, so a file
whose keys or shapes differ from the layout below is not one of the released models (or is damaged), and
evaluating it would give a number that looks real and is not. Layout and tolerances from
docs/checkpoints.md §1-2: a flat state dict of 520 tensors (torchvision ResNet-50 with
`num_batches_tracked`, the 2048->768 `global_embedder`, a Bio_ClinicalBERT `BertModel` with pooler and the
`embeddings.position_ids` buffer that transformers < 4.31 saved).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from hecvl.errors import HecvlError
from hecvl.models.state_dicts import load_torch_file, unwrap_state_dict
from hecvl.released.checkpoints import check_state_layout

IMG_PREFIX = "backbone_img.model."
EMBEDDER_PREFIX = "backbone_img.global_embedder."
TEXT_PREFIX = "backbone_text.model."
POSITION_IDS_KEY = TEXT_PREFIX + "embeddings.position_ids"

IMAGE_DIM = 2048
EMBED_DIM = 768
BERT_VOCAB = 28996
BERT_LAYERS = 12
BERT_FFN = 3072
BERT_MAX_POS = 512
BERT_TYPE_VOCAB = 2

# Keys whose tensors are integer buffers; everything else must be floating point.
_INTEGER_SUFFIXES = ("num_batches_tracked", "position_ids")


def _batchnorm(shapes: dict[str, tuple[int, ...]], prefix: str, channels: int) -> None:
    for p in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{prefix}.{p}"] = (channels,)
    shapes[f"{prefix}.num_batches_tracked"] = ()


def torchvision_resnet50_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's `resnet50` without `fc` (318 entries, 53 of them num_batches_tracked)."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}
    _batchnorm(shapes, "bn1", 64)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True), start=1):
        for block in range(blocks):
            p = f"layer{stage}.{block}"
            shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            _batchnorm(shapes, f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            _batchnorm(shapes, f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            _batchnorm(shapes, f"{p}.bn3", planes * 4)
            if block == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                _batchnorm(shapes, f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    return shapes


def bio_clinical_bert_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of Bio_ClinicalBERT's `BertModel` state dict as transformers 4.30 saved it (200 keys)."""
    h = EMBED_DIM
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.position_ids": (1, BERT_MAX_POS),
        "embeddings.word_embeddings.weight": (BERT_VOCAB, h),
        "embeddings.position_embeddings.weight": (BERT_MAX_POS, h),
        "embeddings.token_type_embeddings.weight": (BERT_TYPE_VOCAB, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(BERT_LAYERS):
        p = f"encoder.layer.{n}"
        linears = {
            "attention.self.query": (h, h),
            "attention.self.key": (h, h),
            "attention.self.value": (h, h),
            "attention.output.dense": (h, h),
            "intermediate.dense": (BERT_FFN, h),
            "output.dense": (h, BERT_FFN),
        }
        for name, (out_f, in_f) in linears.items():
            shapes[f"{p}.{name}.weight"] = (out_f, in_f)
            shapes[f"{p}.{name}.bias"] = (out_f,)
            if name in ("attention.output.dense", "output.dense"):
                ln = name.replace("dense", "LayerNorm")
                shapes[f"{p}.{ln}.weight"] = (h,)
                shapes[f"{p}.{ln}.bias"] = (h,)
    shapes["pooler.dense.weight"] = (h, h)
    shapes["pooler.dense.bias"] = (h,)
    return shapes


def released_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of a released checkpoint (520 entries, `position_ids` included)."""
    shapes = {IMG_PREFIX + k: v for k, v in torchvision_resnet50_layout().items()}
    shapes[EMBEDDER_PREFIX + "weight"] = (EMBED_DIM, IMAGE_DIM)
    shapes[EMBEDDER_PREFIX + "bias"] = (EMBED_DIM,)
    shapes.update({TEXT_PREFIX + k: v for k, v in bio_clinical_bert_layout().items()})
    return shapes


def check_layout(state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Raise a HecvlError listing missing, unexpected and wrong-shape/dtype keys, if there are any.

    `position_ids` may be absent (files written with transformers >= 4.31 lack it); when present it must be
    `arange(512)`, since transformers < 4.31 would have used whatever it holds.
    """
    check_state_layout(state, released_layout(), path, "SurgVLP/HecVL/PeskaVLP released",
                       optional=(POSITION_IDS_KEY,), integer_suffixes=_INTEGER_SUFFIXES)
    pos = state.get(POSITION_IDS_KEY)
    if pos is not None and not torch.equal(pos, torch.arange(BERT_MAX_POS, dtype=pos.dtype).unsqueeze(0)):
        raise HecvlError(f"{POSITION_IDS_KEY} is not 0..{BERT_MAX_POS - 1}; refusing to ignore it", path)


def read_released_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load, unwrap and check a released checkpoint; returns its tensors under the canonical keys.

    The `position_ids` buffer is kept if the file has it (checked to be 0..511); the model drops it on
    transformers >= 4.31, where it is no longer part of the state dict.
    """
    path = Path(path)
    state = unwrap_state_dict(load_torch_file(path), path, wrappers=("state_dict",))
    check_layout(state, path)
    return state
