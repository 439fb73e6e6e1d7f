"""Optional derivation of missing keystep titles and abstracts from the narrations (off by default).

Some lectures come without keysteps or an abstract. Rather than losing their phase and video pairs,
the pairing stage can fill the missing text from what was said: an extractive summary, i.e. the
narration sentence(s) closest to the centroid of the segment's narration embeddings under the
project's text encoder. Pairs built this way are marked `derived` in the manifests, so an ablation can
keep or drop them.

Summarisers are pluggable: `SUMMARISERS` maps a name to a factory `(DeriveRules, params) -> summarise`,
where `summarise(texts, n_sentences) -> str`. Register one with `@register_summariser("name")`, or
name any importable factory as "package.module:function" in `pairing.derive.summariser` (e.g. a local
LLM wrapper); the factory is called once per run, so a model is loaded once.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from hecvl.config import Params, TextConfig
from hecvl.config.pairing import DeriveRules
from hecvl.errors import HecvlError
from hecvl.pairing.phases import Summarise
from hecvl.pairing.text import split_sentences

SummariserFactory = Callable[[DeriveRules, Params | None], Summarise]
SUMMARISERS: dict[str, SummariserFactory] = {}


def register_summariser(name: str) -> Callable[[SummariserFactory], SummariserFactory]:
    """Decorator: make a summariser factory available under `name`."""

    def deco(factory: SummariserFactory) -> SummariserFactory:
        SUMMARISERS[name] = factory
        return factory

    return deco


def get_summariser(rules: DeriveRules, params: Params | None = None) -> Summarise:
    """The configured summariser, built once: a registered name or "package.module:function"."""
    name = rules.summariser
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise HecvlError(f"pairing.derive.summariser {name!r} cannot be imported: {exc}") from None
    elif name in SUMMARISERS:
        factory = SUMMARISERS[name]
    else:
        known = ", ".join(sorted(SUMMARISERS))
        raise HecvlError(
            f"unknown pairing.derive.summariser {name!r} (registered: {known}; or module:function)"
        )
    return factory(rules, params)


def central_indices(embeddings: np.ndarray, n: int) -> list[int]:
    """Indices of the `n` rows closest (cosine) to the centroid of the normalised rows, in row order.

    Ties go to the earlier row, so the choice is deterministic.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    centroid = emb.mean(axis=0)
    centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
    sims = np.round(emb @ centroid, 6)  # rounding: BLAS noise must not reorder near-ties
    order = np.argsort(-sims, kind="stable")
    return sorted(int(i) for i in order[:n])


def candidate_sentences(texts: list[str]) -> list[str]:
    """The distinct sentences of the narrations, in order of first appearance."""
    seen: dict[str, None] = {}
    for text in texts:
        for sentence in split_sentences(text):
            seen.setdefault(sentence, None)
    return list(seen)


@register_summariser("centroid")
def centroid_summariser(rules: DeriveRules, params: Params | None) -> Summarise:
    """Extractive summary with the project's text encoder (loaded lazily, once)."""
    text_cfg = rules.text_encoder or (params.model.text if params is not None else TextConfig())
    encoder: list[Any] = []

    def summarise(texts: list[str], n_sentences: int) -> str:
        sentences = candidate_sentences(texts)
        if len(sentences) <= n_sentences:
            return " ".join(sentences)
        if not encoder:
            from hecvl.models.text_encoder import load_text_encoder

            encoder.append(load_text_encoder(text_cfg))
        emb = encoder[0].encode(sentences)
        emb = emb.detach().cpu().numpy() if hasattr(emb, "detach") else np.asarray(emb)
        return " ".join(sentences[i] for i in central_indices(emb, n_sentences))

    return summarise
