"""The HecVL model of params.yaml's CPU default: shapes per level, heads, gradients, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hecvl.config import ModelConfig, load_params
from hecvl.errors import HecvlError
from hecvl.models import LEVELS, HecVLModel, build_model, load_pretrained, save_pretrained
from hecvl.models.losses import info_nce, same_text, text_keys
from hecvl.training.step import ContrastiveStep

ROOT = Path(__file__).resolve().parents[1]
NARRATIONS = ["we clip the cystic duct", "the hook dissects", "as you can see", "the grasper holds it"]


@pytest.fixture(scope="module")
def params() -> dict:
    return load_params(ROOT / "params.yaml").to_dict()


@pytest.fixture(scope="module")
def model(params) -> HecVLModel:
    return build_model(params["model"], seed=0)


@pytest.fixture(scope="module")
def shared(params) -> HecVLModel:
    cfg = {**params["model"], "heads": {**params["model"]["heads"], "mode": "shared"}}
    return build_model(cfg, seed=0)


def frames(b: int, t: int, seed: int = 0, size: int = 64) -> torch.Tensor:
    return torch.randn(b, t, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_cpu_default_is_the_tiny_resnet_and_frozen_minilm(model):
    assert model.config == ModelConfig()  # params.yaml leaves the model to the defaults of hecvl.config
    assert model.visual.dim == 128 and model.text.dim == 384 and model.text.frozen
    assert model.config.visual.image_size == 64 and model.config.heads.dim == 256
    assert model.logit_scale().item() == pytest.approx(10.0)


@pytest.mark.parametrize("level", LEVELS)
def test_embedding_shapes_and_norms_per_level(model, level):
    model.eval()
    with torch.no_grad():
        v = model.embed_video(frames(3, 4), level)
        single = model.embed_video(frames(5, 1)[:, 0], level)  # (N, 3, H, W): single frames
        t = model.embed_text(NARRATIONS[:3], level)
    assert v.shape == (3, 256) and single.shape == (5, 256) and t.shape == (3, 256)
    for x in (v, single, t):
        torch.testing.assert_close(x.norm(dim=-1), torch.ones(len(x)))


def test_video_features_are_the_mean_over_frames_and_masks_drop_padding(model):
    model.eval()
    x = frames(2, 4, seed=1)
    with torch.no_grad():
        per_frame = model.encode_video(x.flatten(0, 1)).view(2, 4, -1)
        torch.testing.assert_close(model.encode_video(x), per_frame.mean(1), rtol=1e-5, atol=1e-6)
        mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
        padded = x.clone()
        padded[1, 2:] = 1e3  # garbage where the mask says padding
        got = model.encode_video(padded, mask)
        torch.testing.assert_close(got[1], per_frame[1, :2].mean(0), rtol=1e-5, atol=1e-6)


def test_separate_heads_differ_per_level_and_shared_heads_are_one(model, shared):
    sep = {n for n, _ in model.named_parameters() if "heads" in n}
    assert {n.split(".")[1] for n in sep} == set(LEVELS)
    assert {n.split(".")[1] for n, _ in shared.named_parameters() if "heads" in n} == {"shared"}
    n_sep = sum(p.numel() for n, p in model.named_parameters() if "heads" in n)
    n_sh = sum(p.numel() for n, p in shared.named_parameters() if "heads" in n)
    assert n_sep == 3 * n_sh
    model.eval()
    shared.eval()
    x = frames(2, 2, seed=2)
    with torch.no_grad():
        a, b = model.embed_video(x, "clip"), model.embed_video(x, "phase")
        assert not torch.allclose(a, b, atol=1e-3)
        assert torch.equal(shared.embed_video(x, "clip"), shared.embed_video(x, "video"))
        assert torch.equal(shared.embed_text(NARRATIONS, "clip"), shared.embed_text(NARRATIONS, "phase"))
    with pytest.raises(ValueError, match="level must be one of"):
        model.embed_video(x, "step")


def test_gradients_reach_the_level_heads_and_the_visual_encoder(model):
    model.train()
    model.zero_grad(set_to_none=True)
    losses = model("clip", frames(4, 3, seed=3), NARRATIONS)
    assert set(losses) == {"clip/video_text", "clip/total"}
    losses["clip/total"].backward()
    for module in (model.video_heads["clip"], model.text_heads["clip"], model.visual.resnet.embedder):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in model.video_heads["phase"].parameters())
    assert all(p.grad is None for p in model.text.parameters())  # frozen
    model.zero_grad(set_to_none=True)


def test_phase_level_adds_the_parent_child_term(model):
    model.train()
    x = frames(3, 2, seed=4)
    children = [["we dissect", "the hook"], ["clip the duct"], ["bag", "extract", "remove the specimen"]]
    out = model("phase", x, ["calot dissection", "clipping", "packaging"], child_texts=children)
    assert set(out) == {"phase/video_text", "phase/parent_child", "phase/total"}
    w = model.config.loss.parent_child_weight
    torch.testing.assert_close(out["phase/total"], out["phase/video_text"] + w * out["phase/parent_child"])
    with pytest.raises(ValueError, match="phase and video levels"):
        model("clip", x, NARRATIONS[:3], child_texts=children)


def test_overlapping_narrations_use_mil_nce_which_equals_infonce_for_one(model):
    model.eval()
    x = frames(4, 2, seed=5)
    with torch.no_grad():
        single = model("clip", x, NARRATIONS)["clip/video_text"]
        bags = model("clip", x, [[t] for t in NARRATIONS])["clip/video_text"]
        several = model("clip", x, [[t, "and now"] for t in NARRATIONS])["clip/video_text"]
    torch.testing.assert_close(bags, single)
    assert not torch.isclose(several, single)


def test_identical_texts_are_positives_in_forward_as_in_the_step(model):
    """forward() applies the same duplicate rule as the training step: every term, both paths."""
    model.eval()
    x = frames(4, 2, seed=6)
    texts = ["as you can see", "we clip the cystic duct", "as you can see", "the hook dissects"]
    children = [["we start"], ["the hook", "we dissect"], ["we dissect", "the hook"], ["bag it"]]
    bags = [[t, "and now"] for t in texts]
    step = ContrastiveStep(model)
    with torch.no_grad():
        out = model("phase", x, texts, child_texts=children)
        terms = step.level_terms("phase", x, texts, children)
        for name in ("phase/video_text", "phase/parent_child", "phase/total"):
            torch.testing.assert_close(out[name], terms[name])
        assert terms["phase/duplicate_texts"].item() == 1.0
        clip = model("clip", x, texts)["clip/video_text"]
        video, text = model.embed_video(x, "clip"), model.embed_text(texts, "clip")
        scale = model.logit_scale()
        torch.testing.assert_close(clip, info_nce(video, text, scale, same_text(text_keys(texts))))
        assert not torch.isclose(clip, info_nce(video, text, scale))
        torch.testing.assert_close(model("clip", x, bags)["clip/video_text"],
                                   step.level_terms("clip", x, texts, bags=bags)["clip/video_text"])


def test_preprocess_resizes_crops_and_normalises(model):
    rng = np.random.default_rng(0)
    out = model.preprocess(rng.integers(0, 256, (2, 3, 48, 80, 3), dtype=np.uint8))
    assert out.shape == (2, 3, 3, 64, 64) and out.dtype == torch.float32
    mean = np.array(model.config.visual.mean)
    flat = np.broadcast_to(np.round(mean * 255).astype(np.uint8), (1, 64, 64, 3))
    x = model.preprocess(flat)
    expected = (np.round(mean * 255) / 255 - mean) / np.array(model.config.visual.std)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor(expected, dtype=torch.float32))
    with pytest.raises(ValueError, match="uint8"):
        model.preprocess(np.zeros((1, 64, 64, 3), dtype=np.float32))


def test_build_is_deterministic_for_a_seed_and_leaves_the_global_rng(params):
    before = torch.random.get_rng_state()
    a, b = build_model(params["model"], seed=7), build_model(params["model"], seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    other = build_model(params["model"], seed=8)
    assert not torch.equal(sa["video_heads.clip.weight"], other.video_heads.clip.weight)


def test_save_load_round_trip_is_bit_identical(model, params, tmp_path):
    save_pretrained(model, params, tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["config.json", "model.safetensors"]
    loaded, cfg = load_pretrained(tmp_path / "export")
    assert cfg["model"] == model.config.to_dict() and cfg["data"] == params["data"]
    assert "hecvl_export" not in cfg
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    model.eval()
    x = frames(2, 2, seed=6)
    with torch.no_grad():
        assert torch.equal(model.embed_video(x, "video"), loaded.embed_video(x, "video"))
        assert torch.equal(model.embed_text(NARRATIONS, "phase"), loaded.embed_text(NARRATIONS, "phase"))
    with pytest.raises(ValueError, match="does not describe"):
        save_pretrained(model, {"model": {"heads": {"dim": 8}}}, tmp_path / "bad")


def test_corrupt_or_mismatched_exports_are_refused(model, params, tmp_path):
    out = save_pretrained(model, params["model"], tmp_path / "m")
    weights, config = out / "model.safetensors", out / "config.json"
    good = weights.read_bytes()
    flipped = bytearray(good)
    flipped[-100] ^= 0xFF
    weights.write_bytes(bytes(flipped))
    with pytest.raises(HecvlError, match="SHA-256 differs") as err:
        load_pretrained(out)
    assert "model.safetensors" in str(err.value)
    # without the recorded checksum, a truncated file is still caught by the format check
    cfg = json.loads(config.read_text())
    del cfg["hecvl_export"]
    config.write_text(json.dumps(cfg))
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(HecvlError, match="not a readable safetensors file"):
        load_pretrained(out)
    weights.write_bytes(good)
    cfg["model"]["heads"]["dim"] = 128  # the config no longer describes the weights
    config.write_text(json.dumps(cfg))
    with pytest.raises(HecvlError, match=r"do not match the configured model.*wrong shape"):
        load_pretrained(out)
    config.write_text("{not json")
    with pytest.raises(HecvlError, match="not valid JSON"):
        load_pretrained(out)


def test_config_errors_are_clear(params):
    with pytest.raises(HecvlError, match=r"model\.heads\.size is not a setting$"):
        build_model({"heads": {"size": 3}})
    with pytest.raises(HecvlError,
                       match=r"model\.heads\.mode must be one of 'separate' or 'shared', got 'both'$"):
        build_model({"heads": {"mode": "both"}})
    with pytest.raises(HecvlError, match=r"model\.loss: temperature is below 1 / max_logit_scale$"):
        build_model({"loss": {"temperature": 0.001}})
    with pytest.raises(HecvlError, match=r"identity needs heads\.dim"):
        build_model({"heads": {"text": "identity", "dim": 256}})
