"""SurgCLIP-β: our loader and forward against the `surgclip` 0.1.0 package's own classes.

The package's SurgCLIP is built at small sizes with random weights (tests/video_released_helpers.py loads
its model.py and TimeSformer without the package's __init__), its state dict saved as is, read back by
`load_surgclip`, and frames, texts and window scores compared on random inputs.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from tokenizer_helpers import TEXTS, piece_ids, read_vocab, surgclip_rule, write_tokenizer_vocab
from video_released_helpers import PROMPTS, package_surgclip, write_vocab

from hecvl.errors import HecvlError
from hecvl.released.surgclip import SurgClipEmbedder
from hecvl.released.surgclip_model import (
    SurgClipConfig,
    load_surgclip,
    read_surgclip_checkpoint,
    surgclip_layout,
)

SIZES = dict(image_size=32, patch_size=8, num_frames=4, width=64, depth=2, heads=4, embed_dim=32,
             vocab_size=200, text_width=48, text_layers=2, text_heads=4, text_ffn=96)  # fmt: skip
CFG = SurgClipConfig(**SIZES)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("surgclip")
    ref = package_surgclip(root, SIZES)
    state = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    ckpt = root / "surgclip_beta.pth"
    torch.save(state, ckpt)
    bert_dir = write_vocab(root / "bert-base-uncased", SIZES["vocab_size"])
    model = load_surgclip(ckpt, bert_dir, cfg=CFG)
    return {"root": root, "ref": ref, "state": state, "ckpt": ckpt, "bert_dir": bert_dir, "model": model}


def _package_frames(ref: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The package's per-frame unit vectors: encode_vision's pooled output through vision_proj."""
    with torch.no_grad():
        _, pooled = ref.encode_vision(x)
        return F.normalize(ref.vision_proj(pooled), dim=-1)


def test_layout_is_the_documented_453_tensors() -> None:
    layout = surgclip_layout()
    assert len(layout) == 453
    assert sum(torch.Size(s).numel() for s in layout.values()) == pytest.approx(230.6e6, rel=1e-3)
    assert sum(k.startswith("vision_encoder.model.") for k in layout) == 249
    assert sum(k.startswith("text_encoder.") for k in layout) == 197
    assert layout["vision_encoder.model.time_embed"] == (1, 16, 768) and layout["temp"] == ()


def test_package_state_dict_has_our_layout(world: dict) -> None:
    assert {k: tuple(v.shape) for k, v in world["state"].items()} == surgclip_layout(CFG)


@pytest.mark.parametrize("frames", [4, 1, 3, 6])
def test_frames_equal_the_package(world: dict, frames: int) -> None:
    """All frame counts: the trained 4, one frame (no time embedding), resampled time embeddings."""
    x = torch.randn(3, frames, 3, 32, 32, generator=torch.Generator().manual_seed(frames))
    got = world["model"].encode_frames(x)
    assert got.shape == (3, frames, SIZES["embed_dim"])
    torch.testing.assert_close(got, _package_frames(world["ref"], x), rtol=0, atol=1e-5)


def test_frame_features_depend_on_the_whole_window(world: dict) -> None:
    """The package's TimeSformer mixes frames: changing one frame changes the others' features."""
    x = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[0, 3] = -y[0, 3]
    a, b = world["model"].encode_frames(x), world["model"].encode_frames(y)
    assert (a[0, 0] - b[0, 0]).abs().max() > 1e-3


