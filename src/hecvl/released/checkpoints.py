"""Shared pieces of the released-model loaders (SurgVLP family, SurgCLIP-β, SurgLIME): layouts, checks,
vocabularies, the BERT configuration and the truncation warning.

Why strict: the authors' own loaders either load with `strict=False` (SurgCLIP's package: a file whose keys
do not fit silently leaves towers at their random initial weights) or need their training code. Ours read
with `torch.load(weights_only=True)` and compare the file key by key with the layout the architecture
implies, naming the file and every kind of difference, before any weight is used.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertTokenizer

from hecvl.errors import HecvlError
from hecvl.models.state_dicts import load_torch_file, unwrap_state_dict

Layout = dict[str, tuple[int, ...]]
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_SHOW = 5  # how many keys of each kind a mismatch message lists


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat name -> tensor dict: weights_only load, `state_dict`/`model` wrappers and `module.` removed."""
    path = Path(path)
    return unwrap_state_dict(load_torch_file(path), path)


def linear(layout: Layout, name: str, out_f: int, in_f: int, bias: bool = True) -> None:
    layout[f"{name}.weight"] = (out_f, in_f)
    if bias:
        layout[f"{name}.bias"] = (out_f,)


def norm(layout: Layout, name: str, width: int) -> None:
    layout[f"{name}.weight"] = (width,)
    layout[f"{name}.bias"] = (width,)


def bert_layout(
    vocab: int,
    width: int,
    layers: int,
    ffn: int,
    max_pos: int = 512,
    type_vocab: int = 2,
    pooler: bool = False,
    lora_rank: int | None = None,
) -> Layout:
    """Key -> shape of a transformers `BertModel` state dict (5.x names, no `position_ids` buffer).

    `lora_rank`: peft's LoRA on `query` and `value` (`base_layer`, `lora_A.default`, `lora_B.default`).
    """
    layout: Layout = {
        "embeddings.word_embeddings.weight": (vocab, width),
        "embeddings.position_embeddings.weight": (max_pos, width),
        "embeddings.token_type_embeddings.weight": (type_vocab, width),
    }
    norm(layout, "embeddings.LayerNorm", width)
    for n in range(layers):
        p = f"encoder.layer.{n}"
        for name in ("query", "key", "value"):
            if lora_rank and name in ("query", "value"):
                lora_linear(layout, f"{p}.attention.self.{name}", width, width, lora_rank)
            else:
                linear(layout, f"{p}.attention.self.{name}", width, width)
        linear(layout, f"{p}.attention.output.dense", width, width)
        norm(layout, f"{p}.attention.output.LayerNorm", width)
        linear(layout, f"{p}.intermediate.dense", ffn, width)
        linear(layout, f"{p}.output.dense", width, ffn)
        norm(layout, f"{p}.output.LayerNorm", width)
    if pooler:
        linear(layout, "pooler.dense", width, width)
    return layout


def lora_linear(layout: Layout, name: str, out_f: int, in_f: int, rank: int) -> None:
    """peft 0.21's names for a LoRA-wrapped nn.Linear with bias."""
    linear(layout, f"{name}.base_layer", out_f, in_f)
    layout[f"{name}.lora_A.default.weight"] = (rank, in_f)
    layout[f"{name}.lora_B.default.weight"] = (out_f, rank)


def prefixed(prefix: str, layout: Mapping[str, tuple[int, ...]]) -> Layout:
    return {prefix + k: v for k, v in layout.items()}


