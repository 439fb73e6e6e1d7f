"""The chunked step (`train.chunk`, the gradient cache) gives the one-pass step's gradients in less memory.

Stated tolerance: with BatchNorm in eval mode and no dropout, every parameter gradient of a chunked step
equals the one-pass step's within 1e-5 relative (fp32; `max_rel_grad_diff`), at every level and loss
option, in one process and under 2-process Gloo DDP. In train mode BatchNorm normalises each chunk by
itself (a different, documented computation), so there only the mechanics are checked: the RNG replay
(pass 2 reproduces pass 1 bit for bit under dropout) and one running-statistics update per chunk.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from training_helpers import small_params, smoke_world

from hecvl.config import coerce_params, run_key
from hecvl.errors import HecvlError
from hecvl.models import build_model
from hecvl.training.distributed import average_gradients, sync_batchnorm
from hecvl.training.memory import SavedTensorMeter, max_rel_grad_diff, parameter_grads
from hecvl.training.step import ContrastiveStep
from hecvl.training.trainer import Trainer

TOL = 1e-5
MAX_TEXTS = 3


def _frames(b: int, t: int, seed: int) -> torch.Tensor:
    return torch.randn(b, t, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _clip(b: int = 6, duplicates: bool = False) -> dict[str, Any]:
    texts = [f"clip narration {i % 3 if duplicates else i}" for i in range(b)]
    return {"frames": _frames(b, 2, 1), "text": texts}


def _mil(b: int = 6) -> dict[str, Any]:
    # bags of 1..3 texts; "shared narration" sits in two bags (the multi-positive rule across bags)
    bags = [[f"clip {i}"] + [f"near {i} {j}" for j in range(i % MAX_TEXTS)] for i in range(b)]
    bags[1][-1] = bags[4][-1] = "shared narration"
    return {"frames": _frames(b, 2, 2), "text": [bag[0] for bag in bags], "texts": bags}


def _parent(level: str, b: int, t: int, duplicates: bool = False) -> dict[str, Any]:
    texts = [f"{level} title {i % 2 if duplicates else i}" for i in range(b)]
    children = [[f"{level} {i} child {j}" for j in range(i % 3)] for i in range(b)]  # some have none
    if duplicates:
        children[3] = list(children[5])  # identical multisets of children: positives too
    return {"frames": _frames(b, t, 3 if level == "phase" else 4), "text": texts, "child_texts": children}


CASES: dict[str, Callable[[], dict[str, dict[str, Any]]]] = {
    "clip_info_nce": lambda: {"clip": _clip()},
    "clip_mil_nce": lambda: {"clip": _mil()},
    "phase_parent_child": lambda: {"phase": _parent("phase", 6, 3)},
    "video_parent_child": lambda: {"video": _parent("video", 4, 4)},
    "duplicate_texts": lambda: {"clip": _clip(duplicates=True), "phase": _parent("phase", 6, 3, True)},
    "joint_weighted": lambda: {"clip": _mil(), "phase": _parent("phase", 6, 3),
                               "video": _parent("video", 4, 4)},
}
WEIGHTS = {"clip": 1.0, "phase": 0.5, "video": 2.0}


def _model(freeze: bool = True) -> nn.Module:
    params = small_params(Path("unused"), {"model": {"text": {"freeze": freeze}}})
    model = build_model(params["model"], seed=0)
    return model.eval()  # BatchNorm on running statistics, no dropout: the step is deterministic


@pytest.fixture(scope="module")
def frozen() -> nn.Module:
    return _model(freeze=True)


@pytest.fixture(scope="module")
def trainable() -> nn.Module:
    return _model(freeze=False)


def _one_pass(step: ContrastiveStep, batches: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    step.model.zero_grad(set_to_none=True)
    terms = step(batches)
    terms["total"].backward()
    return {k: v.detach() for k, v in terms.items()}, parameter_grads(step.model)


def _chunked(step: ContrastiveStep, batches: dict[str, Any], chunk: int) -> tuple[dict, dict]:
    step.model.zero_grad(set_to_none=True)
    terms = step.chunked_backward(batches, chunk, verify=True)
    return terms, parameter_grads(step.model)


@pytest.mark.parametrize("chunk", [1, 3])  # 3 splits samples' frames (2, 3 or 4 each) between chunks
@pytest.mark.parametrize("case", sorted(CASES))
def test_chunked_gradients_equal_one_pass(frozen: nn.Module, case: str, chunk: int) -> None:
    batches = CASES[case]()
    step = ContrastiveStep(frozen, WEIGHTS, max_texts=MAX_TEXTS)
    ref_terms, ref = _one_pass(step, batches)
    terms, got = _chunked(step, batches, chunk)
    assert set(got) == set(ref) and len(ref) > 10
    assert max_rel_grad_diff(got, ref) < TOL
    assert set(terms) == set(ref_terms)
    for name, value in ref_terms.items():
        torch.testing.assert_close(terms[name], value, rtol=TOL, atol=1e-7)


@pytest.mark.parametrize("case", ["clip_mil_nce", "phase_parent_child"])
def test_trainable_text_encoder_is_chunked_too(trainable: nn.Module, case: str) -> None:
    batches = CASES[case]()
    step = ContrastiveStep(trainable, max_texts=MAX_TEXTS)
    _, ref = _one_pass(step, batches)
    _, got = _chunked(step, batches, 2)
    assert any(n.startswith("text.model.") for n in got)  # the encoder itself is trained
    assert max_rel_grad_diff(got, ref) < TOL


def test_train_mode_replays_rng_and_updates_batchnorm_once_per_chunk() -> None:
    model = _model(freeze=False).train()  # dropout in the text encoder, batch statistics in BatchNorm
    text = ["a text long enough for dropout to matter"] * 2
    assert not torch.equal(model.encode_text(text), model.encode_text(text))  # so replay is needed
    norms = [m for m in model.visual.modules() if isinstance(m, nn.BatchNorm2d)]
    before = [int(m.num_batches_tracked) for m in norms]
    batches = {"phase": _parent("phase", 6, 2)}  # 12 frames: 3 chunks of 4
    terms = ContrastiveStep(model).chunked_backward(batches, 4, verify=True)  # raises if pass 2 differs
    assert torch.isfinite(terms["total"])
    assert [int(m.num_batches_tracked) - b for m, b in zip(norms, before, strict=True)] == [3] * len(norms)


def test_peak_activation_memory_falls_with_the_chunk(frozen: nn.Module) -> None:
    batches = {"clip": _clip(8)}  # 16 frames
    step = ContrastiveStep(frozen)
    params = list(frozen.parameters())
    with SavedTensorMeter(params) as meter:
        _one_pass(step, batches)
    peaks = {"full": meter.peak}
    for chunk in (8, 4, 2):
        with SavedTensorMeter(params) as meter:
            _chunked(step, batches, chunk)
        assert meter.live == 0  # every graph was released
        peaks[chunk] = meter.peak
    assert peaks["full"] > peaks[8] > peaks[4] > peaks[2] > 0, peaks
    assert peaks[2] < 0.35 * peaks["full"], peaks


def test_chunk_setting_is_typed_and_off_by_default() -> None:
    params = coerce_params(small_params(Path("unused")))
    assert params.train.chunk is None and "chunk" not in params.train.to_dict()  # run keys unchanged
    assert run_key(params.updated({"train": {"chunk": 4}})) != run_key(params)
    with pytest.raises(HecvlError, match=r"train\.chunk must be > 0"):
        params.updated({"train": {"chunk": 0}})


def test_trainer_step_with_chunk_matches_one_pass(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Through `Trainer.train_step`: the setting reaches the step, losses and gradients agree."""
    world = smoke_world(tmp_path_factory)
    grads, rows = [], []
    for chunk in (None, 5):
        overrides = {"train": {"chunk": chunk, "grad_clip": 0.0, "schedule": "joint"}}
        trainer = Trainer(small_params(world["frames"], overrides), world["pairs"], None,
                          corpus_root=world["corpus"])
        trainer.model.eval()
        rows.append(trainer.train_step(0, trainer.step_module, trainer.loader(0)))
        grads.append(parameter_grads(trainer.model))
    assert rows[0]["levels"] == "clip+phase+video"
    assert rows[1]["loss"] == pytest.approx(rows[0]["loss"], rel=TOL)
    assert max_rel_grad_diff(grads[1], grads[0]) < TOL


