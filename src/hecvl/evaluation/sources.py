"""Model sources: what the scorer needs of a model, what a source provides, and the one registry of them.

Why declared: the scorer (evaluate.py, sensitivity.py) must never ask where a model came from. Whatever
its origin, a model is scored through `ScoredModel` (its frames' preprocessing, embeddings of frames or of
whole windows, of texts, and the spaces it answers in), and it is reached through a `ModelSource`
(`load(device)`, the embedding-cache key, what the run record says of it). A family of models (ours, the
untrained reference, the SurgVLP family, SurgCLIP-β, SurgLIME, Hugging Face CLIP/SigLIP folders) is one
`SourceFamily` of the registry (formats.py), where `hecvl evaluate --format NAME` takes its choices. Our own
model's sources live here (evaluation already builds on `hecvl.models`); other groups' in `hecvl.released`.

    source = OURS.build(SourceRequest(params, weights=Path("results/models/hecvl/seed0")))
    loaded = source.load(torch.device("cpu"))       # (model, key, description)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch

from hecvl.config import LEVELS, SPACES, Params
from hecvl.config.evaluation import WindowSettings
from hecvl.errors import HecvlError
from hecvl.evaluation.embed import levels_for, model_key
from hecvl.evaluation.prompts import truncated_prompts
from hecvl.models import HecVLModel, build_model, load_pretrained
from hecvl.video.transform import FrameTransform

Normalisation = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std) per RGB channel


@runtime_checkable
class ScoredModel(Protocol):
    """What the scorer needs of a model, whatever its origin.

    Frames are embedded as windows (B, T, 3, h, w): a model that is not `temporal` is handed 1-frame windows
    (its frame embeddings; the evaluation pools longer windows from them), a temporal one each second's
    whole window. Embeddings are unit vectors; a score is 100 x cosine.
    """

    temporal: (
        bool  # encodes a window's frames jointly (SurgCLIP, SurgLIME): it must see them, not their embeddings
    )
    normalisation: Normalisation  # what `preprocess` applies (a protocol asking for the same changes nothing)
    image_size: int | None  # the square side `preprocess` yields; None: frames are taken at their cached size

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) frames of the frame cache -> normalised float (N, 3, h, w)."""
        ...

    def embed_video_levels(self, x: torch.Tensor, levels: Sequence[str]) -> Mapping[str, torch.Tensor]:
        """(B, T, 3, h, w) windows -> {level: (B, E) unit vectors}, one backbone pass for all levels."""
        ...

    def embed_text(self, texts: Sequence[str], level: str) -> torch.Tensor:
        """(N, E) unit vectors of N texts in the space of `level`."""
        ...

    def truncated_prompts(self, texts: Sequence[str]) -> list[tuple[str, int]]:
        """Texts the model's tokenizer cuts, with their full token count (the scorer records how many)."""
        ...


class Loaded(NamedTuple):
    """A loaded model, its embedding-cache key (a hash of what decides its embeddings) and its description."""

    model: ScoredModel
    key: str
    description: str


@runtime_checkable
class ModelSource(Protocol):
    """Where a model comes from: how to load it and what the run record and the tables call it."""

    format: str  # the registry name (`--format`)
    name: str  # the model in tables and sweep rows (a variant, `untrained`, `released_hecvl`, ...)
    variant: str  # the run record's `variant` (run names)
    method: str  # how its zero-shot rows are labelled: `zeroshot`, or `untrained` for the reference point
    spaces: tuple[str, ...]  # the embedding spaces it can answer in
    transform: FrameTransform | None  # its authors' frame transform (None: the protocol's or params')
    window: WindowSettings | None  # its authors' window under the study protocol (None: params')

    def levels(self, space: str) -> tuple[str, list[str]]:
        """(the space it answers in when asked for `space`, the embedding levels that space averages)."""
        ...

    def load(self, device: torch.device) -> Loaded: ...

    def record(self) -> dict[str, str]:
        """Fields the run record adds for this source (its format and files); empty for our own models."""
        ...


@dataclass(frozen=True)
class SourceRequest:
    """What `hecvl evaluate` says of the model to score: the options every family reads its own from."""

    params: Params
    weights: Path | None = None
    bert_dir: Path | None = None
    name: str | None = None
    seed: int | None = None
    variant: str | None = None


