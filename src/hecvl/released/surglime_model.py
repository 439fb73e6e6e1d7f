"""SurgLIME (visurg-ai, CVPRW 2026) re-implemented for zero-shot scoring from its `surglime.pth` alone.

Why our own: the authors' code has no licence and its constructor needs a PL-Stitch file and a PubMedBERT
download; the checkpoint holds every weight (released_models.md §3). Architecture, as described there:
- vision: ViT-B/16 (qkv bias, LayerNorm eps 1e-6), the class token after the final norm, per frame;
- text: PubMedBERT (BERT-base, uncased, its own vocabulary), the first token of the last hidden state;
- LoRA (rank 16, alpha 32: scale 2) on the vision `qkv` and text `query`/`value` layers, merged here at load
  time into plain weights, W + 2·B·A;
- the T frames' class tokens pooled by attention: softmax over T of Linear(384->1)(tanh(Linear(768->384)(x)));
- heads Linear -> LayerNorm -> GELU -> Linear to 256, L2-normalised; the score is the dot product.

The file (peft 0.21.2 `state_dict()`) holds each backbone tensor twice, `vision_base.*` and
`vision_encoder.base_model.model.*` (and `text_base.*` / `text_encoder.base_model.model.*`); both copies must
be present and equal. A `module.` prefix is stripped; any other difference is an error naming the key.

    model = load_surglime("surglime.pth", "models/PubMedBERT")
    video = model.encode_windows(x)      # (B, 256) unit vectors, x (B, 8, 3, 224, 224)
    logits = video @ model.embed_texts(prompts).T
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
    lora_linear,
    norm,
    prefixed,
    read_checkpoint,
    warn_truncated,
)

MAX_TOKENS = 77
NUM_FRAMES = 8
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# (the copy the model loads, the copy that must equal it): peft's wrapper and the plain module share storage
VISION_COPIES = ("vision_encoder.base_model.model.", "vision_base.")
TEXT_COPIES = ("text_encoder.base_model.model.", "text_base.")
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"


@dataclass(frozen=True)
class SurgLimeConfig(VitBertSizes):
    """Sizes of the model; the defaults are SurgLIME's (the loader checks a file against them; the
    vocabulary size is the file's, PubMedBERT's)."""

    rank: int = 16
    alpha: int = 32

    @property
    def lora_scale(self) -> float:
        return self.alpha / self.rank


def vision_layout(cfg: SurgLimeConfig) -> Layout:
    """One copy of the LoRA-wrapped ViT (timm names, no classifier head): 174 keys at the default sizes."""
    w, p = cfg.width, cfg.patch_size
    v: Layout = {
        "cls_token": (1, 1, w),
        "pos_embed": (1, cfg.num_patches + 1, w),
        "patch_embed.proj.weight": (w, 3, p, p),
        "patch_embed.proj.bias": (w,),
    }
    for i in range(cfg.depth):
        b = f"blocks.{i}"
        norm(v, f"{b}.norm1", w)
        lora_linear(v, f"{b}.attn.qkv", 3 * w, w, cfg.rank)
        linear(v, f"{b}.attn.proj", w, w)
        norm(v, f"{b}.norm2", w)
        linear(v, f"{b}.mlp.fc1", cfg.mlp_ratio * w, w)
        linear(v, f"{b}.mlp.fc2", w, cfg.mlp_ratio * w)
    norm(v, "norm", w)
    return v


def text_layout(cfg: SurgLimeConfig) -> Layout:
    """One copy of the LoRA-wrapped PubMedBERT, pooler included (saved, unused): 247 keys by default."""
    return bert_layout(cfg.vocab_size, cfg.text_width, cfg.text_layers, cfg.text_ffn, cfg.max_positions,
                       pooler=True, lora_rank=cfg.rank)  # fmt: skip


def head_layout(cfg: SurgLimeConfig) -> Layout:
    layout: Layout = {}
    linear(layout, "temporal_pool.attention.0", cfg.width // 2, cfg.width)
    linear(layout, "temporal_pool.attention.2", 1, cfg.width // 2)
    for name, width in (("vision_proj", cfg.width), ("text_proj", cfg.text_width)):
        linear(layout, f"{name}.0", width, width)
        norm(layout, f"{name}.1", width)
        linear(layout, f"{name}.3", cfg.embed_dim, width)
    layout["logit_scale"] = ()
    return layout


def surglime_layout(cfg: SurgLimeConfig = SurgLimeConfig()) -> Layout:
    """Key -> shape of `surglime.pth` as peft 0.21.2 writes it (859 entries at the default sizes)."""
    layout: Layout = {}
    for prefix in VISION_COPIES:
        layout.update(prefixed(prefix, vision_layout(cfg)))
    for prefix in TEXT_COPIES:
        layout.update(prefixed(prefix, text_layout(cfg)))
    layout.update(head_layout(cfg))
    return layout


def merge_lora(state: Mapping[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """`x.base_layer.*`, `x.lora_A/B.default.weight` -> `x.weight` = W + scale·B·A (float64 sum), `x.bias`."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".lora_A.default." in key or ".lora_B.default." in key:
            continue
        if ".base_layer." not in key:
            out[key] = value
            continue
        layer, param = key.split(".base_layer.")
        if param == "weight":
            a, b = state[f"{layer}.lora_A.default.weight"], state[f"{layer}.lora_B.default.weight"]
            value = (value.double() + scale * (b.double() @ a.double())).to(value.dtype)
        out[f"{layer}.{param}"] = value
    return out


