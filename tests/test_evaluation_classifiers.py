"""Zero-shot scoring, the linear probe, the embedding cache and the eval settings, on the real model."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hecvl.config import coerce_params, validate_section
from hecvl.config.evaluation import EvalSettings, ProbeSettings
from hecvl.errors import HecvlError
from hecvl.evaluation.embed import (
    EmbeddingCache,
    embed_frames,
    levels_for,
    model_key,
    prefetch,
)
from hecvl.evaluation.probe import fit_probe, probe_scores
from hecvl.evaluation.prompts import load_prompts
from hecvl.evaluation.zeroshot import class_embeddings, zero_shot_scores

MODEL_CFG = {"visual": {"preset": "small", "image_size": 32}, "heads": {"dim": 16}}


@pytest.fixture(scope="module")
def model():
    from hecvl.models import build_model

    return build_model(MODEL_CFG, seed=3).eval()


def test_ensemble_prompts_average_unit_template_embeddings(model) -> None:
    prompts = load_prompts("autolaparo", "ensemble")
    got = class_embeddings(model, prompts, ["phase"])["phase"]
    assert got.shape == (7, 16)
    with torch.no_grad():
        one = model.embed_text(prompts.texts[3], "phase").numpy().astype(np.float64)
    mean = one.mean(axis=0)
    assert np.allclose(got[3], mean / np.linalg.norm(mean), atol=1e-5)
    single = class_embeddings(model, load_prompts("autolaparo", "decomposed"), ["phase"])["phase"]
    with torch.no_grad():
        direct = model.embed_text(load_prompts("autolaparo").flat(), "phase").numpy()
    assert np.allclose(single, direct, atol=1e-5)


def test_scores_are_100_cosine_and_the_ensemble_averages_levels(model) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    levels = levels_for("ensemble")
    emb = embed_frames(model, frames, levels, batch_size=2)
    assert all(e.shape == (5, 16) for e in emb.values())
    assert not np.allclose(emb["clip"], emb["video"])  # separate heads: separate spaces
    with torch.no_grad():
        x = model.preprocess(frames).unsqueeze(1)
        assert np.allclose(emb["phase"], model.embed_video(x, "phase").numpy(), atol=1e-5)
    classes = class_embeddings(model, load_prompts("cholec80"), levels)
    per_level = [zero_shot_scores(emb, classes, [lv]) for lv in levels]
    assert np.allclose(per_level[0], 100 * emb["clip"] @ classes["clip"].T, atol=1e-3)
    assert np.allclose(zero_shot_scores(emb, classes, levels), np.mean(per_level, axis=0), atol=1e-4)


def test_shared_heads_make_every_space_the_same() -> None:
    from hecvl.models import build_model

    shared = build_model({**MODEL_CFG, "heads": {"dim": 16, "mode": "shared"}}, seed=0).eval()
    frames = np.random.default_rng(1).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    emb = embed_frames(shared, frames, ["clip", "phase", "video"])
    classes = class_embeddings(shared, load_prompts("cholec80", "class_name"), ["clip", "phase", "video"])
    clip = zero_shot_scores(emb, classes, ["clip"])
    assert np.allclose(zero_shot_scores(emb, classes, ["clip", "phase", "video"]), clip, atol=1e-4)


def test_probe_maps_classes_absent_from_training_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 8)) * 4
    y = np.repeat([0, 2, 4], 40)  # classes 1 and 3 never seen in training
    x = centres[y] + rng.normal(size=(len(y), 8))
    settings = ProbeSettings(C=1.0, max_iter=500, max_train_frames=90)
    clf = fit_probe(x, y, settings, seed=1)
    probs = probe_scores(clf, centres, num_classes=6)
    assert probs.shape == (5, 6)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs[:, [1, 3, 5]] == 0).all()
    assert probs[[0, 2, 4]].argmax(axis=1).tolist() == [0, 2, 4]
    again = probe_scores(fit_probe(x, y, settings, seed=1), centres, 6)
    assert np.array_equal(probs, again)
    with pytest.raises(HecvlError, match="at least 2 classes"):
        fit_probe(x[:10], np.zeros(10, int), settings, seed=0)


def test_embedding_cache_refuses_entries_of_another_video(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "model", "cholec80", "360x640-bilinear-c224")
    arr = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    cache.save("video41", "clip", arr, {"sha256": "aa"})
    assert np.array_equal(cache.load("video41", "clip", {"sha256": "aa"}), arr)
    assert cache.load("video41", "clip", {"sha256": "bb"}) is None  # the video changed
    assert cache.load("video41", "phase", {"sha256": "aa"}) is None  # never computed
    cache.path("video41", "clip").write_bytes(b"garbage")
    assert cache.load("video41", "clip", {"sha256": "aa"}) is None  # unreadable: recompute


def test_model_key_follows_the_weights_not_the_object(model) -> None:
    from hecvl.models import build_model

    assert model_key(model) == model_key(build_model(MODEL_CFG, seed=3))
    assert model_key(model) != model_key(build_model(MODEL_CFG, seed=4))
    shared = build_model({**MODEL_CFG, "heads": {"dim": 16, "mode": "shared"}}, seed=3)
    assert model_key(model) != model_key(shared)


def test_prefetch_keeps_order_overlaps_and_propagates_errors() -> None:
    active, overlap = [], []

    def load(item: str) -> str:
        active.append(item)
        time.sleep(0.05)
        overlap.append(threading.current_thread() is not threading.main_thread())
        return item.upper()

    assert list(prefetch(["a", "b", "c"], load)) == [("a", "A"), ("b", "B"), ("c", "C")]
    assert all(overlap)

    def broken(item: str) -> str:
        raise HecvlError(f"cannot decode {item}")

    with pytest.raises(HecvlError, match="cannot decode a"):
        list(prefetch(["a", "b"], broken))
    assert list(prefetch([], load)) == []


def test_settings_defaults_overrides_and_typos() -> None:
    s = EvalSettings()
    assert (s.space, s.prompts, s.probe.C) == ("ensemble", "decomposed", 1.0)
    assert coerce_params({}).eval == s  # no eval section: the defaults of hecvl.config
    s = validate_section(EvalSettings, {"space": "clip", "probe": {"C": 0.5}}, "eval").replace(space="video")
    assert (s.space, s.probe.C) == ("video", 0.5)  # a command-line override keeps the file's other values
    with pytest.raises(HecvlError, match=r"^the command line: space must be one of .*got 'frame'$"):
        s.replace(space="frame")
    for bad, message in [
        ({"spaec": "clip"}, r"eval\.spaec is not a setting"),
        ({"space": "frame"},
         r"eval\.space must be one of 'clip', 'phase', 'video' or 'ensemble', got 'frame'"),
        ({"probe": {"c": 1}}, r"eval\.probe\.c is not a setting"),
        ({"batch_size": 0}, r"eval\.batch_size must be > 0, got 0"),
        ({"probe": {"max_train_frames": 1}}, r"eval\.probe\.max_train_frames must be >= 2, got 1"),
    ]:
        with pytest.raises(HecvlError, match=rf"^params\.yaml: {message}$"):
            validate_section(EvalSettings, bad, "eval")
    # a prompt file is a path like any other setting; a missing one stops when the prompts are read
    s = validate_section(EvalSettings, {"prompt_file": "/nonexistent.yaml"}, "eval")
    with pytest.raises(HecvlError, match="prompt file not found"):
        load_prompts(s.prompt_file)