@dataclass(frozen=True)
class SourceFamily:
    """One `--format`: its help line, the options it takes and how it builds a source from a request."""

    name: str
    help: str
    build: Callable[[SourceRequest], ModelSource]
    spaces: tuple[str, ...]
    options: frozenset[str] = frozenset()  # optional arguments beyond --weights: bert_dir, name
    needs_weights: bool = True
    linear_probe: bool = False  # whether `--linear-probe` is offered


# ---- our own model -------------------------------------------------------------------------------------
class OursModel:
    """A HecVL model (`hecvl.models.HecVLModel`) as the scorer sees it: frame by frame, a space per level."""

    temporal = False

    def __init__(self, model: HecVLModel) -> None:
        self.model = model
        visual = model.config.visual
        self.normalisation: Normalisation = (tuple(visual.mean), tuple(visual.std))
        self.image_size: int | None = int(visual.image_size)

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        return self.model.preprocess(frames)

    def embed_video_levels(self, x: torch.Tensor, levels: Sequence[str]) -> Mapping[str, torch.Tensor]:
        if len(levels) > 1:
            return self.model.embed_video_levels(x, list(levels))
        return {level: self.model.embed_video(x, level) for level in levels}

    def embed_text(self, texts: Sequence[str], level: str) -> torch.Tensor:
        return self.model.embed_text(texts, level)

    def truncated_prompts(self, texts: Sequence[str]) -> list[tuple[str, int]]:
        """Prompts our tokenizer cuts at model.text.max_length (warned here; the text encoder warns too)."""
        return truncated_prompts(texts, self.model.text.tokenizer, int(self.model.config.text.max_length))


@dataclass(frozen=True)
class OursSource:
    """A folder saved by `hecvl pretrain`, or (`weights` None) the configured model freshly initialised with
    `seed`: the untrained reference point (pretrained text encoder, heads at random)."""

    params: Params
    weights: Path | None
    seed: int
    variant: str = "main"

    spaces = SPACES
    transform = None
    window = None

    @property
    def format(self) -> str:
        return "ours" if self.weights is not None else "untrained"

    @property
    def name(self) -> str:
        return self.variant if self.weights is not None else "untrained"

    @property
    def method(self) -> str:
        return "zeroshot" if self.weights is not None else "untrained"

    def levels(self, space: str) -> tuple[str, list[str]]:
        """A space's levels among those the model trained (an untrained model's heads are alike: all)."""
        trained = self.params.train.trained_levels if self.weights is not None else LEVELS
        return space, levels_for(space, trained)

    def load(self, device: torch.device) -> Loaded:
        if self.weights is not None:
            model, _cfg = load_pretrained(self.weights, device=device)
            return Loaded(OursModel(model.eval()), model_key(model), str(self.weights))
        model = build_model(self.params.model, seed=self.seed).to(device).eval()
        return Loaded(OursModel(model), model_key(model), f"untrained (seed {self.seed})")

    def record(self) -> dict[str, str]:
        return {}


def _seed(request: SourceRequest) -> int:
    return request.params.seed if request.seed is None else request.seed


def _ours(request: SourceRequest) -> OursSource:
    weights = request.weights
    if weights is None:
        raise HecvlError("--format ours needs --weights MODEL_DIR (a folder saved by `hecvl pretrain`)")
    if weights.is_file():
        raise HecvlError(
            "--weights is a file: a released SurgVLP/HecVL/PeskaVLP checkpoint needs --format surgvlp "
            "(and --bert-dir); --format ours takes the folder saved by `hecvl pretrain`",
            weights,
        )
    return OursSource(request.params, weights, _seed(request), request.variant or "main")


def _untrained(request: SourceRequest) -> OursSource:
    if request.weights is not None:
        raise HecvlError("--format untrained builds a fresh model: it takes no --weights")
    return OursSource(request.params, None, _seed(request), request.variant or "main")


OURS = SourceFamily("ours", "a folder saved by `hecvl pretrain` (default)", _ours, SPACES, linear_probe=True)
UNTRAINED = SourceFamily(
    "untrained",
    "the configured model freshly initialised (seeded): chance level",
    _untrained,
    SPACES,
    needs_weights=False,
    linear_probe=True,
)


__all__ = [
    "OURS",
    "UNTRAINED",
    "Loaded",
    "ModelSource",
    "Normalisation",
    "OursModel",
    "OursSource",
    "ScoredModel",
    "SourceFamily",
    "SourceRequest",
]
