"""Resumability: a run killed by SIGKILL and restarted ends bit-identical; corrupt checkpoints not loaded."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import small_params, smoke_world, write_params

from hecvl.errors import HecvlError
from hecvl.training.trainer import pretrain


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return smoke_world(tmp_path_factory)


def _same_outputs(a: Path, b: Path) -> None:
    """Bit-identical tensors (the safetensors header's metadata order is not stable across processes,
    so the files' bytes are not compared), identical loss curves and configuration."""
    assert _same_tensors(*(load_file(d / "model.safetensors") for d in (a, b)))
    assert (a / "losses.csv").read_bytes() == (b / "losses.csv").read_bytes()
    assert (a / "train_config.json").read_bytes() == (b / "train_config.json").read_bytes()


def _same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # a training process killed and run again: about 19 s on 2 busy cores
def test_sigkill_mid_training_then_restart_gives_identical_weights(
    world: dict[str, Path], tmp_path: Path
) -> None:
    overrides = {"train": {"steps": 16, "checkpoint_every": 2}}
    params = write_params(tmp_path / "params.yaml", world["frames"], overrides)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "hecvl.cli", "pretrain", "--params", str(params),
           "--pairs", str(world["pairs"]), "--corpus", str(world["corpus"]), "--out", str(killed),
           "--no-progress"]
    env = {**os.environ, "HECVL_TRACKING": "off"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while not list((killed / "checkpoints").glob("step-*.json")):
        assert proc.poll() is None, f"training ended before its first checkpoint:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, "no checkpoint within 180 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    saved = sorted(int(p.stem.split("-")[1]) for p in (killed / "checkpoints").glob("step-*.json"))
    assert saved and saved[-1] < 16 and not (killed / "model.safetensors").exists()  # killed mid-training

    restart = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert restart.returncode == 0, restart.stderr
    assert f"resuming from step {saved[-1]} of 16" in restart.stderr

    reference = tmp_path / "reference"
    result = pretrain(small_params(world["frames"], overrides), world["pairs"], reference,
                      corpus_root=world["corpus"], track=False, progress=False)
    assert result.start_step == 0
    _same_outputs(killed, reference)


def test_corrupt_checkpoint_is_reported_and_not_loaded(
    world: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"steps": 6, "checkpoint_every": 2, "keep_checkpoints": 3}
    params = small_params(world["frames"], {"train": settings})
    out = tmp_path / "run"

    def run() -> int:
        result = pretrain(params, world["pairs"], out, corpus_root=world["corpus"], track=False,
                          progress=False)
        return result.start_step

    assert run() == 0
    weights = load_file(out / "model.safetensors")
    newest = out / "checkpoints" / "step-00000006.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 3] ^= 0x01  # one flipped bit, same size
    newest.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert run() == 4  # the corrupt step-6 checkpoint skipped, step 4 loaded, steps 5-6 retrained
    assert "corrupt checkpoint skipped, not loaded" in caplog.text and "step-00000006.pt" in caplog.text
    assert "SHA-256 mismatch" in caplog.text
    assert _same_tensors(load_file(out / "model.safetensors"), weights)

    for path in (out / "checkpoints").glob("step-*.pt"):
        path.write_bytes(path.read_bytes()[:1000])  # every checkpoint truncated
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert run() == 0
    assert "no valid checkpoint left; training starts from step 0" in caplog.text
    assert _same_tensors(load_file(out / "model.safetensors"), weights)


def test_checkpoint_of_other_settings_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    base = {"train": {"steps": 2}}
    out = tmp_path / "run"

    def run(params: dict, resume: bool = True) -> int:
        result = pretrain(params, world["pairs"], out, corpus_root=world["corpus"], track=False,
                          progress=False, resume=resume)
        return result.start_step

    assert run(small_params(world["frames"], base)) == 0
    # operational settings (threads, workers, checkpoint cadence) may change between runs
    same = small_params(world["frames"], {"train": {**base["train"], "checkpoint_every": 7, "threads": 2}})
    assert run(same) == 2  # the finished run's last checkpoint: nothing left to train
    other = small_params(world["frames"], {"train": {**base["train"], "lr": 1.0e-4}})
    with pytest.raises(HecvlError, match="written with other settings"):
        run(other)
    assert run(other, resume=False) == 0  # --no-resume: the old checkpoints are deleted, training restarts
    assert run(other) == 2
