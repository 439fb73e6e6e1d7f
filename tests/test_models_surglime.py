"""SurgLIME: our loader (LoRA merged at load) against a literal forward with the LoRA computed explicitly.

The checkpoint is written by hand in the peft 0.21.2 layout of released_models.md §3
(tests/video_released_helpers.py), at small sizes; the literal forward below uses only the file's tensors
and torch.nn.functional, adding scale·B(A(x)) to every LoRA layer's output as peft does unmerged.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tokenizer_helpers import TEXTS, piece_ids, read_vocab, write_tokenizer_vocab
from transformers import BertConfig, BertModel
from video_released_helpers import PROMPTS, surglime_parts, surglime_state_dict, write_vocab

from hecvl.errors import HecvlError
from hecvl.released.surglime import SurgLimeEmbedder
from hecvl.released.surglime_model import (
    SurgLimeConfig,
    load_surglime,
    read_surglime_checkpoint,
    surglime_layout,
)

SIZES = dict(image_size=32, patch_size=8, width=64, depth=2, heads=4, embed_dim=32, rank=4, vocab_size=150,
             text_width=48, text_layers=2, text_heads=4, text_ffn=96)  # fmt: skip
CFG = SurgLimeConfig(image_size=32, patch_size=8, width=64, depth=2, heads=4, embed_dim=32, rank=4, alpha=8,
                     text_width=48, text_layers=2, text_heads=4, text_ffn=96)  # fmt: skip
SCALE = 8 / 4


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("surglime")
    parts = surglime_parts(SIZES)
    state = surglime_state_dict(parts)
    ckpt = root / "surglime.pth"
    torch.save(state, ckpt)
    bert_dir = write_vocab(root / "PubMedBERT", SIZES["vocab_size"])
    return {"parts": parts, "state": state, "ckpt": ckpt, "bert_dir": bert_dir,
            "model": load_surglime(ckpt, bert_dir, cfg=CFG)}  # fmt: skip


# ---- literal forward, LoRA unmerged ------------------------------------------------------------------------
def lora_linear(sd: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    base = F.linear(x, sd[f"{name}.base_layer.weight"], sd[f"{name}.base_layer.bias"])
    return base + SCALE * F.linear(F.linear(x, sd[f"{name}.lora_A.default.weight"]),
                                   sd[f"{name}.lora_B.default.weight"])  # fmt: skip


def literal_vision(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> the class token after the final norm, (N, C)."""
    w, heads = SIZES["width"], SIZES["heads"]
    p = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=SIZES["patch_size"])
    t = torch.cat([sd["cls_token"].expand(len(x), 1, w), p.flatten(2).transpose(1, 2)], 1) + sd["pos_embed"]
    for i in range(SIZES["depth"]):
        b = f"blocks.{i}"
        h = F.layer_norm(t, (w,), sd[f"{b}.norm1.weight"], sd[f"{b}.norm1.bias"], eps=1e-6)
        q, k, v = lora_linear(sd, f"{b}.attn.qkv", h).chunk(3, dim=-1)
        q, k, v = (z.unflatten(-1, (heads, w // heads)).transpose(1, 2) for z in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) / (w // heads) ** 0.5, dim=-1) @ v
        att = att.transpose(1, 2).flatten(2)
        t = t + F.linear(att, sd[f"{b}.attn.proj.weight"], sd[f"{b}.attn.proj.bias"])
        h = F.layer_norm(t, (w,), sd[f"{b}.norm2.weight"], sd[f"{b}.norm2.bias"], eps=1e-6)
        h = F.gelu(F.linear(h, sd[f"{b}.mlp.fc1.weight"], sd[f"{b}.mlp.fc1.bias"]))
        t = t + F.linear(h, sd[f"{b}.mlp.fc2.weight"], sd[f"{b}.mlp.fc2.bias"])
    return F.layer_norm(t, (w,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)[:, 0]


def projection(sd: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    h = F.linear(x, sd[f"{name}.0.weight"], sd[f"{name}.0.bias"])
    h = F.gelu(F.layer_norm(h, h.shape[-1:], sd[f"{name}.1.weight"], sd[f"{name}.1.bias"]))
    return F.normalize(F.linear(h, sd[f"{name}.3.weight"], sd[f"{name}.3.bias"]), dim=-1)


def literal_windows(parts: dict, x: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) -> attention-pooled class tokens through vision_proj, unit vectors."""
    b, t = x.shape[:2]
    tokens = literal_vision(parts["vision"], x.flatten(0, 1)).view(b, t, -1)
    hd = parts["heads"]
    hidden = torch.tanh(F.linear(tokens, hd["temporal_pool.attention.0.weight"],
                                 hd["temporal_pool.attention.0.bias"]))  # fmt: skip
    score = F.linear(hidden, hd["temporal_pool.attention.2.weight"], hd["temporal_pool.attention.2.bias"])
    pooled = (torch.softmax(score, dim=1) * tokens).sum(dim=1)
    return projection(hd, "vision_proj", pooled)


def literal_texts(parts: dict, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """transformers' BertModel with peft-style unmerged LoRA on query and value (forward hooks)."""
    cfg = BertConfig(vocab_size=SIZES["vocab_size"], hidden_size=SIZES["text_width"],
                     num_hidden_layers=SIZES["text_layers"], num_attention_heads=SIZES["text_heads"],
                     intermediate_size=SIZES["text_ffn"])  # fmt: skip
    bert = BertModel(cfg, add_pooling_layer=True).eval()
    sd = parts["text"]
    plain = {k.replace(".base_layer.", "."): v for k, v in sd.items() if ".lora_" not in k}
    bert.load_state_dict(plain, strict=True)
    for name, module in bert.named_modules():
        if name.endswith(("attention.self.query", "attention.self.value")):
            a, b = sd[f"{name}.lora_A.default.weight"], sd[f"{name}.lora_B.default.weight"]
            module.register_forward_hook(lambda m, args, out, a=a, b=b: out + SCALE * args[0] @ a.T @ b.T)
    with torch.no_grad():
        first = bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        return projection(parts["heads"], "text_proj", first)


# ---- tests ------------------------------------------------------------------------------------------------
def test_layout_is_the_documented_859_entries() -> None:
    layout = surglime_layout()
    assert len(layout) == 859
    assert sum(torch.Size(s).numel() for s in layout.values()) == pytest.approx(394.8e6, rel=1e-3)
    assert layout["vision_base.blocks.0.attn.qkv.lora_A.default.weight"] == (16, 768)
    value = "text_encoder.base_model.model.encoder.layer.11.attention.self.value"
    assert layout[f"{value}.lora_B.default.weight"] == (768, 16)
    assert layout["logit_scale"] == ()


def test_handmade_file_has_our_layout(world: dict) -> None:
    expected = surglime_layout(SurgLimeConfig(**{**CFG.__dict__, "vocab_size": SIZES["vocab_size"]}))
    assert {k: tuple(v.shape) for k, v in world["state"].items()} == expected


@pytest.mark.parametrize("frames", [8, 3, 1])
def test_windows_equal_the_literal_forward(world: dict, frames: int) -> None:
    x = torch.randn(3, frames, 3, 32, 32, generator=torch.Generator().manual_seed(frames))
    got = world["model"].encode_windows(x)
    torch.testing.assert_close(got, literal_windows(world["parts"], x), rtol=0, atol=2e-5)
    if frames == 1:  # one frame's pooling is that frame
        token = literal_vision(world["parts"]["vision"], x[:, 0])
        frame = projection(world["parts"]["heads"], "vision_proj", token)
        torch.testing.assert_close(got, frame, rtol=0, atol=2e-5)


def test_lora_matters(world: dict) -> None:
    """Dropping the LoRA terms changes the embeddings: the merge is not a no-op on these weights."""
    x = torch.randn(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    parts = world["parts"]
    no_lora = {k: (torch.zeros_like(v) if "lora_B" in k else v) for k, v in parts["vision"].items()}
    without = literal_windows({**parts, "vision": no_lora}, x)
    assert (without - world["model"].encode_windows(x)).abs().max() > 1e-3


def test_texts_equal_the_literal_forward(world: dict) -> None:
    model = world["model"]
    tokens = model.tokenize(PROMPTS)
    lengths = tokens["attention_mask"].sum(1)
    assert tokens["input_ids"].shape[1] == int(lengths.max()) < 77  # padded to the longest, not to 77
    expected = literal_texts(world["parts"], tokens["input_ids"], tokens["attention_mask"])
    torch.testing.assert_close(model.embed_texts(PROMPTS), expected, rtol=0, atol=2e-5)
    with pytest.warns(UserWarning, match="truncated from 182 to 77 tokens"):
        long = model.tokenize(["the gallbladder " * 60])
    assert long["input_ids"].shape == (1, 77)


def authors_rule(texts: list[str], vocab: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The SurgLIME zero-shot scripts' `tokenizer(prompts, padding=True, truncation=True, max_length=77)`
    with PubMedBERT's uncased tokenizer: [CLS] + at most 75 pieces + [SEP] per text, [PAD] (0) to the
    longest row; only input_ids and attention_mask reach the text encoder (token types default to 0)."""
    rows = [[vocab["[CLS]"], *piece_ids(text, vocab)[:75], vocab["[SEP]"]] for text in texts]
    width = max(len(row) for row in rows)
    ids = torch.tensor([row + [vocab["[PAD]"]] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    return ids, mask


def test_token_ids_follow_the_authors_rule(world: dict, tmp_path: Path) -> None:
    """Accents, CJK, punctuation, whitespace and control characters, an empty text, an over-long word;
    then with an over-long text in the batch: 75 pieces kept, [SEP] last, the batch padded to 77."""
    bert_dir = write_tokenizer_vocab(tmp_path / "PubMedBERT", SIZES["vocab_size"])
    model = load_surglime(world["ckpt"], bert_dir, cfg=CFG)
    vocab = read_vocab(bert_dir)
    tokens = model.tokenize(TEXTS)
    ids, mask = authors_rule(TEXTS, vocab)
    assert torch.equal(tokens["input_ids"], ids) and torch.equal(tokens["attention_mask"], mask)
    assert torch.equal(tokens["token_type_ids"], torch.zeros_like(ids))
    long_text = "the gallbladder is cut " * 20  # 100 word pieces
    with pytest.warns(UserWarning, match="truncated from 102 to 77 tokens"):
        tokens = model.tokenize([*TEXTS, long_text])
    ids, mask = authors_rule([*TEXTS, long_text], vocab)
    assert tokens["input_ids"].shape == (len(TEXTS) + 1, 77)
    assert torch.equal(tokens["input_ids"], ids) and torch.equal(tokens["attention_mask"], mask)
    assert tokens["input_ids"][-1, 1:76].tolist() == piece_ids(long_text, vocab)[:75]


def test_embedder_scores_by_dot_product(world: dict) -> None:
    embedder = SurgLimeEmbedder(world["model"])
    frames = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8).numpy()
    x = embedder.preprocess(frames)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (torch.from_numpy(frames).permute(0, 3, 1, 2) / 255.0 - mean) / std)
    video = embedder.embed_video_levels(x.view(2, 4, 3, 32, 32), ["joint"])["joint"]
    expected = literal_windows(world["parts"], x.view(2, 4, 3, 32, 32))
    torch.testing.assert_close(video, expected, rtol=0, atol=2e-5)


def test_module_prefix_is_stripped(world: dict, tmp_path: Path) -> None:
    torch.save({"module." + k: v for k, v in world["state"].items()}, tmp_path / "ddp.pth")
    parts, cfg = read_surglime_checkpoint(tmp_path / "ddp.pth", CFG)
    assert cfg.vocab_size == SIZES["vocab_size"]
    ours, _ = read_surglime_checkpoint(world["ckpt"], CFG)
    assert all(torch.equal(parts["vision"][k], v) for k, v in ours["vision"].items())


def _refused(state: dict, path: Path) -> str:
    torch.save(state, path)
    with pytest.raises(HecvlError) as err:
        read_surglime_checkpoint(path, CFG)
    assert str(path) in str(err.value)
    return str(err.value)


def test_unequal_or_missing_copies_and_wrong_shapes_are_refused(world: dict, tmp_path: Path) -> None:
    state = world["state"]
    key = "text_encoder.base_model.model.encoder.layer.1.attention.self.query.lora_A.default.weight"
    unequal = {**state, key: state[key] + 1e-3}
    msg = _refused(unequal, tmp_path / "unequal.pth")
    assert key in msg and "differ" in msg
    assert key.replace("text_encoder.base_model.model.", "text_base.") in msg
    missing = {k: v for k, v in state.items() if k != "vision_base.blocks.1.attn.qkv.base_layer.bias"}
    msg = _refused(missing, tmp_path / "missing.pth")
    assert "1 missing keys: vision_base.blocks.1.attn.qkv.base_layer.bias" in msg
    shape = {**state, "vision_proj.3.weight": torch.zeros(32, 60)}
    assert "vision_proj.3.weight (32, 60) != (32, 64)" in _refused(shape, tmp_path / "shape.pth")
    old_peft = {k.replace(".lora_A.default.", ".lora_A."): v for k, v in state.items()}  # another peft naming
    msg = _refused(old_peft, tmp_path / "old_peft.pth")
    assert "unexpected keys" in msg and "lora_A.weight" in msg
    with pytest.raises(HecvlError, match=r"\(179 keys, expected 859\)"):  # without a test config: real sizes
        read_surglime_checkpoint(world["ckpt"])


class _System:
    def __reduce__(self):
        return (os.system, ("touch surglime_payload_ran",))  # a malicious file: a REDUCE of os.system


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_without_running(world: dict, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"logit_scale": _System()}))
    with pytest.raises(HecvlError) as err:
        load_surglime(path, world["bert_dir"], cfg=CFG)
    assert str(path) in str(err.value) and "pickled Python objects" in str(err.value)
    assert not (tmp_path / "surglime_payload_ran").exists()


def test_vocab_must_match_the_word_embeddings(world: dict, tmp_path: Path) -> None:
    write_vocab(tmp_path, 30522)
    with pytest.raises(HecvlError, match="30522 entries; the checkpoint's word embeddings have 150 rows"):
        load_surglime(world["ckpt"], tmp_path, cfg=CFG)
