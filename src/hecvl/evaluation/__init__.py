"""Evaluation: zero-shot phase recognition, its reference points (linear probe, untrained model) and scoring.

- `metrics`: the protocol's video-wise accuracy / macro F1, per-phase precision, recall, F1, Jaccard;
- `score_cli`: `hecvl score`, scoring any method's predictions given as CSV (or our Parquet);
- `prompts` (+ `prompts/*.yaml`): the versioned prompt files, one per dataset, and the truncation check;
- `embed`: frame embeddings at 1 fps, cached per (model, dataset, transform, level, video);
- `zeroshot` / `probe`: the two classifiers; `confusion_plot`: the confusion-matrix figure;
- `evaluate`: the engine (one model, many datasets and settings); `evaluate_cli`: `hecvl evaluate`;
  the `eval:` settings are `hecvl.config.EvalSettings`.
"""

from hecvl.evaluation.metrics import argmax_predictions, score_predictions
from hecvl.evaluation.prompts import load_prompts

__all__ = ["argmax_predictions", "load_prompts", "score_predictions"]
