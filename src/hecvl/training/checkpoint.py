"""Resumable training state: atomic, checksummed checkpoints that load with `weights_only=True`.

Layout inside a run's output folder::

    checkpoints/step-00000100.pt      torch.save of a dict of tensors and plain types only
    checkpoints/step-00000100.json    {"step", "sha256", "bytes", "format"}: written after the .pt

A checkpoint counts only once its JSON exists and its bytes hash to the recorded SHA-256, so a run
killed while writing (or a file damaged later) is never loaded. `latest_valid` walks back from the
newest checkpoint to the newest good one, logging a warning for each bad one it skips; when none is
good the caller starts from step 0 (with a warning). Old checkpoints beyond `keep` are deleted, but
never the only good one.

RNG states are stored as tensors and plain Python values (not numpy or `random` objects) so that
`torch.load(..., weights_only=True)` can read them: no pickle code execution on load.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hecvl.errors import HecvlError
from hecvl.io import atomic_path, sha256_file, write_json

log = logging.getLogger(__name__)

FORMAT = "hecvl-train-checkpoint/1"
_NAME = re.compile(r"^step-(\d{8})\.json$")


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) generator states as tensors and plain values."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["name"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def save_checkpoint(folder: str | Path, step: int, state: Mapping[str, Any], keep: int = 2) -> Path:
    """Write `state` (plus the format tag and step) atomically, then its checksum record; prune old ones."""
    folder = Path(folder)
    path = checkpoint_path(folder, step)
    payload = {**state, "format": FORMAT, "step": int(step)}
    with atomic_path(path) as tmp:  # disk full, read-only...: a WriteError naming `path`
        torch.save(payload, tmp)
    try:
        write_json(
            path.with_suffix(".json"),
            {"format": FORMAT, "step": int(step), "sha256": sha256_file(path), "bytes": path.stat().st_size},
        )
    except BaseException:  # a checkpoint without its record is never loaded: free its space
        path.unlink(missing_ok=True)
        raise
    _prune(folder, keep)
    return path


def _records(folder: Path) -> list[tuple[int, Path]]:
    """(step, record path) of every checksum record in `folder`, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def _prune(folder: Path, keep: int) -> None:
    for _step, record in _records(folder)[max(1, keep) :]:
        record.with_suffix(".pt").unlink(missing_ok=True)
        record.unlink(missing_ok=True)


class CorruptCheckpoint(HecvlError):
    """A checkpoint whose bytes or contents do not match its checksum record."""


def load_checkpoint(record: str | Path) -> dict[str, Any]:
    """Verify a checkpoint against its record and load it (weights only); raise CorruptCheckpoint if bad."""
    record = Path(record)
    path = record.with_suffix(".pt")
    try:
        meta = json.loads(record.read_text(encoding="utf-8"))
        expected = str(meta["sha256"])
        size = int(meta["bytes"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptCheckpoint(f"unreadable checksum record ({exc})", record) from None
    if not path.is_file():
        raise CorruptCheckpoint("checkpoint file missing", path)
    if path.stat().st_size != size:
        raise CorruptCheckpoint(f"size {path.stat().st_size} bytes, expected {size}", path)
    actual = sha256_file(path)
    if actual != expected:
        raise CorruptCheckpoint(f"SHA-256 mismatch (got {actual[:12]}, expected {expected[:12]})", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a file that hashes right but does not unpickle safely is still unusable
        raise CorruptCheckpoint(f"cannot be loaded with weights_only=True ({exc})", path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CorruptCheckpoint(f"not a {FORMAT} checkpoint", path)
    return state


def latest_valid(folder: str | Path) -> dict[str, Any] | None:
    """The newest checkpoint in `folder` that verifies, skipping (and reporting) corrupt ones.

    Returns None when there is none; warns when checkpoints existed but none was usable, because the
    run then starts again from step 0.
    """
    folder = Path(folder)
    for tmp in folder.glob(".step-*"):  # temp folders (or files) of a save killed before its rename
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    records = _records(folder)
    stray = sorted(p for p in folder.glob("step-*.pt") if not p.with_suffix(".json").exists())
    for p in stray:
        log.warning("%s: checkpoint without checksum record (interrupted while saving?): ignored", p)
    for _step, record in records:
        try:
            return load_checkpoint(record)
        except CorruptCheckpoint as exc:
            log.warning("corrupt checkpoint skipped, not loaded: %s", exc)
    if records or stray:
        log.warning("%s: no valid checkpoint left; training starts from step 0", folder)
    return None
