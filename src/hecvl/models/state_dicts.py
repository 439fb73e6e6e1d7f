"""Reading and checking state dicts from local files: one clear error instead of a traceback.

One reader for every checkpoint the project loads (our ResNet init weights, the authors' released
SurgVLP / HecVL / PeskaVLP files): `torch.load(weights_only=True)`, so a file that holds pickled Python
objects is refused without running anything, with the offending global named; anything else that
cannot be read is "not a readable PyTorch checkpoint" with torch's reason on one line.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hecvl.errors import HecvlError

WRAPPERS = ("state_dict", "model", "model_state_dict", "module")  # training scripts' containers
_SHOW = 5  # how many offending keys a message lists


def load_torch_file(path: str | Path) -> object:
    """`torch.load` restricted to tensors and plain containers; anything else becomes a HecvlError."""
    path = Path(path)
    if not path.is_file():
        raise HecvlError("checkpoint file not found", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # "Unsupported global: GLOBAL x.y was not ..." or, for blocked modules such as os/posix,
        # "unsupported GLOBAL posix.system whose module posix is blocked."
        found = re.search(r"Unsupported (global|class)[^\n]*?(?= was not|\n|$)", str(exc), re.IGNORECASE)
        with open(path, "rb") as fh:
            raw_pickle = fh.read(1) == b"\x80"  # PROTO: a pickle stream, not torch's zip container
        if found or raw_pickle:
            what = found.group(0).strip() if found else "a raw pickle stream"
            raise HecvlError(
                f"refused: the file contains pickled Python objects, not only tensors ({what}); "
                "only plain tensor state dicts are loaded (torch.load weights_only=True), because "
                "unpickling arbitrary objects can run code",
                path,
            ) from None
        raise HecvlError(f"not a readable PyTorch checkpoint ({_first_line(exc)})", path) from None
    except Exception as exc:  # zip/format/EOF errors: report what torch said, on one line
        raise HecvlError(f"not a readable PyTorch checkpoint ({_first_line(exc)})", path) from None


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    unsupported = [line for line in lines if line.startswith("Unsupported")]
    detail = (unsupported or lines or [""])[0]
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def unwrap_state_dict(obj: object, path: str | Path, wrappers: tuple[str, ...] = WRAPPERS) -> dict:
    """A flat name -> tensor dict from a state dict or a training checkpoint wrapping one under one of
    `wrappers`; a DDP `module.` prefix is stripped. Anything else is a HecvlError naming what it found."""
    for wrapper in wrappers:
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping):
        raise HecvlError(f"expected a state dict (a dict of tensors), found {type(obj).__name__}", path)
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        shown = sorted(bad)[:_SHOW]
        raise HecvlError(f"expected a state dict of tensors; {len(bad)} entries are not: {shown}", path)
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        name = key[len("module.") :] if key.startswith("module.") else key
        if name in out:
            raise HecvlError(f"key {name!r} appears both with and without the 'module.' prefix", path)
        out[name] = value
    return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat name -> tensor dict from a .safetensors or torch file; corrupt or odd files are HecvlErrors."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return unwrap_state_dict(load_torch_file(path), path)
    if not path.is_file():
        raise HecvlError("checkpoint file not found", path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise HecvlError(f"not a readable safetensors file ({type(exc).__name__}: {exc})", path) from None


def hash_state_dict(h: Any, state: Mapping[str, torch.Tensor]) -> None:
    """Feed every tensor of `state` (name, dtype, shape, bytes; sorted by name) into the hashlib `h`:
    the identity of loaded weights, whatever file or seed they came from."""
    for name, tensor in sorted(state.items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


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
