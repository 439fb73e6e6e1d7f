"""The run's one training loader: batches in schedule order, resumable, uint8 across the worker boundary,
normalised on the device exactly as the worker used to, and batch-size errors that name the setting."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from training_helpers import small_params, smoke_world

from hecvl.errors import HecvlError
from hecvl.pairing.datasets import PairCollate, PairDataset
from hecvl.pairing.manifest import read_manifest, write_manifest
from hecvl.training.data import ScheduleBatches, build_level_data, frame_geometry, make_loader, normalise
from hecvl.training.distributed import DistEnv
from hecvl.training.trainer import Trainer

# two micro-batches per step, every level, 2 clip + 1 phase + 1 video steps per block: 9 steps cross
# epoch boundaries at every level (3 video pairs in batches of 2: one batch per epoch)
OVERRIDES = {"train": {"steps": 9, "grad_accum": 2, "batch_size": {"clip": 4, "phase": 4, "video": 2}}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return smoke_world(tmp_path_factory)


@pytest.fixture(scope="module", params=["fine_to_coarse", "joint"])
def trainer(request: pytest.FixtureRequest, world: dict[str, Path]) -> Trainer:
    params = small_params(world["frames"], {"train": {**OVERRIDES["train"], "schedule": request.param}})
    return Trainer(params, world["pairs"], None, corpus_root=world["corpus"])


def _sampler(trainer: Trainer, start: int) -> ScheduleBatches:
    return ScheduleBatches(trainer.data, trainer.schedule, trainer.seed, start, trainer.settings.grad_accum,
                           trainer.env)


def _loader(trainer: Trainer, start: int, workers: int) -> Iterator[dict[str, Any]]:
    return iter(make_loader(trainer.data, trainer.schedule, trainer.seed, start, trainer.settings.grad_accum,
                            trainer.env, workers))


def test_levels_and_keys_follow_the_schedule(trainer: Trainer) -> None:
    """Per step, per micro-batch, per level of the step: that level's next global batch of keys."""
    a, plan = trainer.settings.grad_accum, trainer.schedule.plan
    want: list[list[tuple[str, int, int]]] = []
    count = dict.fromkeys(trainer.data, 0)
    for levels in plan:
        for _ in range(a):
            for lvl in levels:
                want.append([(lvl, e, i) for e, i in trainer.data[lvl].keys(trainer.seed, count[lvl])])
                count[lvl] += 1
    got = list(_sampler(trainer, 0))
    assert got == want and len(_sampler(trainer, 0)) == len(want)
    assert [b[0][0] for b in got] == [lvl for levels in plan for _ in range(a) for lvl in levels]
    assert len({k[1] for b in got if b[0][0] == "video" for k in b}) > 1  # epochs move on
    # the batches themselves carry the level, and the samples the keys
    for keys, batch in zip(got, _loader(trainer, 0, 0), strict=True):
        assert batch["level"] == keys[0][0]
        assert batch["index"].tolist() == [i for _, _, i in keys]
        assert batch["frames"].dtype == torch.uint8


def test_a_resumed_loader_reads_the_tail_of_the_uninterrupted_one(trainer: Trainer) -> None:
    a, plan = trainer.settings.grad_accum, trainer.schedule.plan
    full = list(_sampler(trainer, 0))
    for start in range(len(plan) + 1):
        offset = a * sum(len(levels) for levels in plan[:start])
        assert list(_sampler(trainer, start)) == full[offset:], start
    # the batches too, frames and all (the random crops and frame times are per key)
    start = 3
    offset = a * sum(len(levels) for levels in plan[:start])
    tail = list(_loader(trainer, 0, 0))[offset:]
    resumed = list(_loader(trainer, start, 0))
    assert len(tail) == len(resumed)
    for x, y in zip(tail, resumed, strict=True):
        _same_batch(x, y)


