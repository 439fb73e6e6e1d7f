"""Pretraining on the smoke world: losses fall, every schedule and both head modes train, runs are tracked."""

from __future__ import annotations

import copy
import json
import logging
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from training_helpers import small_params, smoke_world, write_params

from hecvl import tracking
from hecvl.cli import main
from hecvl.config import TrainSettings, validate_section
from hecvl.errors import HecvlError
from hecvl.models import build_model, load_pretrained
from hecvl.models.losses import info_nce, mil_nce
from hecvl.pairing.datasets import PairCollate, PairDataset
from hecvl.pairing.positives import positive_rule
from hecvl.training.data import frame_geometry
from hecvl.training.step import ContrastiveStep
from hecvl.training.trainer import Trainer, _metrics


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return smoke_world(tmp_path_factory)


def fixed_losses(trainer: Trainer) -> dict[str, float]:
    """Each level's total loss on a fixed batch (manifest frame plans, centre crops), on a copy of the
    model in training mode (batch statistics), without touching the trainer's model. With
    `train.mil_nce` on, the clip batch carries its bags of positives, as in training."""
    model = copy.deepcopy(trainer.model).train()
    vis = model.config.visual
    size, crop = frame_geometry(trainer.params, vis.image_size)
    out = {}
    with torch.no_grad():
        for level in trainer.data:
            ds = PairDataset.from_params(trainer.pairs_dir, level, trainer.corpus_root, trainer.params,
                                         train=False, size=size, crop=crop, dtype="float32",
                                         mean=vis.mean, std=vis.std,
                                         positives=positive_rule(trainer.settings) if level == "clip"
                                         else None)
            batch = PairCollate()([ds[i] for i in range(min(len(ds), 8))])
            terms = ContrastiveStep(model, max_texts=trainer.step_module.max_texts).level_terms(
                level, batch["frames"], batch["text"], batch.get("child_texts"), bags=batch.get("texts"))
            out[level] = float(terms[f"{level}/total"])
    return out


def test_every_level_loss_falls_and_the_run_is_tracked(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("HECVL_TRACKING", "on")
    calls: list[dict] = []
    real_run = tracking.mlflow_run

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(tracking, "mlflow_run", spy)
    params = small_params(world["frames"], {"train": {"steps": 16, "checkpoint_every": 0}})
    trainer = Trainer(params, world["pairs"], tmp_path / "run", corpus_root=world["corpus"], variant="hecvl")
    before = fixed_losses(trainer)
    result = trainer.train(progress=False)
    after = fixed_losses(trainer)
    for level in ("clip", "phase", "video"):
        assert after[level] < before[level] - 0.05, (level, before[level], after[level])

    # outputs: weights that load, the resolved config, one loss row per step
    out = tmp_path / "run"
    model, cfg = load_pretrained(out)
    assert cfg["train"]["steps"] == 16 and model.config.heads.mode == "separate"
    losses = pd.read_csv(out / "losses.csv")
    assert list(losses["step"]) == list(range(1, 17)) and result.losses.shape == losses.shape
    assert list(losses["levels"][:4]) == ["clip", "clip", "phase", "video"]
    assert losses["lr"].iloc[0] < losses["lr"].iloc[1] and losses["lr"].iloc[-1] < losses["lr"].max()
    config = json.loads((out / "train_config.json").read_text())
    assert config["variant"] == "hecvl"
    assert config["schedule"]["batches"] == {"clip": 8, "phase": 4, "video": 4}
    assert config["batch_size"] == {"clip": 8, "phase": 8, "video": 2}
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == ["step-00000016.pt"]  # final only

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(params["study"]["name"]).experiment_id])
    assert run.data.tags["variant"] == "hecvl" and "git_commit" in run.data.tags
    assert "data_version" in run.data.tags and run.data.params["train.schedule"] == "fine_to_coarse"
    rid = run.info.run_id
    assert len(client.get_metric_history(rid, "loss/clip/video_text")) == 8
    assert len(client.get_metric_history(rid, "loss/phase/parent_child")) == 4
    assert len(client.get_metric_history(rid, "lr")) == 16
    assert "throughput/samples_per_s" in run.data.metrics
    assert calls[0]["system_metrics"] is True  # MLflow samples CPU/memory (and GPU with nvidia-ml-py)
    names = {a.path for a in client.list_artifacts(rid)}
    assert {"model", "losses.csv", "train_config.json", "summary.json"} <= names
    exported = {a.path for a in client.list_artifacts(rid, "model")}
    assert exported == {"model/model.safetensors", "model/config.json"}


