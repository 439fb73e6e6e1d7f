"""`hecvl score` end to end: CSV in, metrics JSON out, errors as one line; real published label files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from hecvl.cli import main


def _write(path: Path, rows: list[tuple], columns: list[str]) -> Path:
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


def test_score_cli_writes_protocol_keys_and_keeps_zero_padded_ids(tmp_path: Path, capsys) -> None:
    gt = _write(
        tmp_path / "gt.csv",
        [("01", s, s // 4, f"p{s // 4}") for s in range(12)] + [("02", s, 2, "p2") for s in range(3)],
        ["video", "frame_sec", "phase_id", "phase_name"],
    )
    pred_rows = [("01", s, min(s // 3, 2), 0.5) for s in range(12)] + [("02", s, 2, 0.1) for s in range(5)]
    pred = _write(tmp_path / "pred.csv", pred_rows, ["video", "frame_sec", "phase_id", "score"])
    out = tmp_path / "m" / "metrics.json"
    assert main(["score", "--gt", str(gt), "--pred", str(pred), "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    for key in ("accuracy_mean", "accuracy_std", "f1_mean", "f1_std", "per_video", "per_phase"):
        assert key in m
    assert sorted(m["per_video"]) == ["01", "02"]  # not 1 and 2
    g1 = [s // 4 for s in range(12)]
    p1 = [min(s // 3, 2) for s in range(12)]
    accs = [100 * accuracy_score(g1, p1), 100.0]
    f1s = [100 * f1_score(g1, p1, average="macro"), 100.0]
    assert m["accuracy_mean"] == pytest.approx(np.mean(accs))
    assert m["f1_std"] == pytest.approx(np.std(f1s))
    assert m["ignored_predictions"] == 2
    assert m["per_phase"]["1"]["name"] == "p1"
    assert "accuracy" in capsys.readouterr().out


def test_score_cli_missing_seconds_fails_without_touching_output(tmp_path: Path, capsys) -> None:
    gt = _write(
        tmp_path / "gt.csv", [("video41", s, 0) for s in range(10)], ["video", "frame_sec", "phase_id"]
    )
    pred = _write(
        tmp_path / "pred.csv", [("video41", s, 0) for s in range(6)], ["video", "frame_sec", "phase_id"]
    )
    out = tmp_path / "metrics.json"
    out.write_text("previous\n")
    assert main(["score", "--gt", str(gt), "--pred", str(pred), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hecvl score: error: ") and "video41: 4 of 10 seconds" in err
    assert str(pred) in err
    assert out.read_text() == "previous\n"


def test_score_cli_unreadable_input_is_one_line_error(tmp_path: Path, capsys) -> None:
    gt = tmp_path / "gt.csv"
    gt.write_text("video,frame_sec\nx,0\n")
    pred = _write(tmp_path / "pred.csv", [("x", 0, 0)], ["video", "frame_sec", "phase_id"])
    assert main(["score", "--gt", str(gt), "--pred", str(pred), "--out", str(tmp_path / "o.json")]) == 2
    assert "lacks column(s) phase_id" in capsys.readouterr().err
    assert main(["score", "--gt", str(tmp_path / "nope.csv"), "--pred", str(pred), "--out", "o.json"]) == 2
    assert "not found" in capsys.readouterr().err


def _lagged(labels: pd.DataFrame, lag: int) -> pd.DataFrame:
    """A realistic imperfect predictor: the true phase `lag` seconds ago (first phase at the start)."""
    parts = []
    for _, g in labels.groupby("video"):
        g = g.sort_values("frame_sec")
        ids = g["phase_id"].to_numpy()
        shifted = np.concatenate([np.full(lag, ids[0]), ids[:-lag]])
        parts.append(pd.DataFrame({"video": g["video"], "frame_sec": g["frame_sec"], "phase_id": shifted}))
    return pd.concat(parts)


@pytest.mark.parametrize(
    ("fmt", "rel"),
    [
        ("cholec80", "cholec80/video01-phase.txt"),
        ("autolaparo", "autolaparo/label_01.txt"),
        ("multibypass140", "multibypass140"),
    ],
)
def test_score_on_real_published_labels_matches_sklearn(
    fixtures_dir: Path, tmp_path: Path, fmt: str, rel: str
) -> None:
    from hecvl.datasets.labels import read_labels

    labels = read_labels(fmt, fixtures_dir / rel)
    pred = _lagged(labels, 45)
    pred_csv = tmp_path / "pred.csv"
    pred.to_csv(pred_csv, index=False)
    out = tmp_path / "metrics.json"
    args = ["score", "--gt-format", fmt, "--gt", str(fixtures_dir / rel), "--pred", str(pred_csv)]
    assert main([*args, "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    accs, f1s = [], []
    for video, g in labels.groupby("video"):
        p = pred[pred["video"] == video].set_index("frame_sec").loc[g["frame_sec"], "phase_id"]
        accs.append(100 * accuracy_score(g["phase_id"], p))
        f1s.append(100 * f1_score(g["phase_id"], p, average="macro"))
        assert m["per_video"][video]["frames"] == len(g)
    assert m["num_videos"] == labels["video"].nunique()
    assert m["accuracy_mean"] == pytest.approx(np.mean(accs), abs=1e-5)
    assert m["accuracy_std"] == pytest.approx(np.std(accs), abs=1e-5)
    assert m["f1_mean"] == pytest.approx(np.mean(f1s), abs=1e-5)
    assert m["f1_std"] == pytest.approx(np.std(f1s), abs=1e-5)
    assert 0 < m["accuracy_mean"] < 100
    assert m["num_classes"] == {"cholec80": 7, "autolaparo": 7, "multibypass140": 12}[fmt]
    # the same ground truth passed as the label-table CSV gives identical numbers
    gt_csv = tmp_path / "gt.csv"
    labels.to_csv(gt_csv, index=False)
    out2 = tmp_path / "metrics2.json"
    assert (
        main(["score", "--gt", str(gt_csv), "--pred", str(pred_csv), "--classes", fmt, "--out", str(out2)])
        == 0
    )
    m2 = json.loads(out2.read_text())
    assert m2["per_video"] == m["per_video"] and m2["per_phase"] == m["per_phase"]
