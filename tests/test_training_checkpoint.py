"""Checkpoints: atomic, checksummed, loadable with weights_only=True, corrupt ones reported and skipped."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from hecvl.training.checkpoint import (
    CorruptCheckpoint,
    latest_valid,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _state(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict:
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state()}


def _trained() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    return model, opt


def test_rng_state_round_trip_restores_every_generator(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    model, opt = _trained()
    save_checkpoint(tmp_path, 5, _state(model, opt))
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    state = latest_valid(tmp_path)
    assert state is not None and state["step"] == 5
    set_rng_state(state["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_checkpoint_loads_with_weights_only_and_restores_training(tmp_path: Path) -> None:
    model, opt = _trained()
    path = save_checkpoint(tmp_path, 1, _state(model, opt))
    raw = torch.load(path, weights_only=True)  # no pickle code on load
    assert raw["step"] == 1
    model2 = torch.nn.Linear(4, 2)
    opt2 = torch.optim.AdamW(model2.parameters(), lr=0.1)
    model2.load_state_dict(raw["model"])
    opt2.load_state_dict(raw["optimizer"])
    x = torch.randn(3, 4)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    assert torch.equal(model.weight, model2.weight)


def test_old_checkpoints_pruned_and_no_temp_files_left(tmp_path: Path) -> None:
    model, opt = _trained()
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, _state(model, opt), keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-00000020.json", "step-00000020.pt", "step-00000030.json", "step-00000030.pt"
    ]


def test_corrupt_checkpoint_detected_reported_and_previous_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, opt = _trained()
    save_checkpoint(tmp_path, 10, _state(model, opt))
    newest = save_checkpoint(tmp_path, 20, _state(model, opt))
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    newest.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint, match="SHA-256 mismatch"):
        load_checkpoint(newest.with_suffix(".json"))
    with caplog.at_level(logging.WARNING):
        state = latest_valid(tmp_path)
    assert state is not None and state["step"] == 10
    assert "corrupt checkpoint skipped" in caplog.text and "step-00000020.pt" in caplog.text


def test_truncated_only_checkpoint_means_fresh_start_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model, opt = _trained()
    path = save_checkpoint(tmp_path, 10, _state(model, opt))
    path.write_bytes(path.read_bytes()[:100])
    (tmp_path / ".step-00000020.abc.pt").write_bytes(b"partial")  # a save killed before its rename
    with caplog.at_level(logging.WARNING):
        assert latest_valid(tmp_path) is None
    assert "size 100 bytes" in caplog.text and "starts from step 0" in caplog.text
    assert not list(tmp_path.glob(".step-*"))


def test_checkpoint_without_record_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model, opt = _trained()
    save_checkpoint(tmp_path, 10, _state(model, opt))
    path = save_checkpoint(tmp_path, 20, _state(model, opt))
    path.with_suffix(".json").unlink()  # killed between writing the .pt and its record
    with caplog.at_level(logging.WARNING):
        state = latest_valid(tmp_path)
    assert state is not None and state["step"] == 10
    assert "without checksum record" in caplog.text
