"""The protocol's metrics (docs/method.md §6), computed from one table of aligned 1 fps frames.

Video-wise (the numbers the paper reports):
- accuracy per video, and macro F1 per video over the classes present in that video's ground truth
  OR prediction (scikit-learn `f1_score(average="macro")` with its default labels, i.e. their union);
- mean and population standard deviation (ddof=0) over videos.

Per phase (what surgical-workflow readers expect beside them), in two flavours:
- `pooled`: precision, recall, F1 and Jaccard over all frames of all videos pooled together
  (scikit-learn `precision_recall_fscore_support` / `jaccard_score` with `average=None`);
- `video_mean`: the same per video, averaged over the videos whose ground truth contains the phase
  (the Cholec80 challenge convention); an undefined value (precision of a phase never predicted in a
  video) is left out of that phase's mean rather than counted as 0.
Undefined values (0/0) are `None` in the output, never silently 0, except inside the video-wise macro
F1 where scikit-learn's convention applies (a class in the union always has a defined F1 there).

All metric values are in percent; counts are frames (= seconds at 1 fps). The confusion matrix has
ground truth in rows and prediction in columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hecvl.errors import HecvlError

KEY = ["video", "frame_sec"]


def argmax_predictions(scores: np.ndarray) -> np.ndarray:
    """Class with the highest score per row; ties go to the lowest class id (numpy's argmax rule).

    Why a function: the tie rule is part of the protocol and must be the same everywhere (zero-shot,
    probe, ensembles). NaN scores are refused: numpy would silently pick the first NaN.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise HecvlError(f"scores must be a 2-D (frames, classes) array, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise HecvlError(f"{int(np.isnan(scores).any(axis=1).sum())} frames have NaN scores")
    return np.argmax(scores, axis=1).astype(np.int64)


def confusion(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """K x K frame counts, ground truth in rows, prediction in columns."""
    idx = np.asarray(gt, dtype=np.int64) * num_classes + np.asarray(pred, dtype=np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0 (undefined, not zero)."""
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1, Jaccard (fractions, NaN where 0/0) from a confusion matrix."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    fp, fn = predicted - tp, support - tp
    return {
        "precision": _ratio(tp, predicted),
        "recall": _ratio(tp, support),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "jaccard": _ratio(tp, tp + fp + fn),
        "support": support,
        "predicted": predicted,
    }


def video_scores(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> tuple[float, float, list[int]]:
    """(accuracy, macro F1, labels used) for one video, as fractions.

    Macro F1 averages over the union of classes in the ground truth and the prediction, exactly as
    scikit-learn's `f1_score(gt, pred, average="macro")`: a class only predicted scores F1 = 0 and
    pulls the mean down; a class in neither is ignored.
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.size == 0:
        raise HecvlError("a video with no frames cannot be scored")
    cm = confusion(gt, pred, num_classes)
    labels = np.flatnonzero((cm.sum(axis=0) + cm.sum(axis=1)) > 0)
    f1 = class_scores(cm)["f1"][labels]  # defined for every label in the union
    return float(np.mean(gt == pred)), float(f1.mean()), [int(x) for x in labels]


def _pct(x: float | np.floating) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x) * 100.0, 6)


def score_predictions(
    frames: pd.DataFrame,
    class_names: Sequence[str] | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """All metrics for aligned frames: columns `video`, `gt`, `pred` (integer class ids).

    `class_names` (id order) names the phases in the output and fixes the number of classes; without
    it the classes are 0 .. max id seen. Returns a JSON-ready dict; see the module docstring.
    """
    for col in ("video", "gt", "pred"):
        if col not in frames.columns:
            raise HecvlError(f"scoring needs a {col!r} column")
    if frames.empty:
        raise HecvlError("no frames to score")
    gt = frames["gt"].to_numpy(dtype=np.int64)
    pred = frames["pred"].to_numpy(dtype=np.int64)
    k = max(int(gt.max()), int(pred.max())) + 1
    if class_names is not None:
        if k > len(class_names):
            raise HecvlError(f"class id {k - 1} is out of range for {len(class_names)} classes")
        k = len(class_names)
    if num_classes is not None:
        if k > num_classes:
            raise HecvlError(f"class id {k - 1} is out of range for {num_classes} classes")
        k = num_classes
    if min(int(gt.min()), int(pred.min())) < 0:
        raise HecvlError("class ids must be >= 0")
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]

    per_video: dict[str, Any] = {}
    accs, f1s = [], []
    video_class: dict[str, list[np.ndarray]] = {m: [] for m in ("precision", "recall", "f1", "jaccard")}
    videos = frames["video"].astype(str).to_numpy()
    for video in sorted(set(videos)):
        sel = videos == video
        g, p = gt[sel], pred[sel]
        acc, f1, labels = video_scores(g, p, k)
        accs.append(acc)
        f1s.append(f1)
        per_video[video] = {
            "accuracy": _pct(acc),
            "f1": _pct(f1),
            "frames": int(sel.sum()),
            "labels": labels,
        }
        cs = class_scores(confusion(g, p, k))
        present = cs["support"] > 0
        for m in video_class:
            video_class[m].append(np.where(present, cs[m], np.nan))

    accs_pct, f1s_pct = 100.0 * np.array(accs), 100.0 * np.array(f1s)
    cm = confusion(gt, pred, k)
    pooled = class_scores(cm)
    with np.errstate(all="ignore"):
        video_mean = {m: _nanmean_rows(np.stack(v)) for m, v in video_class.items()}
    per_phase = {}
    for c in range(k):
        per_phase[str(c)] = {
            "name": names[c],
            "support": int(pooled["support"][c]),
            "predicted": int(pooled["predicted"][c]),
            "pooled": {m: _pct(pooled[m][c]) for m in ("precision", "recall", "f1", "jaccard")},
            "video_mean": {m: _pct(video_mean[m][c]) for m in video_mean},
        }
    return {
        "accuracy_mean": round(float(accs_pct.mean()), 6),
        "accuracy_std": round(float(accs_pct.std(ddof=0)), 6),
        "f1_mean": round(float(f1s_pct.mean()), 6),
        "f1_std": round(float(f1s_pct.std(ddof=0)), 6),
        "accuracy_pooled": _pct(np.mean(gt == pred)),
        "f1_pooled": _pct(np.nanmean(pooled["f1"])) if np.isfinite(pooled["f1"]).any() else None,
        "num_videos": len(per_video),
        "num_frames": len(gt),
        "num_classes": k,
        "classes": names,
        "per_video": per_video,
        "per_phase": per_phase,
        "confusion_matrix": cm.tolist(),
        "units": "percent; support, predicted, frames and confusion_matrix are frame counts (1 fps)",
        "definitions": {
            "accuracy_mean/std, f1_mean/std": "per video, then mean and population std (ddof=0) over videos",
            "per_video.f1": "macro F1 over the classes in the video's ground truth or prediction",
            "accuracy_pooled, f1_pooled": "over all frames of all videos pooled (F1: macro over the classes "
            "in the ground truth or prediction); the frame-pooled convention of some published protocols",
            "per_phase.pooled": "over all frames of all videos pooled",
            "per_phase.video_mean": "per video, mean over videos whose ground truth has the phase; "
            "undefined values skipped",
            "confusion_matrix": "rows ground truth, columns prediction",
            "ties": "argmax ties go to the lowest class id",
        },
    }


def _nanmean_rows(stack: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN; NaN where a column has no value (no warning)."""
    count = np.sum(~np.isnan(stack), axis=0)
    total = np.nansum(stack, axis=0)
    return _ratio(total, count.astype(np.float64))


def align(
    gt: pd.DataFrame,
    pred: pd.DataFrame,
    gt_source: str | None = None,
    pred_source: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Join predictions to the ground truth on (video, frame_sec).

    Every ground-truth second needs exactly one prediction: a missing one is an error naming the
    videos and how many seconds each lacks (a silently shorter video would inflate the score).
    Predictions for seconds or videos absent from the ground truth (e.g. unlabelled MultiBypass140
    seconds) are ignored and counted in the returned info.
    """
    gt = _check_table(gt, ["video", "frame_sec", "phase_id"], gt_source, "ground truth")
    pred = _check_table(pred, ["video", "frame_sec", "phase_id"], pred_source, "predictions")
    merged = gt[[*KEY, "phase_id"]].merge(
        pred[[*KEY, "phase_id"]], on=KEY, how="left", suffixes=("_gt", "_pred"), indicator=True
    )
    missing = merged[merged["_merge"] == "left_only"]
    if not missing.empty:
        counts = missing.groupby("video").size()
        totals = gt.groupby("video").size()
        detail = "; ".join(f"{v}: {n} of {totals[v]} seconds" for v, n in counts.items())
        raise HecvlError(
            f"{len(missing)} ground-truth seconds have no prediction in {len(counts)} video(s): {detail}",
            pred_source,
        )
    ignored = len(pred) - len(merged)
    ignored_videos = sorted(set(pred["video"]) - set(gt["video"]))
    frames = pd.DataFrame(
        {
            "video": merged["video"],
            "frame_sec": merged["frame_sec"],
            "gt": merged["phase_id_gt"].astype(np.int64),
            "pred": merged["phase_id_pred"].astype(np.int64),
        }
    )
    return frames, {"ignored_predictions": int(ignored), "ignored_videos": ignored_videos}


def _check_table(df: pd.DataFrame, columns: list[str], source: str | None, what: str) -> pd.DataFrame:
    """Required columns, integer seconds and ids, video ids as strings, no duplicate seconds."""
    lacking = [c for c in columns if c not in df.columns]
    if lacking:
        raise HecvlError(
            f"{what} lacks column(s) {', '.join(lacking)} (has {', '.join(map(str, df.columns))})", source
        )
    if df.empty:
        raise HecvlError(f"{what} has no rows", source)
    out = pd.DataFrame({"video": df["video"].astype(str)})
    for col in ("frame_sec", "phase_id"):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values != np.floor(values)) | (values < 0)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise HecvlError(
                f"{what}: {col} must be a non-negative integer; row {row + 1} has {df[col].iloc[row]!r}",
                source,
            )
        out[col] = values.astype(np.int64)
    dup = out.duplicated(KEY)
    if dup.any():
        first = out[dup].iloc[0]
        raise HecvlError(
            f"{what}: {int(dup.sum())} duplicate (video, frame_sec) rows, first {first['video']} "
            f"second {first['frame_sec']}",
            source,
        )
    return out
