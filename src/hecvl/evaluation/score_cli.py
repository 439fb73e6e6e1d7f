"""`hecvl score`: score any method's 1 fps phase predictions against a ground-truth label table.

Inputs are CSV files so that predictions of other methods can be scored the same way as ours:
- ground truth `video,frame_sec,phase_id[,phase_name]` (the label table written by `hecvl labels`),
  or, with `--gt-format`, a published label file or folder read by hecvl.datasets.labels;
- predictions `video,frame_sec,phase_id` (other columns are ignored), as CSV or as Parquet
  (`hecvl evaluate`'s predictions.parquet scores as it is).
Every ground-truth second must have a prediction (else an error names the videos and counts);
predictions for seconds or videos not in the ground truth are ignored and counted in the output.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from hecvl.datasets.classes import CLASSES, LABEL_FORMATS
from hecvl.errors import HecvlError
from hecvl.evaluation.metrics import align, score_predictions
from hecvl.io import write_json

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, type=Path, help="ground-truth CSV (video,frame_sec,phase_id)")
    parser.add_argument(
        "--pred", required=True, type=Path, help="predictions CSV or Parquet (video,frame_sec,phase_id)"
    )
    parser.add_argument("--out", required=True, type=Path, help="metrics JSON to write")
    parser.add_argument(
        "--gt-format",
        choices=LABEL_FORMATS,
        help="read --gt as published labels of this format (a file or a folder) instead of a CSV",
    )
    parser.add_argument(
        "--classes",
        choices=LABEL_FORMATS,
        help="name the phases and fix the class count from this dataset's class list "
        "(default: --gt-format, else names from the ground truth's phase_name column)",
    )


def read_table(path: Path, what: str) -> pd.DataFrame:
    """A CSV (or Parquet, e.g. `hecvl evaluate`'s predictions) with `video` kept as text (`01` stays `01`)."""
    if not path.is_file():
        raise HecvlError(f"{what} file not found", path)
    if path.suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise HecvlError(f"cannot read {what} Parquet: {exc}", path) from None
        if "video" in df.columns:
            df["video"] = df["video"].astype(str)
        return df
    try:
        return pd.read_csv(path, dtype={"video": str, "phase_name": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise HecvlError(f"cannot read {what} CSV: {exc}", path) from None


def class_names_for(fmt: str | None, gt: pd.DataFrame, min_count: int) -> list[str] | None:
    """The dataset's class list (fixed length), else names from the ground truth's `phase_name`.

    Without a dataset the class count is open: ids up to `min_count - 1` (the largest id seen in
    the ground truth or prediction) are kept; ids that have no name row are named by their number.
    """
    if fmt is not None:
        return list(CLASSES[fmt])
    if "phase_name" not in gt.columns:
        return None
    pairs = gt[["phase_id", "phase_name"]].drop_duplicates("phase_id")
    names = dict(zip(pairs["phase_id"].astype(int), pairs["phase_name"].astype(str), strict=True))
    return [names.get(i, str(i)) for i in range(max(min_count, max(names) + 1))]


def score_files(
    gt_path: Path, pred_path: Path, gt_format: str | None = None, classes: str | None = None
) -> dict:
    """Metrics dict for two files (see hecvl.evaluation.metrics), with the ignored-prediction counts."""
    if gt_format is not None:
        from hecvl.datasets.labels import read_labels

        gt = read_labels(gt_format, gt_path)
    else:
        gt = read_table(gt_path, "ground truth")
    pred = read_table(pred_path, "predictions")
    frames, info = align(gt, pred, str(gt_path), str(pred_path))
    seen = int(max(frames["gt"].max(), frames["pred"].max())) + 1
    names = class_names_for(classes or gt_format, gt, seen)
    try:
        metrics = score_predictions(frames, class_names=names)
    except HecvlError as exc:
        raise HecvlError(exc.message, pred_path) from None
    metrics.update(info)
    metrics["inputs"] = {"gt": str(gt_path), "pred": str(pred_path)}
    return metrics


def run(args: argparse.Namespace) -> int:
    metrics = score_files(args.gt, args.pred, args.gt_format, args.classes)
    write_json(args.out, metrics)
    if metrics["ignored_predictions"]:
        log.info("ignored %d predictions for seconds not in the ground truth", metrics["ignored_predictions"])
    print(
        f"{metrics['num_videos']} videos, {metrics['num_frames']} frames: "
        f"accuracy {metrics['accuracy_mean']:.2f} ± {metrics['accuracy_std']:.2f}, "
        f"F1 {metrics['f1_mean']:.2f} ± {metrics['f1_std']:.2f} (%)"
    )
    return 0