def _package_texts(ref: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The package's `encode_text` (input_ids and attention_mask only) through text_proj, unit vectors."""
    with torch.no_grad():
        _, pooled = ref.encode_text(SimpleNamespace(input_ids=ids, attention_mask=mask))
        return F.normalize(ref.text_proj(pooled), dim=-1)


def test_token_ids_follow_the_package_rule(world: dict, tmp_path: Path) -> None:
    """Accents, CJK, punctuation, whitespace and control characters, an empty text, an over-long word."""
    bert_dir = write_tokenizer_vocab(tmp_path / "bert-base-uncased", SIZES["vocab_size"])
    model = load_surgclip(world["ckpt"], bert_dir, cfg=CFG)
    tokens = model.tokenize(TEXTS)
    vocab = read_vocab(bert_dir)
    ids, mask = surgclip_rule(TEXTS, vocab)
    assert torch.equal(tokens["input_ids"], ids) and torch.equal(tokens["attention_mask"], mask)
    assert set(tokens) == {"input_ids", "attention_mask"}  # the package's text encoder takes no token types
    calot = [101, vocab["calot"], vocab["triangle"], vocab["dissection"], 0]  # [CLS] + pieces, no [SEP]
    assert tokens["input_ids"][0, :5].tolist() == calot
    assert tokens["input_ids"][5].tolist() == [101] + [0] * 76  # the empty text: [CLS] alone
    assert not (tokens["input_ids"] == 102).any()


def test_long_texts_keep_76_pieces_with_a_warning(world: dict) -> None:
    model = world["model"]
    long_text = "the gallbladder is cut " * 20  # 100 word pieces
    vocab = read_vocab(world["bert_dir"])
    with pytest.warns(UserWarning, match="truncated from 101 to 77 tokens"):
        tokens = model.tokenize([long_text])
    ids, mask = surgclip_rule([long_text], vocab)
    assert torch.equal(tokens["input_ids"], ids) and torch.equal(tokens["attention_mask"], mask)
    assert int(mask.sum()) == 77
    assert tokens["input_ids"][0, 1:].tolist() == piece_ids(long_text, vocab)[:76]
    exact = " ".join(["cut"] * 76)  # 76 pieces fit whole: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert int(model.tokenize([exact])["attention_mask"].sum()) == 77
    with pytest.raises(TypeError, match="not one string"):
        model.tokenize("calot triangle dissection")
    assert model.tokenize([])["input_ids"].shape == (0, 77)


def test_texts_and_window_logits_equal_the_package(world: dict) -> None:
    """The package's own text encoder on the package rule's ids gives our texts' embeddings."""
    model, ref = world["model"], world["ref"]
    ids, mask = surgclip_rule(PROMPTS, read_vocab(world["bert_dir"]))
    text = model.embed_texts(PROMPTS)
    expected_text = _package_texts(ref, ids, mask)
    torch.testing.assert_close(text, expected_text, rtol=0, atol=1e-5)
    with_sep = ids.clone()  # transformers' BertTokenizer would append [SEP]: another embedding
    with_sep[torch.arange(len(PROMPTS)), mask.sum(1)] = 102
    assert (_package_texts(ref, with_sep, (with_sep > 0).long()) - expected_text).abs().max() > 1e-3
    with torch.no_grad():
        x = torch.randn(5, 4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
        vision = ref.vision_proj(ref.encode_vision(x)[1])
        pooled = ref.encode_text(SimpleNamespace(input_ids=ids, attention_mask=mask))[1]
        sim_v2t, _ = ref.get_sim(vision, ref.text_proj(pooled), temp=ref.temp)
    torch.testing.assert_close(model.logits(model.encode_frames(x), text), sim_v2t, rtol=0, atol=1e-3)
    assert len({int(i) for i in sim_v2t.argmax(1)}) > 1  # the windows do not all pick one class


def test_embed_video_levels_gives_the_package_argmax(world: dict) -> None:
    """cos(m/|m|, text) = mean_t cos(f_t, text) / |m|: the package's logits times temp/|m|."""
    model, ref = world["model"], world["ref"]
    embedder = SurgClipEmbedder(model)
    x = torch.randn(8, 4, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    text = model.embed_texts(PROMPTS)
    video = embedder.embed_video_levels(x, ["joint"])["joint"]
    torch.testing.assert_close(video.norm(dim=-1), torch.ones(8))
    ours = video @ text.T
    logits = model.logits(model.encode_frames(x), text)
    mean_norm = model.encode_frames(x).mean(dim=1).norm(dim=-1, keepdim=True)
    torch.testing.assert_close(ours, logits * model.temp.detach() / mean_norm, rtol=0, atol=1e-5)
    assert torch.equal(ours.argmax(1), logits.argmax(1))
    with torch.no_grad():
        frames = _package_frames(ref, x)
        package = torch.einsum("btd,cd->btc", frames, text).mean(1) / ref.temp
    assert torch.equal(ours.argmax(1), package.argmax(1))


def test_known_prefixes_are_mapped(world: dict, tmp_path: Path) -> None:
    """DDP's `module.`, a training wrapper, VindLU-style `text_encoder.bert.` and transformers 4.30's
    position_ids all load to the same weights."""
    state = world["state"]
    variants = {
        "ddp.pth": {"state_dict": {"module." + k: v for k, v in state.items()}},
        "vindlu.pth": {k.replace("text_encoder.", "text_encoder.bert.", 1): v for k, v in state.items()},
        "old.pth": {**state, "text_encoder.embeddings.position_ids": torch.arange(512).unsqueeze(0)},
    }
    for name, obj in variants.items():
        torch.save(obj, tmp_path / name)
        got = read_surgclip_checkpoint(tmp_path / name, CFG)
        assert set(got) == set(state) and all(torch.equal(got[k], state[k]) for k in state), name
    bad = {**state, "text_encoder.embeddings.position_ids": torch.zeros(1, 512, dtype=torch.long)}
    torch.save(bad, tmp_path / "bad_pos.pth")
    with pytest.raises(HecvlError, match=r"position_ids is not 0\.\.511"):
        read_surgclip_checkpoint(tmp_path / "bad_pos.pth", CFG)
    both = {**state, "text_encoder.bert.pooler.dense.bias": state["text_proj.bias"],
            "text_encoder.bert.embeddings.LayerNorm.bias": state["text_encoder.embeddings.LayerNorm.bias"]}
    torch.save(both, tmp_path / "both.pth")
    with pytest.raises(HecvlError, match="appears under two names"):
        read_surgclip_checkpoint(tmp_path / "both.pth", CFG)


def test_mismatched_checkpoints_are_refused_naming_key_and_file(world: dict, tmp_path: Path) -> None:
    state = dict(world["state"])
    del state["vision_encoder.model.blocks.1.temporal_fc.bias"]
    state["vision_proj.weight"] = torch.zeros(32, 60)
    state["text_encoder.cls.predictions.bias"] = torch.zeros(200)  # an MLM head: not this model
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(HecvlError) as err:
        load_surgclip(path, world["bert_dir"], cfg=CFG)
    msg = str(err.value)
    assert str(path) in msg and "SurgCLIP" in msg
    assert "1 missing keys: vision_encoder.model.blocks.1.temporal_fc.bias" in msg
    assert "1 unexpected keys: text_encoder.cls.predictions.bias" in msg
    assert "vision_proj.weight (32, 60) != (32, 64)" in msg


def test_the_released_sizes_are_checked(world: dict) -> None:
    """Without a test config the loader expects SurgCLIP-β's sizes: a small model is refused."""
    with pytest.raises(HecvlError) as err:
        read_surgclip_checkpoint(world["ckpt"])
    msg = str(err.value)
    assert str(world["ckpt"]) in msg and "(93 keys, expected 453): 360 missing keys" in msg
    assert "word_embeddings.weight (200, 48) != (30522, 768)" in msg


def test_vocab_must_match_the_word_embeddings(world: dict, tmp_path: Path) -> None:
    with pytest.raises(HecvlError, match=r"no vocab\.txt"):
        load_surgclip(world["ckpt"], tmp_path, cfg=CFG)
    write_vocab(tmp_path, 150)
    with pytest.raises(HecvlError, match="150 entries; the checkpoint's word embeddings have 200 rows"):
        load_surgclip(world["ckpt"], tmp_path, cfg=CFG)


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))  # a malicious file: a REDUCE of os.system


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickles_are_refused_without_running(world: dict, tmp_path: Path) -> None:
    marker = tmp_path / "payload_ran"
    raw = tmp_path / "raw.pth"
    raw.write_bytes(pickle.dumps({"temp": _System(marker)}))
    zipped = tmp_path / "zipped.pth"
    torch.save({**world["state"], "temp": _System(marker)}, zipped)
    for path in (raw, zipped):
        with pytest.raises(HecvlError) as err:
            load_surgclip(path, world["bert_dir"], cfg=CFG)
        assert str(path) in str(err.value) and "pickled Python objects" in str(err.value)
        assert path == raw or "posix.system" in str(err.value)  # the offending global is named
    assert not marker.exists()


def test_protocol_normalisation_and_windows_reach_the_model(world: dict) -> None:
    """`--protocol surgclip` normalises with mean = std = 0.5 itself (embed.Renormalised): the same pixels
    as the adapter's own preprocess; the adapter asks for windows of frames (`temporal`)."""
    from hecvl.evaluation.embed import with_normalisation
    from hecvl.evaluation.sources import ScoredModel

    embedder = SurgClipEmbedder(world["model"])
    frames = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8).numpy()
    x = embedder.preprocess(frames)
    torch.testing.assert_close(x, torch.from_numpy(frames).permute(0, 3, 1, 2) / 127.5 - 1.0)
    wrapped = with_normalisation(embedder, "half")
    torch.testing.assert_close(wrapped.preprocess(frames).contiguous(), x, rtol=0, atol=1e-6)
    assert embedder.temporal and wrapped.temporal and isinstance(embedder, ScoredModel)
