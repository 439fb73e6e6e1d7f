"""Evaluation: zero-shot phase recognition, its reference points (linear probe, untrained model) and scoring.

- `metrics`: the protocol's video-wise accuracy / macro-F1 and per-phase precision, recall, F1, Jaccard.
- `score_cli`: `hecvl score`, scoring any predictions given as CSV.
- `prompts`: the versioned prompt files, one per dataset, and the truncation check.
- `embed`: frame embeddings at 1 fps, cached per (weights, dataset, transform, space).
- `zeroshot` / `probe`: the classifiers; `evaluate_cli`: `hecvl evaluate`.
"""

from hecvl.evaluation.metrics import argmax_predictions, score_predictions

__all__ = ["argmax_predictions", "score_predictions"]
