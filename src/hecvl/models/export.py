"""Exported models: a directory with `model.safetensors` (weights) and `config.json` (resolved params).

safetensors holds tensors only, so loading can never execute code (unlike a pickled .pth). The config
records the SHA-256 of the weights file, so a truncated, bit-flipped or swapped file is refused with a
clear message instead of being loaded into a model that then scores silently wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hecvl import __version__
from hecvl.config.model import ModelConfig
from hecvl.errors import HecvlError
from hecvl.io import atomic_path, sha256_file, write_json
from hecvl.layout import MODEL_CONFIG as CONFIG
from hecvl.layout import WEIGHTS
from hecvl.models.model import HecVLModel, build_model
from hecvl.models.state_dicts import check_state_dict, read_state_dict

EXPORT_KEY = "hecvl_export"  # bookkeeping inside config.json, beside the resolved params


def save_pretrained(model: HecVLModel, cfg: Mapping[str, Any] | None, out_dir: str | Path) -> Path:
    """Write `out_dir/model.safetensors` and `out_dir/config.json`, each atomically; returns out_dir.

    `cfg` is the resolved params (with a `model:` section) or just the model section; its model
    section must describe `model`. config.json gets the params with the model section fully spelled
    out (defaults included), so loading never depends on defaults that may change later. A full disk
    or a read-only folder is a WriteError naming the file (`atomic_path`); an earlier export's weights stay.
    """
    from safetensors.torch import save_file

    model = getattr(model, "module", model)  # unwrap DDP
    params = dict(cfg or {})
    if "model" not in params or not isinstance(params["model"], Mapping):
        params = {"model": params}
    if ModelConfig.from_dict(params["model"]) != model.config:
        raise ValueError("cfg's model section does not describe the model being saved")
    params["model"] = model.config.to_dict()
    out_dir = Path(out_dir)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out_dir / WEIGHTS) as tmp:
        # One metadata key: safetensors stores metadata in a hash map whose order varies between
        # processes, and identical training runs must give identical bytes (DVC, reproducibility).
        save_file(state, str(tmp), metadata={"format": "pt"})
    params[EXPORT_KEY] = {"weights": WEIGHTS, "sha256": sha256_file(out_dir / WEIGHTS),
                          "hecvl_version": __version__}
    write_json(out_dir / CONFIG, params)
    return out_dir


def load_pretrained(
    out_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[HecVLModel, dict[str, Any]]:
    """The model saved by `save_pretrained` (eval mode) and its resolved params (without bookkeeping).

    Refuses, with a HecvlError naming the file, a missing or corrupt file, a checksum mismatch, and
    weights whose keys or shapes do not match the configured architecture.
    """
    out_dir = Path(out_dir)
    config_path, weights_path = out_dir / CONFIG, out_dir / WEIGHTS
    if not config_path.is_file():
        raise HecvlError("no config.json: not a saved HecVL model directory", out_dir)
    try:
        params = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HecvlError(f"not valid JSON: {exc}", config_path) from None
    if not isinstance(params, dict) or not isinstance(params.get("model"), dict):
        raise HecvlError("no `model` section", config_path)
    export = params.pop(EXPORT_KEY, None) or {}
    if not weights_path.is_file():
        raise HecvlError("weights file missing", weights_path)
    expected_sha = export.get("sha256")
    if expected_sha and sha256_file(weights_path) != expected_sha:
        msg = "weights file is corrupt or was replaced (its SHA-256 differs from the one in config.json)"
        raise HecvlError(msg, weights_path)
    state = read_state_dict(weights_path)
    model = build_model(ModelConfig.from_dict(params["model"], str(config_path)), pretrained=False)
    check_state_dict(state, model.state_dict(), weights_path, what="saved weights")
    model.load_state_dict(state)
    return model.to(device).eval(), params
