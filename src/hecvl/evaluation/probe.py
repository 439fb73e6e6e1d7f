"""Linear probe: logistic regression on frozen frame embeddings, trained on the dataset's train split.

The reference readers expect beside zero-shot (the successor paper reports it): how much of the
phase the frozen embeddings carry when a supervised linear classifier may read it. Features are the
frame embeddings of the evaluated space (the three levels concatenated for `ensemble`), standardised
on the training frames. Deterministic for a seed: the optional subsample of training frames and the
solver both take it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from hecvl.config.evaluation import ProbeSettings
from hecvl.errors import HecvlError

log = logging.getLogger(__name__)


def features(emb: Mapping[str, np.ndarray], levels: Sequence[str]) -> np.ndarray:
    """(T, sum of E) features: the levels' embeddings side by side."""
    return np.concatenate([np.asarray(emb[lv], dtype=np.float32) for lv in levels], axis=1)


def fit_probe(x: np.ndarray, y: np.ndarray, settings: ProbeSettings, seed: int) -> Pipeline:
    """Fit standardisation + multinomial logistic regression on labelled training frames."""
    if len(x) == 0:
        raise HecvlError("the linear probe has no labelled training frames")
    if len(np.unique(y)) < 2:
        raise HecvlError(
            f"the linear probe needs at least 2 classes in the training frames, got {np.unique(y)}"
        )
    if settings.max_train_frames is not None and len(x) > settings.max_train_frames:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), settings.max_train_frames, replace=False))
        log.info("linear probe: %d of %d training frames (seeded subsample)", len(keep), len(x))
        x, y = x[keep], y[keep]
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=settings.C, max_iter=settings.max_iter, random_state=seed),
    )
    clf.fit(x, y)
    return clf


def probe_scores(clf: Pipeline, x: np.ndarray, num_classes: int) -> np.ndarray:
    """(T, K) class probabilities; classes absent from the training frames get probability 0."""
    out = np.zeros((len(x), num_classes), dtype=np.float32)
    if len(x):
        out[:, clf.classes_] = clf.predict_proba(x)
    return out