def _copies(
    state: Mapping[str, torch.Tensor], copies: tuple[str, str], path: Path
) -> dict[str, torch.Tensor]:
    """The first copy's tensors without prefix, after checking the second copy equals it key by key."""
    main, twin = copies
    part = {k[len(main) :]: v for k, v in state.items() if k.startswith(main)}
    for key, value in part.items():
        other = state[twin + key]
        if not torch.equal(value, other):
            raise HecvlError(
                f"{main}{key} and {twin}{key} differ (max |diff| {(value - other).abs().max().item():.3g}); "
                "the two copies of a shared tensor must be equal in a SurgLIME checkpoint",
                path,
            )
    return part


def read_surglime_checkpoint(
    path: str | Path, cfg: SurgLimeConfig = SurgLimeConfig()
) -> tuple[dict[str, dict[str, torch.Tensor]], SurgLimeConfig]:
    """Checked, LoRA-merged parts {vision, text, heads} and the config with the file's vocabulary size."""
    path = Path(path)
    state = read_checkpoint(path)
    words = state.get(TEXT_COPIES[0] + WORD_EMBEDDINGS, state.get(TEXT_COPIES[1] + WORD_EMBEDDINGS))
    if words is not None and words.ndim == 2:
        cfg = replace(cfg, vocab_size=int(words.shape[0]))
    check_state_layout(state, surglime_layout(cfg), path, "SurgLIME")
    vision = merge_lora(_copies(state, VISION_COPIES, path), cfg.lora_scale)
    text = merge_lora(_copies(state, TEXT_COPIES, path), cfg.lora_scale)
    text = {k: v for k, v in text.items() if not k.startswith("pooler.")}
    heads = {k: v for k, v in state.items() if not k.startswith(VISION_COPIES + TEXT_COPIES)}
    return {"vision": vision, "text": text, "heads": heads}, cfg