@pytest.mark.parametrize(
    ("schedule", "heads", "trained", "untouched"),
    [
        ("fine_to_coarse", "shared", {"shared"}, set()),
        ("joint", "separate", {"clip", "phase", "video"}, set()),
        ("clip_only", "separate", {"clip"}, {"phase", "video"}),
        ("epoch_alternation", "separate", {"clip", "phase", "video"}, set()),
    ],
)
def test_schedules_and_head_modes_train(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    schedule: str, heads: str, trained: set[str], untouched: set[str],
) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")
    steps = 6
    params = small_params(world["frames"], {
        "train": {"schedule": schedule, "steps": steps, "checkpoint_every": 0},
        "model": {"heads": {"mode": heads}},
    })
    trainer = Trainer(params, world["pairs"], tmp_path / "run", corpus_root=world["corpus"], variant=schedule)
    init = {k: v.clone() for k, v in trainer.model.state_dict().items() if "heads" in k}
    trainer.train(progress=False)
    losses = pd.read_csv(tmp_path / "run" / "losses.csv")
    assert len(losses) == steps and losses["loss"].map(math.isfinite).all()
    assert tuple(losses["levels"]) == tuple("+".join(lv) for lv in trainer.schedule.plan)
    if schedule == "joint":
        assert set(losses["levels"]) == {"clip+phase+video"}
    if schedule == "epoch_alternation":  # epoch 0 passes over clip, then phase, then video pairs
        per = {lvl: d.per_epoch for lvl, d in trainer.data.items()}
        assert list(losses["levels"][: per["clip"] + 1]) == ["clip"] * per["clip"] + ["phase"]
    model, _ = load_pretrained(tmp_path / "run")
    assert set(model.video_heads) == ({"shared"} if heads == "shared" else {"clip", "phase", "video"})
    state = model.state_dict()
    for name in trained:
        assert not torch.equal(state[f"video_heads.{name}.weight"], init[f"video_heads.{name}.weight"]), name
    for name in untouched:
        assert torch.equal(state[f"video_heads.{name}.weight"], init[f"video_heads.{name}.weight"]), name


