"""Schedules and the optimiser's learning-rate curve: pure functions of the (validated) settings."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
import torch

from hecvl.config import TrainSettings, validate_section
from hecvl.errors import HecvlError
from hecvl.training.optim import build_optimizer, lr_factor
from hecvl.training.schedules import build_schedule, steps_for_epochs


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


def _epochs_made(train_settings: TrainSettings, steps: int, bpe: dict[str, int]) -> float:
    """Passes over the finest trained level's pairs that `steps` steps of the schedule make."""
    finest = train_settings.trained_levels[0]
    return build_schedule(train_settings, steps, bpe).counts()[finest] / bpe[finest]


def test_epochs_fine_to_coarse_whole_cycles_until_clip_makes_its_passes() -> None:
    t = train(schedule="fine_to_coarse", alternation={"clip": 4, "phase": 2, "video": 1}, epochs=3)
    bpe = {"clip": 10, "phase": 5, "video": 2}
    steps = steps_for_epochs(t, bpe)
    assert steps == 8 * 7  # 30 clip batches: ceil(30 / 4) = 8 cycles of 4 + 2 + 1 steps
    assert _epochs_made(t, steps, bpe) >= 3 > _epochs_made(t, steps - 7, bpe)  # one cycle less falls short
    s = build_schedule(t, steps, bpe)
    assert s.plan[-1] == ("video",) and s.counts() == {"clip": 32, "phase": 16, "video": 8}
    # the paper's corpus and batches: 25.6k clip pairs / 120 = 213 batches per epoch, 200 epochs
    paper = train(alternation={"clip": 4, "phase": 2, "video": 1}, epochs=200)
    assert steps_for_epochs(paper, {"clip": 213, "phase": 128, "video": 44}) == 10650 * 7


def test_epochs_joint_and_clip_only_one_clip_batch_per_step() -> None:
    bpe = {"clip": 6, "phase": 3, "video": 1}
    joint = train(schedule="joint", epochs=4)
    assert steps_for_epochs(joint, bpe) == 24
    assert build_schedule(joint, 24, bpe).counts() == {"clip": 24, "phase": 24, "video": 24}
    assert steps_for_epochs(train(schedule="clip_only", epochs=5), {"clip": 7}) == 35


def test_epochs_epoch_alternation_counts_its_own_epochs() -> None:
    t = train(schedule="epoch_alternation", epochs=6)  # phase every 3rd, video every 5th epoch
    bpe = {"clip": 2, "phase": 1, "video": 1}
    steps = steps_for_epochs(t, bpe)
    # epochs 0..5: clip+phase+video, clip, clip, clip+phase, clip, clip+video
    assert steps == 4 + 2 + 2 + 3 + 2 + 3
    assert build_schedule(t, steps, bpe).counts() == {"clip": 12, "phase": 2, "video": 2}
    # one more step starts the 7th epoch (its clip pass)
    assert build_schedule(t, steps + 1, bpe).plan[-1] == ("clip",)


def test_epochs_without_the_clip_level_count_the_next_finest() -> None:
    cfg = {"levels": ["phase", "video"], "alternation": {"clip": 4, "phase": 2, "video": 1}, "epochs": 2}
    bpe = {"phase": 5, "video": 3}
    f2c = train(schedule="fine_to_coarse", **cfg)
    assert steps_for_epochs(f2c, bpe) == 5 * 3  # 10 phase batches: 5 cycles of 2 + 1
    assert _epochs_made(f2c, 15, bpe) == 2
    assert steps_for_epochs(train(schedule="joint", **cfg), bpe) == 10
    # epoch_alternation: phase trains on epochs 0 and 3 (every 3rd), video on 0 (every 5th): 4 epochs
    ea = train(schedule="epoch_alternation", **cfg)
    assert steps_for_epochs(ea, bpe) == (5 + 3) + 5
    assert build_schedule(ea, 13, bpe).counts() == {"clip": 0, "phase": 10, "video": 3}


def test_epochs_null_is_train_steps_and_needs_batches() -> None:
    assert train().epochs is None and steps_for_epochs(train(steps=123), {}) == 123
    assert "epochs" not in train().to_dict()  # left out while null: run keys stay as before
    assert train(epochs=200).to_dict()["epochs"] == 200
    with pytest.raises(HecvlError, match=r"^train\.epochs: the clip level has no batches per epoch"):
        steps_for_epochs(train(epochs=2), {"clip": 0, "phase": 3, "video": 1})
    with pytest.raises(HecvlError, match=r"train\.epochs: the video level has no batches per epoch"):
        steps_for_epochs(train(schedule="epoch_alternation", epochs=2), {"clip": 2, "phase": 1})
    with pytest.raises(HecvlError, match=r"^params\.yaml: train\.epochs must be > 0, got 0$"):
        train(epochs=0)
