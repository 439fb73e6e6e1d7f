"""Hierarchical pairing: clip, phase and video pairs from a lecture corpus, and the loaders for training.

HecVL's three levels of text (method.md §1-3): an ASR narration for a 3-5 s clip, a keystep title or
summary for a whole phase, the abstract for a whole video. `hecvl pair` writes one Parquet manifest per
level (`manifest.py`), built by `clips.py`, `phases.py` and `videos.py` under the rules of
`hecvl.config.pairing`;
`datasets.py` turns the manifests into PyTorch datasets that decode the planned frames;
`positives.py` finds a clip's nearby narrations for the optional MIL-NCE training (`train.mil_nce`).
"""

from hecvl.config.pairing import PairingRules

__all__ = ["PairingRules"]
