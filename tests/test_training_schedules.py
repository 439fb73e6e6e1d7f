"""Schedules and the optimiser's learning-rate curve: pure functions of the (validated) settings."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from hecvl.config import TrainSettings, validate_section
from hecvl.errors import HecvlError
from hecvl.training.optim import build_optimizer, lr_factor
from hecvl.training.schedules import build_schedule


def train(**fields) -> TrainSettings:
    """`train:` settings as params.yaml would give them (the rest at their defaults), validated."""
    return validate_section(TrainSettings, fields, "train")


def test_fine_to_coarse_alternates_m_n_l_blocks() -> None:
    s = build_schedule(train(schedule="fine_to_coarse", alternation={"clip": 3, "phase": 2, "video": 1}), 13)
    flat = [lv[0] for lv in s.plan]
    block = ["clip"] * 3 + ["phase"] * 2 + ["video"]
    assert flat == block + block + ["clip"]
    assert s.counts() == {"clip": 7, "phase": 4, "video": 2}
    assert s.batches_before(6) == {"clip": 3, "phase": 2, "video": 1}
    assert s.levels == ("clip", "phase", "video")


def test_fine_to_coarse_with_a_level_switched_off() -> None:
    s = build_schedule(train(schedule="fine_to_coarse", alternation={"clip": 2, "phase": 1, "video": 0}), 6)
    assert [lv[0] for lv in s.plan] == ["clip", "clip", "phase"] * 2
    assert s.levels == ("clip", "phase")


def test_joint_trains_every_weighted_level_every_step() -> None:
    s = build_schedule(train(schedule="joint", level_weights={"clip": 1, "phase": 0.5, "video": 0}), 4)
    assert s.plan == (("clip", "phase"),) * 4
    assert s.weights["phase"] == 0.5


def test_clip_only() -> None:
    s = build_schedule(train(schedule="clip_only"), 5)
    assert s.levels == ("clip",) and len(s.plan) == 5


def test_epoch_alternation_phase_every_3rd_video_every_5th() -> None:
    bpe = {"clip": 2, "phase": 1, "video": 1}
    s = build_schedule(train(schedule="epoch_alternation"), 40, batches_per_epoch=bpe)
    # rebuild the epochs from the plan: an epoch starts with its clip pass
    epochs, i, e = [], 0, 0
    while i < len(s.plan):
        levels = ["clip"] + (["phase"] if e % 3 == 0 else []) + (["video"] if e % 5 == 0 else [])
        n = sum(bpe[lv] for lv in levels)
        epochs.append((levels, [lv[0] for lv in s.plan[i : i + n]]))
        i, e = i + n, e + 1
    for levels, got in epochs[:-1]:
        assert got == [lv for lv in levels for _ in range(bpe[lv])]
    assert s.plan[:4] == (("clip",), ("clip",), ("phase",), ("video",))


def test_schedules_are_deterministic_and_validated() -> None:
    cfg = {"schedule": "fine_to_coarse", "alternation": {"clip": 4, "phase": 2, "video": 1}}
    assert build_schedule(train(**cfg), 50) == build_schedule(train(**dict(cfg)), 50)
    with pytest.raises(HecvlError, match=r"^params\.yaml: train\.schedule must be one of .*, got 'coarse_to"):
        train(schedule="coarse_to_fine")
    with pytest.raises(HecvlError, match=r"^params\.yaml: train\.alternation\.phase must be >= 0, got -1$"):
        train(schedule="fine_to_coarse", alternation={"clip": 4, "phase": -1, "video": 1})
    with pytest.raises(HecvlError, match=r"train: alternation gives no batches to any of train\.levels"):
        train(schedule="fine_to_coarse", alternation={"clip": 0, "phase": 0, "video": 0})
    with pytest.raises(HecvlError, match="batches per epoch"):
        build_schedule(train(schedule="epoch_alternation"), 5)
    with pytest.raises(HecvlError, match="at least 1 step, got 0"):
        build_schedule(train(schedule="clip_only"), 0)


def test_lr_warmup_then_cosine() -> None:
    f = [lr_factor(s, 100, 10, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in pairwise(f[:10]))
    assert all(a >= b for a, b in pairwise(f[10:]))
    assert f[10] == pytest.approx(1.0)
    assert f[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(100, 100, 10, 0.1) == pytest.approx(0.1)


def test_optimizer_decays_only_matrices_and_follows_schedule() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    opt, sched = build_optimizer(model, train(lr=1e-2, weight_decay=0.1, warmup_steps=2), total_steps=10)
    decayed, plain = opt.param_groups
    assert [p.shape for p in decayed["params"]] == [torch.Size([4, 3])]
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0 and len(plain["params"]) == 3
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(5e-3) and lrs[1] == pytest.approx(1e-2)
    assert lrs[-1] < lrs[2]
    with pytest.raises(HecvlError, match=r"^params\.yaml: train\.lr must be > 0, got -1$"):
        train(lr=-1)


def test_levels_restrict_every_schedule() -> None:
    cfg = {"levels": ["clip", "phase"], "alternation": {"clip": 2, "phase": 1, "video": 1}}
    assert build_schedule(train(**cfg, schedule="fine_to_coarse"), 6).levels == ("clip", "phase")
    assert build_schedule(train(**cfg, schedule="joint"), 2).plan == (("clip", "phase"),) * 2
    ea = build_schedule(train(**cfg, schedule="epoch_alternation"), 30, {"clip": 1, "phase": 1})
    assert ea.levels == ("clip", "phase")
    with pytest.raises(HecvlError, match=r"^params\.yaml: train\.levels\.1 must be one of .*got 'scene'$"):
        train(levels=["clip", "scene"])
    with pytest.raises(HecvlError, match=r"^params\.yaml: train: the clip_only schedule needs clip in"):
        train(schedule="clip_only", levels=["phase"])
