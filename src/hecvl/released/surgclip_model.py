"""SurgCLIP-β (the SurgLaVi authors' `surgclip` 0.1.0) re-implemented for zero-shot scoring, offline.

Why our own forward: the package downloads its weights and BERT, falls back to unrestricted unpickling, and
loads with `strict=False` (released_models.md §2). This module rebuilds its forward from the description and
is tested against the package's own classes (tests/test_models_surgclip.py).

The vision tower is the package's TimeSformer, whose token handling differs from the original TimeSformer and
is reproduced as is:
- the sequence is patch-major, one class token per frame: position n·T + t holds token n of frame t;
- inside each block the spatial attention's "class" slot is fed the frame's first patch token (before the
  temporal update), and the slot's output, doubled, replaces the class tokens;
- after the final norm the sequence is cut into T consecutive chunks of N + 1 tokens; "frame" t is the mean of
  its chunk without the chunk's first token, through `pool_norm`.
- `vision_layernorm` (eps 1e-12) is loaded but unused: the package applies it to the token map, which the
  score never reads, and not to the pooled frames (released_models.md §2 says otherwise; the package wins).
Per-frame features go through `vision_proj`; the text is BERT's first token through `text_proj`. The package
scores a window as mean over frames of cosine(frame, text) / temp. Its tokenizer writes [CLS] and at most 76
word pieces, without the [SEP] that transformers' BertTokenizer appends (`SurgClipModel.tokenize`).

    model = load_surgclip("surgclip_beta.pth", "models/bert-base-uncased")
    frames = model.encode_frames(x)          # (B, T, 256) unit vectors, x (B, T, 3, 224, 224)
    logits = model.logits(frames, model.embed_texts(prompts))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertModel, BertTokenizer

from hecvl.errors import HecvlError
from hecvl.released.checkpoints import (
    Layout,
    VitBertSizes,
    bert_layout,
    check_state_layout,
    linear,
    load_vocab_tokenizer,
    norm,
    prefixed,
    read_checkpoint,
    text_list,
    warn_long,
)

MAX_TOKENS = 77
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
VISION = "vision_encoder.model."
TEXT = "text_encoder."
# names other writers of the same weights may use, mapped before the check (`module.` is stripped on reading)
KNOWN_RENAMES = (("text_encoder.bert.", TEXT),)  # VindLU-style training code: BertForMaskedLM's `.bert`
POSITION_IDS = TEXT + "embeddings.position_ids"  # saved by transformers < 4.31; checked, then dropped


@dataclass(frozen=True)
class SurgClipConfig(VitBertSizes):
    """Sizes of the model; the defaults are SurgCLIP-β's (the loader checks a file against them)."""

    num_frames: int = 16


def surgclip_layout(cfg: SurgClipConfig = SurgClipConfig()) -> Layout:
    """Key -> shape of the package's `SurgCLIP.state_dict()` (453 entries at the default sizes)."""
    w, p = cfg.width, cfg.patch_size
    v: Layout = {
        "cls_token": (1, 1, w),
        "pos_embed": (1, cfg.num_patches + 1, w),
        "time_embed": (1, cfg.num_frames, w),
        "patch_embed.proj.weight": (w, 3, p, p),
        "patch_embed.proj.bias": (w,),
    }
    for i in range(cfg.depth):
        b = f"blocks.{i}"
        for ln in ("norm1", "temporal_norm1", "norm2"):
            norm(v, f"{b}.{ln}", w)
        for attn in ("attn", "temporal_attn"):
            linear(v, f"{b}.{attn}.qkv", 3 * w, w)
            linear(v, f"{b}.{attn}.proj", w, w)
        linear(v, f"{b}.temporal_fc", w, w)
        linear(v, f"{b}.mlp.fc1", cfg.mlp_ratio * w, w)
        linear(v, f"{b}.mlp.fc2", w, cfg.mlp_ratio * w)
    norm(v, "norm", w)
    norm(v, "pool_norm", w)
    layout = prefixed(VISION, v)
    norm(layout, "vision_layernorm", w)
    bert = bert_layout(cfg.vocab_size, cfg.text_width, cfg.text_layers, cfg.text_ffn, cfg.max_positions)
    layout.update(prefixed(TEXT, bert))
    linear(layout, "vision_proj", cfg.embed_dim, w)
    linear(layout, "text_proj", cfg.embed_dim, cfg.text_width)
    layout["temp"] = ()
    return layout