def test_workers_give_the_batches_of_the_main_process(trainer: Trainer) -> None:
    """uint8 frames cross the worker boundary; 0 and 2 workers (persistent) give identical batches."""
    ref = list(_loader(trainer, 0, 0))
    loader = make_loader(trainer.data, trainer.schedule, trainer.seed, 0, trainer.settings.grad_accum,
                         trainer.env, 2)
    assert loader.persistent_workers and loader.prefetch_factor == 2 and not loader.pin_memory
    got = list(loader)
    assert len(got) == len(ref)
    for x, y in zip(ref, got, strict=True):
        assert y["frames"].dtype == torch.uint8  # collated in a worker, as uint8
        _same_batch(x, y)


def test_normalising_on_the_device_equals_the_old_worker_normalisation(trainer: Trainer) -> None:
    """`normalise` of the uint8 batch is bit for bit the float32 batch PairDataset(mean, std) makes."""
    vis = trainer.model.config.visual
    size, crop = frame_geometry(trainer.params, vis.image_size)
    for level, d in trainer.data.items():
        keys = d.keys(trainer.seed, 0)
        old = PairDataset.from_params(trainer.pairs_dir, level, trainer.corpus_root, trainer.params,
                                      train=True, size=size, crop=crop, dtype="float32",
                                      mean=vis.mean, std=vis.std)
        want = PairCollate()([old[k] for k in keys])["frames"]
        batch = PairCollate()([d.dataset[k] for k in keys])
        got = normalise(batch["frames"], trainer.mean, trainer.std)
        assert batch["frames"].dtype == torch.uint8 and got.dtype == torch.float32
        assert got.shape == want.shape and torch.equal(got, want), level
    with pytest.raises(ValueError, match="uint8"):
        normalise(want, trainer.mean, trainer.std)


def test_a_batch_out_of_schedule_order_is_refused(trainer: Trainer) -> None:
    """A loader read from the wrong place (here: a few batches ahead) is named, not trained on."""
    levels = [keys[0][0] for keys in _sampler(trainer, 0)]
    ahead = next(i for i, lvl in enumerate(levels) if lvl != levels[0])
    batches = trainer.loader(0)
    for _ in range(ahead):
        next(batches)
    message = f"step 1 trains the {levels[0]} level but the loader gave a {levels[ahead]} batch"
    with pytest.raises(HecvlError, match=message):
        trainer.train_step(0, trainer.step_module, batches)


def test_the_batch_size_errors_name_their_cause(world: dict[str, Path], tmp_path: Path) -> None:
    params = small_params(world["frames"])
    sizes = {"clip": 8, "phase": 8, "video": 2}
    env = DistEnv()

    def build(pairs: Path, batch_sizes: dict[str, int]) -> None:
        build_level_data(pairs, world["corpus"], params, ("clip", "phase", "video"), batch_sizes, env, 32)

    setting = r"^train\.batch_size\.video is 1: a contrastive batch needs at least 2 samples"
    with pytest.raises(HecvlError, match=setting):
        build(world["pairs"], {**sizes, "video": 1})
    with pytest.raises(HecvlError, match=r"train\.batch_size\.clip is 0"):
        build(world["pairs"], {**sizes, "clip": 0})
    # too few pairs (not the setting): says so
    few = tmp_path / "pairs"
    shutil.copytree(world["pairs"], few)
    write_manifest(few, "video", read_manifest(world["pairs"], "video").slice(0, 1).to_pydict())
    with pytest.raises(HecvlError, match="only 1 video pairs: a contrastive batch needs at least 2"):
        build(few, sizes)
    # more pairs than the batch but fewer than the processes that must share it
    with pytest.raises(HecvlError, match="only 3 video pairs: no batch of at least 2 splits over 4 process"):
        build_level_data(world["pairs"], world["corpus"], params, ("video",), {"video": 4},
                         DistEnv(world_size=4), 32)


def _same_batch(x: dict[str, Any], y: dict[str, Any]) -> None:
    assert x.keys() == y.keys() and x["level"] == y["level"]
    for key, value in x.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, y[key]), key
        else:
            assert value == y[key], key