# --- DDP ------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _local(batches: dict[str, dict[str, Any]], rank: int, world: int) -> dict[str, dict[str, Any]]:
    """This rank's contiguous slice of every field of every level's global batch."""
    out = {}
    for level, batch in batches.items():
        per = len(batch["text"]) // world
        out[level] = {k: v[rank * per : (rank + 1) * per] for k, v in batch.items()}
    return out


def _ddp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        model = sync_batchnorm(_model(), torch.device("cpu"))
        step = ContrastiveStep(model, WEIGHTS, max_texts=MAX_TEXTS)
        wrapped = nn.parallel.DistributedDataParallel(step, find_unused_parameters=True)
        batches = _local(CASES["joint_weighted"](), rank, 2)
        model.zero_grad(set_to_none=True)
        wrapped(batches)["total"].backward()  # the unchunked DDP step, as the trainer runs it
        one_pass = parameter_grads(model)
        model.zero_grad(set_to_none=True)
        terms = step.chunked_backward(batches, 3, verify=True)  # as the trainer runs it with train.chunk
        average_gradients(model.parameters())
        chunked = parameter_grads(model)
        model.train()  # cross-rank BatchNorm inside both passes: the collectives must pair up
        model.zero_grad(set_to_none=True)
        trained = step.chunked_backward(batches, 3, verify=True)
        average_gradients(model.parameters())
        torch.save({"one_pass": one_pass, "chunked": chunked, "total": terms["total"],
                    "train_total": trained["total"]}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two processes, each loading a model: ~15 s on 2 shared cores
@pytest.mark.skipif(not dist.is_gloo_available(), reason="torch built without Gloo")
def test_chunked_ddp_gradients_equal_single_process(frozen: nn.Module, tmp_path: Path) -> None:
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    step = ContrastiveStep(frozen, WEIGHTS, max_texts=MAX_TEXTS)
    terms, ref = _one_pass(step, CASES["joint_weighted"]())
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for got in results:
        assert max_rel_grad_diff(got["one_pass"], ref) < TOL  # the baseline the chunked step must meet
        assert max_rel_grad_diff(got["chunked"], ref) < TOL
        torch.testing.assert_close(got["total"], terms["total"], rtol=TOL, atol=1e-7)
        assert torch.isfinite(got["train_total"])
    assert max_rel_grad_diff(results[0]["chunked"], results[1]["chunked"]) == 0.0  # averaged: identical