def _describe(kind: str, items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    more = f", ... ({len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return f"{len(items)} {kind}: {shown}{more}"


def check_state_layout(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, tuple[int, ...]],
    path: str | Path,
    title: str,
    optional: Iterable[str] = (),
    integer_suffixes: tuple[str, ...] = (),
) -> None:
    """Raise a HecvlError naming the file and the missing, unexpected and wrong-shape/dtype keys, if any.

    Every tensor must be floating point but those whose key ends with one of `integer_suffixes` (buffers
    such as `position_ids`), which must be integers; `optional` keys may be absent (checked when present).
    """
    optional = set(optional)
    missing = sorted(k for k in expected if k not in state and k not in optional)
    unexpected = sorted(k for k in state if k not in expected)
    wrong = []
    for key in sorted(k for k in state if k in expected):
        t = state[key]
        want_int = key.endswith(integer_suffixes)
        if tuple(t.shape) != tuple(expected[key]):
            wrong.append(f"{key} {tuple(t.shape)} != {tuple(expected[key])}")
        elif t.is_floating_point() == want_int or t.is_complex():
            wrong.append(f"{key} dtype {t.dtype} (expected {'integer' if want_int else 'floating point'})")
    if missing or unexpected or wrong:
        found = (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shape/dtype", wrong))
        parts = [_describe(kind, items) for kind, items in found if items]
        raise HecvlError(
            f"not a {title} checkpoint ({len(state)} keys, expected {len(expected)}): " + "; ".join(parts),
            path,
        )


def load_vocab_tokenizer(
    bert_dir: str | Path, vocab_size: int, what: str, size_note: str | None = None
) -> BertTokenizer:
    """A lower-casing WordPiece tokenizer from `bert_dir/vocab.txt`, which must have `vocab_size` entries.

    The size comes from the checkpoint's word embeddings (or the model's known vocabulary, `size_note`
    saying so): another vocabulary would map words to the wrong rows without any error. Read as
    transformers' load_vocab does: one token per line, only the newline stripped, a repeated token keeping
    its last index.
    """
    bert_dir = Path(bert_dir)
    vocab_file = bert_dir / "vocab.txt"
    if not vocab_file.is_file():
        raise HecvlError(f"no vocab.txt in the {what} folder", bert_dir)
    try:
        with open(vocab_file, encoding="utf-8") as fh:
            lines = [line.rstrip("\n") for line in fh.readlines()]
    except UnicodeDecodeError as exc:
        raise HecvlError(f"vocab.txt is not UTF-8 text ({exc.reason})", vocab_file) from exc
    if len(lines) != vocab_size:
        note = size_note or (f"the checkpoint's word embeddings have {vocab_size} rows (is this the {what} "
                             "vocabulary?)")
        raise HecvlError(f"vocab.txt has {len(lines)} entries; {note}", vocab_file)
    vocab = {token: index for index, token in enumerate(lines)}
    absent = [t for t in SPECIAL_TOKENS if t not in vocab]
    if absent:
        raise HecvlError(f"vocab.txt lacks the BERT special tokens {absent}", vocab_file)
    return BertTokenizer(vocab=vocab, do_lower_case=True)


def bert_config(vocab: int, width: int, layers: int, heads: int, ffn: int, max_pos: int, **extra: Any
                ) -> BertConfig:
    """A BERT-base-shaped `BertConfig` (two token types, GELU, eps 1e-12, [PAD] = 0) of the given sizes."""
    return BertConfig(
        vocab_size=vocab, hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=ffn, max_position_embeddings=max_pos, type_vocab_size=2, layer_norm_eps=1e-12,
        hidden_act="gelu", pad_token_id=0, **extra,
    )  # fmt: skip


def text_list(texts: Sequence[str]) -> list[str]:
    """`texts` as a list; one string is refused, as it would be read as a list of characters."""
    if isinstance(texts, str):
        raise TypeError("tokenize takes a list of texts, not one string")
    return list(texts)


def warn_truncated(tokenizer: BertTokenizer, texts: Sequence[str], max_tokens: int) -> None:
    """Warn of each text longer than `max_tokens` tokens, [CLS] and [SEP] included (see `warn_long`)."""
    texts = text_list(texts)
    lengths = [len(tokenizer(text, truncation=False)["input_ids"]) for text in texts]
    warn_long(texts, lengths, max_tokens, stacklevel=4)


def warn_long(texts: Sequence[str], lengths: Sequence[int], max_tokens: int, stacklevel: int = 3) -> None:
    """Warn of each text whose full token count (`lengths`) exceeds `max_tokens`: the authors' code cut
    them silently. `stacklevel` 3 points at the caller of the `tokenize` that calls this."""
    for text, full in zip(texts, lengths, strict=True):
        if full > max_tokens:
            warnings.warn(f"text truncated from {full} to {max_tokens} tokens: {text[:60]!r}...", UserWarning,
                          stacklevel=stacklevel)


@dataclass(frozen=True)
class VitBertSizes:
    """Sizes of a ViT-B/16 + BERT-base video-language model; the defaults are the released models'."""

    image_size: int = 224
    patch_size: int = 16
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: int = 4
    embed_dim: int = 256
    vocab_size: int = 30522  # bert-base-uncased (PubMedBERT's is the same size)
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_ffn: int = 3072
    max_positions: int = 512

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def bert(self) -> BertConfig:
        return bert_config(self.vocab_size, self.text_width, self.text_layers, self.text_heads, self.text_ffn,
                           self.max_positions)