class _Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm's ViT names)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    """One divided space-time block, with the package's token handling (see the module docstring)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = _Attention(width, heads)
        self.temporal_norm1 = nn.LayerNorm(width, eps=1e-6)
        self.temporal_attn = _Attention(width, heads)
        self.temporal_fc = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = _Mlp(width, mlp_ratio * width)

    def forward(self, seq: torch.Tensor, frames: int) -> torch.Tensor:
        """seq (B, (N + 1)·T, C), patch-major -> the same layout."""
        b, length, c = seq.shape
        t = frames
        n = length // t - 1
        grid = seq.view(b, n + 1, t, c)  # [:, 0] the class tokens, [:, 1:] the patches
        patches = grid[:, 1:]
        first_patch = grid[:, 1]  # what the package's spatial attention takes for the class token
        temporal = self.temporal_attn(self.temporal_norm1(patches.reshape(b * n, t, c)))
        xt = patches + self.temporal_fc(temporal).view(b, n, t, c)
        spatial_in = torch.cat(
            [first_patch.reshape(b * t, 1, c), xt.permute(0, 2, 1, 3).reshape(b * t, n, c)], dim=1
        )
        spatial = self.attn(self.norm1(spatial_in))  # (B·T, N + 1, C)
        cls = 2 * spatial[:, 0].view(b, 1, t, c)
        res = spatial[:, 1:].view(b, t, n, c).permute(0, 2, 1, 3)
        seq = torch.cat([cls, xt + res], dim=1).reshape(b, length, c)
        return seq + self.mlp(self.norm2(seq))


class _PatchEmbed(nn.Module):
    def __init__(self, width: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch, stride=patch)