def test_cli_reports_bad_settings_and_missing_pairs(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")
    bad = write_params(tmp_path / "bad.yaml", world["frames"], {"train": {"grad_clp": 0}})
    out = ["--out", str(tmp_path / "o")]
    args = ["pretrain", "--pairs", str(world["pairs"]), "--corpus", str(world["corpus"]), *out]
    assert main([*args, "--params", str(bad)]) == 2
    assert "train.grad_clp is not a setting" in capsys.readouterr().err
    good = write_params(tmp_path / "good.yaml", world["frames"])
    assert main([*args, "--params", str(good), "--variant", "nope"]) == 2
    assert "unknown variant 'nope'" in capsys.readouterr().err
    missing = ["pretrain", "--params", str(good), "--pairs", str(tmp_path / "none"), *out]
    assert main([*missing, "--corpus", str(world["corpus"])]) == 2
    assert "no clip manifest here" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_gradient_accumulation_reads_micro_batches(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")
    params = small_params(world["frames"], {"train": {"steps": 4, "grad_accum": 2, "checkpoint_every": 0}})
    trainer = Trainer(params, world["pairs"], tmp_path / "run", corpus_root=world["corpus"])
    trainer.train(progress=False, track=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # plan: clip, clip, phase, video; every step = 2 micro-batches of the global batch (8, 8, 2)
    assert summary["per_level"]["clip"]["samples"] == 2 * 2 * 8
    assert summary["per_level"]["phase"]["samples"] == 2 * 8
    assert summary["per_level"]["video"]["samples"] == 2 * 2


def test_loader_workers_do_not_change_the_run(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sample's randomness is keyed by (seed, epoch, index): worker processes give the same batches."""
    monkeypatch.setenv("HECVL_TRACKING", "off")
    runs = {}
    for workers in (0, 2):
        settings = {"steps": 4, "num_workers": workers, "checkpoint_every": 0}
        params = small_params(world["frames"], {"train": settings})
        Trainer(params, world["pairs"], tmp_path / f"w{workers}", corpus_root=world["corpus"]).train(
            progress=False, track=False)
        runs[workers] = load_pretrained(tmp_path / f"w{workers}")[0].state_dict()
    assert all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])
    assert (tmp_path / "w0" / "losses.csv").read_bytes() == (tmp_path / "w2" / "losses.csv").read_bytes()


# --- MIL-NCE over each clip's nearby narrations (train.mil_nce) ------------------------------------


def test_mil_nce_settings_are_validated() -> None:
    assert positive_rule(TrainSettings()) is None  # off by default: the paper's InfoNCE
    on = validate_section(TrainSettings, {"mil_nce": {"enabled": True, "context_s": 1}}, "train")
    assert (positive_rule(on).context_s, positive_rule(on).max_texts) == (1.0, 4)
    for bad, message in [
        ({"enabled": "yes"}, "train.mil_nce.enabled must be true or false, got 'yes'"),
        ({"context_s": -0.5}, "train.mil_nce.context_s must be >= 0, got -0.5"),
        ({"max_texts": 0}, "train.mil_nce.max_texts must be > 0, got 0"),
        ({"max_texts": 2.5}, "train.mil_nce.max_texts must be an integer, got 2.5"),
        ({"max_text": 3}, "train.mil_nce.max_text is not a setting"),
    ]:
        with pytest.raises(HecvlError, match=rf"^params\.yaml: {re.escape(message)}$"):
            validate_section(TrainSettings, {"mil_nce": bad}, "train")


def test_contrastive_step_with_bags_is_mil_nce(world: dict[str, Path]) -> None:
    params = small_params(world["frames"])
    model = build_model(params["model"], seed=0).eval()
    frames = torch.randn(3, 2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    texts = ["the hook opens the peritoneum", "a clip on the cystic duct", "scissors divide the duct"]
    bags = [[texts[0], "the grasper holds the gallbladder"], [texts[1]],
            [texts[2], "the clip applier fires", "bleeding is controlled"]]
    step = ContrastiveStep(model, max_texts=4)
    with torch.no_grad():
        terms = step.level_terms("clip", frames, texts, bags=bags)
        video = model.embed_video(frames, "clip")
        padded = torch.zeros(3, 4, video.shape[1])
        mask = torch.zeros(3, 4, dtype=torch.bool)
        for i, bag in enumerate(bags):
            padded[i, : len(bag)] = model.embed_text(bag, "clip")
            mask[i, : len(bag)] = True
        expected = mil_nce(video, padded, mask, model.logit_scale())
        torch.testing.assert_close(terms["clip/video_text"], expected)
        assert terms["clip/total"] is terms["clip/video_text"] and float(terms["clip/positives"]) == 2.0
        # one text per bag: exactly the InfoNCE the step computes without bags
        single = step.level_terms("clip", frames, texts, bags=[[t] for t in texts])["clip/video_text"]
        plain = step.level_terms("clip", frames, texts)["clip/video_text"]
        torch.testing.assert_close(single, plain)
        by_hand = info_nce(video, model.embed_text(texts, "clip"), model.logit_scale())
        torch.testing.assert_close(plain, by_hand)
    with pytest.raises(ValueError, match="exceeds max_texts"):
        ContrastiveStep(model, max_texts=2).level_terms("clip", frames, texts, bags=bags)
    assert _metrics({"clip/positives": 2.5, "clip/total": 1.0, "loss": 1.0, "lr": 0.1, "grad_norm": 1.0},
                    1.0, 1.0)["batch/clip/positives"] == 2.5  # a statistic, not logged as a loss


def test_mil_nce_pretraining_trains_and_is_deterministic(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")
    overrides = {"train": {"schedule": "clip_only", "steps": 10, "checkpoint_every": 0,
                           "mil_nce": {"enabled": True, "context_s": 2.0, "max_texts": 3}}}
    params = small_params(world["frames"], overrides)
    first = Trainer(params, world["pairs"], tmp_path / "a", corpus_root=world["corpus"], variant="mil_nce")
    assert first.step_module.max_texts == 3 and first.data["clip"].dataset.neighbours is not None
    before = fixed_losses(first)["clip"]
    result = first.train(progress=False, track=False)
    after = fixed_losses(first)["clip"]
    assert after < before - 0.05, (before, after)
    bags = result.losses["clip/positives"]
    assert bags.between(1.0, 3.0).all() and bags.mean() > 1.2  # most smoke clips have a neighbour
    assert result.losses["clip/video_text"].map(math.isfinite).all()
    Trainer(params, world["pairs"], tmp_path / "b", corpus_root=world["corpus"], variant="mil_nce").train(
        progress=False, track=False)
    for name in ("losses.csv", "model.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    config = json.loads((tmp_path / "a" / "train_config.json").read_text())
    assert config["train"]["mil_nce"] == {"enabled": True, "context_s": 2.0, "max_texts": 3}


def test_text_feature_store_is_shared_by_runs_and_changes_nothing(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """train.text_cache: the first run encodes and stores the corpus texts, a later run (another seed)
    reads them; the results are those of runs without the store."""
    monkeypatch.setenv("HECVL_TRACKING", "off")
    cache = tmp_path / "cache"  # frames.cache: the text feature store lives in its text/ folder
    base = {"train": {"steps": 4, "checkpoint_every": 0}, "frames": {"cache": str(cache)}}
    stored = small_params(world["frames"], {**base, "train": {**base["train"], "text_cache": True}})
    plain = small_params(world["frames"], {**base, "train": {**base["train"], "text_cache": False}})

    def run(params: dict, out: str, seed: int) -> bytes:
        p = {**params, "seed": seed}
        trainer = Trainer(p, world["pairs"], tmp_path / out, corpus_root=world["corpus"])
        trainer.train(progress=False, track=False)
        return (tmp_path / out / "model.safetensors").read_bytes()

    with caplog.at_level(logging.INFO, logger="hecvl.training.trainer"):
        a = run(stored, "a", 0)
        assert "encoded" in caplog.text and len(list((cache / "text").glob("*.safetensors"))) == 1
        caplog.clear()
        b = run(stored, "b", 1)
        assert "read from the store" in caplog.text
    assert run(plain, "a0", 0) == a and run(plain, "b0", 1) == b
    assert len(list((cache / "text").glob("*.safetensors"))) == 1  # the runs without it wrote nothing
