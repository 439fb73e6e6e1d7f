"""`released:` the authors' SurgVLP / HecVL / PeskaVLP weights: paths on your disk, never downloaded."""

from __future__ import annotations

from pydantic import Field

from hecvl.config.base import Section, reason

# params.yaml key -> the model's published name
RELEASED_MODELS = {"surgvlp": "SurgVLP", "hecvl": "HecVL", "peskavlp": "PeskaVLP"}


class ReleasedWeights(Section):
    surgvlp: str | None = reason("e.g. models/released/SurgVLP.pth", None)
    hecvl: str | None = reason("e.g. models/released/HecVL.pth", None)
    peskavlp: str | None = reason("e.g. models/released/PeskaVLP.pth", None)


class ReleasedSettings(Section):
    bert_dir: str | None = reason("folder holding Bio_ClinicalBERT's vocab.txt (28996 entries)", None)
    weights: ReleasedWeights = Field(default_factory=ReleasedWeights)