class _Block(nn.Module):
    """A pre-norm ViT block (timm names) with fused qkv attention."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(width, 3 * width)
        self.attn.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(width, mlp_ratio * width)
        self.mlp.fc2 = nn.Linear(mlp_ratio * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.attn.qkv(self.norm1(x)).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(b, n, c)
        x = x + self.attn.proj(attn)
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class SurgLimeVision(nn.Module):
    """ViT-B/16: (N, 3, 224, 224) -> the class token after the final norm (N, C)."""

    def __init__(self, cfg: SurgLimeConfig) -> None:
        super().__init__()
        w = cfg.width
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, w, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, w))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, w))
        self.blocks = nn.ModuleList(_Block(w, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(w, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        if p.shape[1] + 1 != self.pos_embed.shape[1]:
            raise ValueError(f"expected {self.pos_embed.shape[1] - 1} patches per frame, got {p.shape[1]}")
        x = torch.cat([self.cls_token.expand(len(p), 1, -1), p], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]


def _projection(width: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width), nn.GELU(), nn.Linear(width, out))


class SurgLimeModel(nn.Module):
    """SurgLIME in eval mode with merged LoRA: unit window and text embeddings, dot-product scores."""

    def __init__(self, cfg: SurgLimeConfig, tokenizer: BertTokenizer | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.vision = SurgLimeVision(cfg)
        self.text = BertModel(cfg.bert(), add_pooling_layer=False)
        self.temporal_pool = nn.Module()
        self.temporal_pool.attention = nn.Sequential(
            nn.Linear(cfg.width, cfg.width // 2), nn.Tanh(), nn.Linear(cfg.width // 2, 1)
        )
        self.vision_proj = _projection(cfg.width, cfg.embed_dim)
        self.text_proj = _projection(cfg.text_width, cfg.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(0.0))
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def load_parts(self, parts: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """Strictly load the merged parts of `read_surglime_checkpoint`."""
        self.vision.load_state_dict(parts["vision"], strict=True)
        self.text.load_state_dict(parts["text"], strict=True)
        heads = {k: v for k, v in parts["heads"].items()}
        own = {k: v for k, v in self.state_dict().items() if not k.startswith(("vision.", "text."))}
        missing, unexpected = set(own) - set(heads), set(heads) - set(own)
        if missing or unexpected:
            raise ValueError(f"head keys differ: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        self.load_state_dict({**own, **heads}, strict=False)

    @torch.inference_mode()
    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (B, T, 3, H, W) pixels -> the frames' class tokens (B, T, C)."""
        b, t = x.shape[:2]
        return self.vision(x.to(self.device, torch.float32).flatten(0, 1)).view(b, t, -1)

    @torch.inference_mode()
    def encode_windows(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, E) unit vectors: attention pooling over T, then `vision_proj`."""
        tokens = self.encode_frames(x)
        weights = torch.softmax(self.temporal_pool.attention(tokens), dim=1)  # (B, T, 1)
        return F.normalize(self.vision_proj((weights * tokens).sum(dim=1)), dim=-1)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Lower-cased WordPiece of all texts together, padded to the longest, truncated at 77 tokens."""
        if self.tokenizer is None:
            raise ValueError("this model was built without a tokenizer")
        warn_truncated(self.tokenizer, texts, MAX_TOKENS)
        return dict(self.tokenizer(list(texts), padding="longest", truncation=True, max_length=MAX_TOKENS,
                                   return_tensors="pt"))  # fmt: skip

    @torch.inference_mode()
    def encode_tokens(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """BERT's first output token through `text_proj`: (N, E) unit vectors."""
        tokens = {k: v.to(self.device) for k, v in tokens.items()}
        out = self.text(**tokens)
        return F.normalize(self.text_proj(out.last_hidden_state[:, 0]), dim=-1)

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros(0, self.cfg.embed_dim)
        return self.encode_tokens(self.tokenize(texts)).cpu()


def load_surglime(
    weights: str | Path,
    bert_dir: str | Path,
    device: str | torch.device = "cpu",
    cfg: SurgLimeConfig = SurgLimeConfig(),
) -> SurgLimeModel:
    """SurgLIME from a local `surglime.pth` and a local PubMedBERT folder (its vocab.txt only).

    Nothing is downloaded; `cfg` other than the default is for tests (the vocabulary size is the file's).
    """
    parts, cfg = read_surglime_checkpoint(weights, cfg)
    tokenizer = load_vocab_tokenizer(bert_dir, cfg.vocab_size, "PubMedBERT")
    model = SurgLimeModel(cfg, tokenizer)
    model.load_parts(parts)
    return model.to(device).eval()


__all__ = [
    "SurgLimeConfig",
    "SurgLimeModel",
    "load_surglime",
    "merge_lora",
    "read_surglime_checkpoint",
    "surglime_layout",
]
