"""Reading and checking state dicts from local files: one clear error instead of a strict-load traceback."""

from __future__ import annotations

from pathlib import Path

import torch

from hecvl.errors import HecvlError

_WRAPPERS = ("state_dict", "model", "model_state_dict", "module")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A flat name -> tensor dict from a .safetensors or torch file; corrupt or odd files are HecvlErrors."""
    if not path.is_file():
        raise HecvlError("weights file not found", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or unsupported files raise many exception types
        raise HecvlError(f"cannot read weights ({type(exc).__name__}: {exc})", path) from None
    for wrapper in _WRAPPERS:
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise HecvlError("expected a state dict (name -> tensor)", path)
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def check_state_dict(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: str | Path, what: str
) -> None:
    """Raise one HecvlError listing missing, unexpected and wrongly shaped keys, if any."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = [
        f"{len(items)} {kind} (e.g. {', '.join(items[:3])})"
        for kind, items in (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", wrong))
        if items
    ]
    if problems:
        raise HecvlError(f"{what} do not match the configured model: " + "; ".join(problems), path)
