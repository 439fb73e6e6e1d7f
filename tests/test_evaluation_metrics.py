"""The protocol's metrics against scikit-learn, on constructed cases and on the real-format label files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    jaccard_score,
    precision_recall_fscore_support,
)

from hecvl.errors import HecvlError
from hecvl.evaluation.metrics import align, argmax_predictions, score_predictions, video_scores


def _frames(videos: dict[str, tuple[list[int], list[int]]]) -> pd.DataFrame:
    rows = [
        (v, i, g, p)
        for v, (gt, pred) in videos.items()
        for i, (g, p) in enumerate(zip(gt, pred, strict=True))
    ]
    return pd.DataFrame(rows, columns=["video", "frame_sec", "gt", "pred"])


def _sklearn_reference(frames: pd.DataFrame, k: int) -> dict:
    """The protocol written directly with scikit-learn: per video, then mean and ddof=0 std."""
    accs, f1s = [], []
    for _, g in frames.groupby("video"):
        accs.append(100 * accuracy_score(g["gt"], g["pred"]))
        f1s.append(100 * f1_score(g["gt"], g["pred"], average="macro", zero_division=0))
    labels = list(range(k))
    p, r, f, _ = precision_recall_fscore_support(
        frames["gt"], frames["pred"], labels=labels, average=None, zero_division=np.nan
    )
    j = jaccard_score(frames["gt"], frames["pred"], labels=labels, average=None, zero_division=0)
    absent = ~np.isin(labels, np.union1d(frames["gt"], frames["pred"]))
    j = np.where(absent, np.nan, j)  # jaccard_score cannot return NaN for 0/0; ours says None
    return {
        "acc": (np.mean(accs), np.std(accs)),
        "f1": (np.mean(f1s), np.std(f1s)),
        "per_class": {"precision": p, "recall": r, "f1": f, "jaccard": j},
        "cm": confusion_matrix(frames["gt"], frames["pred"], labels=labels),
    }


def _assert_matches_sklearn(frames: pd.DataFrame, k: int) -> dict:
    m = score_predictions(frames, num_classes=k)
    ref = _sklearn_reference(frames, k)
    assert m["accuracy_mean"] == pytest.approx(ref["acc"][0], abs=1e-5)
    assert m["accuracy_std"] == pytest.approx(ref["acc"][1], abs=1e-5)
    assert m["f1_mean"] == pytest.approx(ref["f1"][0], abs=1e-5)
    assert m["f1_std"] == pytest.approx(ref["f1"][1], abs=1e-5)
    assert m["accuracy_pooled"] == pytest.approx(100 * np.mean(frames["gt"] == frames["pred"]), abs=1e-5)
    pooled_f1 = f1_score(frames["gt"], frames["pred"], average="macro")  # classes in gt or prediction
    assert m["f1_pooled"] == pytest.approx(100 * pooled_f1, abs=1e-5)
    assert np.array_equal(np.array(m["confusion_matrix"]), ref["cm"])
    for metric, values in ref["per_class"].items():
        ours = [m["per_phase"][str(c)]["pooled"][metric] for c in range(k)]
        for c in range(k):
            if np.isnan(values[c]):
                assert ours[c] is None, (metric, c)
            else:
                assert ours[c] == pytest.approx(100 * values[c], abs=1e-5), (metric, c)
    return m


def test_random_videos_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    videos = {}
    for v in range(6):
        n = int(rng.integers(1, 400))
        gt = np.repeat(rng.integers(0, 7, size=5), n // 5 + 1)[:n]
        pred = np.where(rng.random(n) < 0.6, gt, rng.integers(0, 7, size=n))
        videos[f"video{v:02d}"] = (gt.tolist(), pred.tolist())
    _assert_matches_sklearn(_frames(videos), 7)


def test_missing_classes_and_class_only_predicted() -> None:
    # video a: classes 0 and 1 in gt, 3 only predicted -> F1 over {0, 1, 3}; classes 2, 4..6 ignored.
    frames = _frames({"a": ([0, 0, 0, 1, 1, 1], [0, 0, 3, 1, 1, 1]), "b": ([2, 2, 2], [2, 2, 2])})
    m = _assert_matches_sklearn(frames, 7)
    assert m["per_video"]["a"]["labels"] == [0, 1, 3]
    f1_0, f1_1 = 2 * 2 / (2 * 2 + 0 + 1), 1.0
    assert m["per_video"]["a"]["f1"] == pytest.approx(100 * (f1_0 + f1_1 + 0.0) / 3)
    assert m["per_video"]["b"]["f1"] == pytest.approx(100.0)
    # class 3: predicted, never true: precision 0, recall undefined (None), support 0
    assert m["per_phase"]["3"]["pooled"]["precision"] == 0.0
    assert m["per_phase"]["3"]["pooled"]["recall"] is None
    assert m["per_phase"]["3"]["support"] == 0 and m["per_phase"]["3"]["predicted"] == 1
    # class 5: in neither: everything undefined
    assert set(m["per_phase"]["5"]["pooled"].values()) == {None}
    assert m["accuracy_std"] == pytest.approx(np.std([500 / 6, 100.0]))


def test_class_in_gt_never_predicted() -> None:
    frames = _frames({"a": ([0, 0, 1, 1], [0, 0, 0, 0])})
    m = _assert_matches_sklearn(frames, 2)
    assert m["per_phase"]["1"]["pooled"]["precision"] is None  # never predicted: 0/0
    assert m["per_phase"]["1"]["pooled"]["recall"] == 0.0
    assert m["per_phase"]["1"]["video_mean"]["precision"] is None
    assert m["per_phase"]["1"]["video_mean"]["recall"] == 0.0


def test_one_frame_videos() -> None:
    frames = _frames({"a": ([4], [4]), "b": ([4], [2]), "c": ([0], [0])})
    m = _assert_matches_sklearn(frames, 7)
    assert m["per_video"]["b"] == {"accuracy": 0.0, "f1": 0.0, "frames": 1, "labels": [2, 4]}
    assert m["accuracy_mean"] == pytest.approx(200 / 3)
    assert m["accuracy_std"] == pytest.approx(np.std([100, 0, 100]))


def test_video_mean_per_phase_averages_over_videos_with_the_phase() -> None:
    frames = _frames({"a": ([0, 0, 1, 1], [0, 1, 1, 1]), "b": ([0, 0], [0, 0]), "c": ([1], [0])})
    m = score_predictions(frames, num_classes=2)
    # phase 0 is in a (recall 1/2) and b (recall 1); phase 1 in a (recall 1) and c (recall 0)
    assert m["per_phase"]["0"]["video_mean"]["recall"] == pytest.approx(75.0)
    assert m["per_phase"]["1"]["video_mean"]["recall"] == pytest.approx(50.0)
    # jaccard of phase 1 in a: tp 2 / (tp 2 + fp 1) ; in c: 0 / 1
    assert m["per_phase"]["1"]["video_mean"]["jaccard"] == pytest.approx(100 * (2 / 3 + 0) / 2)
    # precision of phase 1 in c is 0/0 (never predicted there): skipped, so only video a counts
    assert m["per_phase"]["1"]["video_mean"]["precision"] == pytest.approx(100 * 2 / 3)


def test_ties_go_to_lowest_class_id() -> None:
    scores = np.array([[0.2, 0.5, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0], [-3.0, -1.0, -2.0, -1.0]])
    assert argmax_predictions(scores).tolist() == [1, 0, 1]
    assert argmax_predictions(scores).tolist() == np.argmax(scores, axis=1).tolist()
    with pytest.raises(HecvlError, match="NaN"):
        argmax_predictions(np.array([[0.1, np.nan]]))


def test_video_scores_equals_sklearn_on_union_labels() -> None:
    gt, pred = np.array([1, 1, 2, 5, 5, 5]), np.array([1, 2, 2, 5, 0, 5])
    acc, f1, labels = video_scores(gt, pred, 7)
    assert labels == [0, 1, 2, 5]
    assert f1 == pytest.approx(f1_score(gt, pred, average="macro"))
    assert acc == pytest.approx(accuracy_score(gt, pred))


def test_class_names_fix_count_and_reject_out_of_range() -> None:
    frames = _frames({"a": ([0, 1], [1, 1])})
    m = score_predictions(frames, class_names=["x", "y", "z"])
    assert m["num_classes"] == 3 and m["per_phase"]["2"]["name"] == "z"
    assert len(m["confusion_matrix"]) == 3
    with pytest.raises(HecvlError, match="out of range"):
        score_predictions(_frames({"a": ([0, 3], [1, 1])}), class_names=["x", "y", "z"])


def _table(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["video", "frame_sec", "phase_id"])


def test_align_missing_seconds_is_an_error_naming_video_and_count() -> None:
    gt = _table([("01", s, 0) for s in range(10)] + [("02", s, 1) for s in range(5)])
    pred = _table([("01", s, 0) for s in range(7)] + [("02", s, 1) for s in range(5)])
    with pytest.raises(HecvlError, match=r"3 ground-truth seconds .*01: 3 of 10 seconds") as err:
        align(gt, pred, "gt.csv", "pred.csv")
    assert str(err.value).startswith("pred.csv: ")


def test_align_ignores_and_counts_extra_predictions() -> None:
    gt = _table([("01", s, 0) for s in range(3)])
    pred = _table([("01", s, 0) for s in range(5)] + [("99", 0, 2)])
    frames, info = align(gt, pred)
    assert len(frames) == 3
    assert info == {"ignored_predictions": 3, "ignored_videos": ["99"]}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("01", 0, 0), ("01", 0, 1)], "duplicate"),
        ([("01", 0, -1)], "non-negative integer"),
        ([("01", 0.5, 1)], "non-negative integer"),
        ([("01", 0, "x")], "non-negative integer"),
    ],
)
def test_align_rejects_bad_prediction_tables(rows: list[tuple], message: str) -> None:
    with pytest.raises(HecvlError, match=message):
        align(_table([("01", 0, 0)]), _table(rows), pred_source="p.csv")


def test_align_rejects_missing_columns() -> None:
    with pytest.raises(HecvlError, match="lacks column"):
        align(_table([("01", 0, 0)]), pd.DataFrame({"video": ["01"], "frame_sec": [0]}))