class SurgClipVision(nn.Module):
    """The package's TimeSformer (`vision_encoder.model`): (B, T, 3, H, W) -> per-frame features (B, T, C)."""

    def __init__(self, cfg: SurgClipConfig) -> None:
        super().__init__()
        w = cfg.width
        self.patch_embed = _PatchEmbed(w, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, w))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, w))
        self.time_embed = nn.Parameter(torch.zeros(1, cfg.num_frames, w))
        self.blocks = nn.ModuleList(_Block(w, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(w, eps=1e-6)
        self.pool_norm = nn.LayerNorm(w, eps=1e-6)

    def time_embedding(self, frames: int) -> torch.Tensor:
        """(1, T, C): the learned rows, or the package's nearest-neighbour resampling for another T."""
        if frames == self.time_embed.shape[1]:
            return self.time_embed
        return F.interpolate(self.time_embed.transpose(1, 2), size=frames, mode="nearest").transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        p = self.patch_embed.proj(x.flatten(0, 1)).flatten(2).transpose(1, 2)  # (B·T, N, C)
        n, c = p.shape[1:]
        if n + 1 != self.pos_embed.shape[1]:
            raise ValueError(f"expected {self.pos_embed.shape[1] - 1} patches per frame, got {n}")
        tokens = torch.cat([self.cls_token.expand(b * t, 1, c), p], dim=1) + self.pos_embed
        tokens = tokens.view(b, t, n + 1, c)
        if t > 1:  # the package adds time embeddings to the patches of a multi-frame clip only
            tokens = torch.cat(
                [tokens[:, :, :1], tokens[:, :, 1:] + self.time_embedding(t).view(1, t, 1, c)], dim=2
            )
        seq = tokens.transpose(1, 2).reshape(b, (n + 1) * t, c)  # patch-major
        for block in self.blocks:
            seq = block(seq, t)
        chunks = self.norm(seq).view(b, t, n + 1, c)  # the package's frame-major reading of that sequence
        return self.pool_norm(chunks[:, :, 1:].mean(dim=2))


class SurgClipModel(nn.Module):
    """SurgCLIP-β in eval mode: unit per-frame and text embeddings, and the package's window logits."""

    def __init__(self, cfg: SurgClipConfig, tokenizer: BertTokenizer | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.vision_encoder = nn.Module()
        self.vision_encoder.model = SurgClipVision(cfg)
        self.vision_layernorm = nn.LayerNorm(cfg.width, eps=1e-12)
        self.text_encoder = BertModel(cfg.bert(), add_pooling_layer=False)
        self.vision_proj = nn.Linear(cfg.width, cfg.embed_dim)
        self.text_proj = nn.Linear(cfg.text_width, cfg.embed_dim)
        self.temp = nn.Parameter(torch.tensor(0.07))
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.vision_proj.weight.device

    @torch.inference_mode()
    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (B, T, 3, H, W) pixels -> (B, T, E) unit vectors, one per frame of the window."""
        feats = self.vision_encoder.model(x.to(self.device, torch.float32))  # no vision_layernorm: see above
        return F.normalize(self.vision_proj(feats), dim=-1)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The package's tokenisation: [CLS], at most 76 lower-cased word pieces, no [SEP], [PAD] to 77.

        The package's own BertTokenizer adds only [CLS] to a single text (its
        `build_inputs_with_special_tokens`), so its truncation keeps 76 word pieces; the attention mask
        covers [CLS] and the pieces. A text with more pieces is cut with a warning.
        """
        if self.tokenizer is None:
            raise ValueError("this model was built without a tokenizer")
        texts = text_list(texts)
        pieces = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        warn_long(texts, [1 + len(p) for p in pieces], MAX_TOKENS)
        ids = torch.full((len(texts), MAX_TOKENS), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, word_pieces in enumerate(pieces):
            kept = [self.tokenizer.cls_token_id, *word_pieces[: MAX_TOKENS - 1]]
            ids[row, : len(kept)] = torch.tensor(kept)
            mask[row, : len(kept)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    @torch.inference_mode()
    def encode_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """BERT's first output token through `text_proj`: (N, E) unit vectors (no token types, as there)."""
        ids, mask = input_ids.to(self.device), attention_mask.to(self.device)
        out = self.text_encoder(input_ids=ids, attention_mask=mask)
        return F.normalize(self.text_proj(out.last_hidden_state[:, 0]), dim=-1)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros(0, self.cfg.embed_dim)
        tokens = self.tokenize(texts)
        return self.encode_tokens(tokens["input_ids"], tokens["attention_mask"]).cpu()

    def logits(self, frames: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """The package's score (B windows, C texts): mean over frames of cosine / temp."""
        sims = torch.einsum("btd,cd->btc", frames.to(texts.device), texts)
        return sims.mean(dim=1) / self.temp.detach().to(texts.device)


def _renamed(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key
        for old, new in KNOWN_RENAMES:
            if key.startswith(old):
                name = new + key[len(old) :]
        if name in out:
            raise HecvlError(f"key {name!r} appears under two names in the file", path)
        out[name] = value
    return out


def read_surgclip_checkpoint(
    path: str | Path, cfg: SurgClipConfig = SurgClipConfig()
) -> dict[str, torch.Tensor]:
    """The file's tensors under the package's names, checked key by key against `surgclip_layout(cfg)`."""
    path = Path(path)
    state = _renamed(read_checkpoint(path), path)
    pos = state.pop(POSITION_IDS, None)
    if pos is not None and not torch.equal(pos.long().flatten(), torch.arange(cfg.max_positions)):
        raise HecvlError(f"{POSITION_IDS} is not 0..{cfg.max_positions - 1}; refusing to ignore it", path)
    check_state_layout(state, surgclip_layout(cfg), path, "SurgCLIP-β")
    return state


def load_surgclip(
    weights: str | Path,
    bert_dir: str | Path,
    device: str | torch.device = "cpu",
    cfg: SurgClipConfig = SurgClipConfig(),
) -> SurgClipModel:
    """SurgCLIP-β from a local `surgclip_beta.pth` and a local bert-base-uncased folder (its vocab.txt).

    Nothing is downloaded: every weight is in the file; `cfg` other than the default is for tests.
    """
    tokenizer = load_vocab_tokenizer(bert_dir, cfg.vocab_size, "bert-base-uncased")
    state = read_surgclip_checkpoint(weights, cfg)
    model = SurgClipModel(cfg, tokenizer)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


__all__ = [
    "SurgClipConfig",
    "SurgClipModel",
    "load_surgclip",
    "read_surgclip_checkpoint",
    "surgclip_layout",
]
