"""The paper's figures: written, non-empty, readable, deterministic; the narration-noise figure and CLI."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from paper_helpers import run_cli, shared_tree

from hecvl.errors import HecvlError
from hecvl.paper.collect import load_results, losses_frame, read_losses, runs_frame
from hecvl.paper.figures import (
    accuracy_f1_figure,
    confusion_figure,
    noise_figure,
    row_normalised,
    timeline_arrays,
    training_curves_figure,
)

FIGURES = ("accuracy_f1", "per_phase_f1", "confusion", "timelines", "training_curves")


@pytest.fixture(scope="module")
def paper_tree(tmp_path_factory: pytest.TempPathFactory):
    return shared_tree(tmp_path_factory)


def _check_png(path: Path, min_side: int = 300) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert min(img.shape[:2]) >= min_side
    assert float(img[..., :3].std()) > 0.05  # not a blank canvas
    return img


@pytest.mark.parametrize("name", FIGURES)
def test_build_writes_every_figure(paper_tree, name: str) -> None:
    root, _ = paper_tree
    _check_png(root / "results" / "paper" / f"{name}.png")


def test_no_temporary_files_are_left(paper_tree) -> None:
    root, _ = paper_tree
    leftovers = [p.name for p in (root / "results").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_training_curves_read_the_level_totals_and_are_deterministic(paper_tree, tmp_path: Path) -> None:
    root, study = paper_tree
    e = next(e for e in study.main_entries() if e.label == study.main)
    path = root / study.model_dir(e.variant, e.seed) / "losses.csv"
    raw = pd.read_csv(path)
    long = read_losses(path)
    assert set(long["level"]) == {"clip", "phase", "video"}
    clip_steps = raw.loc[raw["clip/total"].notna(), "step"].tolist()
    assert long.loc[long["level"] == "clip", "step"].tolist() == clip_steps  # only the steps that trained it
    frame = losses_frame({("hecvl", 0): path, ("hecvl", 1): path})
    a = training_curves_figure(frame, tmp_path / "a.png", "t")
    b = training_curves_figure(frame, tmp_path / "b.png", "t")
    assert a.read_bytes() == b.read_bytes()


def test_accuracy_figure_is_deterministic(paper_tree, tmp_path: Path) -> None:
    """Seed dots are drawn without seaborn's random jitter: identical inputs, identical bytes."""
    root, study = paper_tree
    runs = runs_frame(load_results(study.main_entries(), root))
    runs = runs.rename(columns={"label": "method", "accuracy_mean": "accuracy", "f1_mean": "f1"})
    a = accuracy_f1_figure(runs, tmp_path / "a.png", "t")
    b = accuracy_f1_figure(runs, tmp_path / "b.png", "t")
    assert a.read_bytes() == b.read_bytes()


def test_losses_without_level_columns_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "losses.csv"
    bad.write_text("step,loss\n1,2.0\n")
    with pytest.raises(HecvlError, match="<level>/total") as err:
        read_losses(bad)
    assert err.value.path == bad


def test_timeline_arrays_mark_unlabelled_seconds() -> None:
    pred = pd.DataFrame(
        {
            "frame_sec": [0, 1, 2, 3],
            "phase_id": [1, 1, 2, 0],
            "gt_phase_id": pd.array([None, 1, 2, 2], "Int64"),
        }
    )
    gt, pr = timeline_arrays(pred)
    assert np.isnan(gt[0]) and gt[1:].tolist() == [1, 2, 2]
    assert pr.tolist() == [1, 1, 2, 0]


def test_confusion_rows_are_normalised_and_empty_input_refused(tmp_path: Path) -> None:
    cm = np.array([[3, 1], [0, 0]])
    assert row_normalised(cm).tolist() == [[0.75, 0.25], [0.0, 0.0]]
    with pytest.raises(HecvlError, match="no confusion matrix"):
        confusion_figure([], tmp_path / "c.png", "t")


def _noise_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for relevance in (0.25, 0.5, 0.8):
        for method, gain in (("clip_only", 10.0), ("hecvl", 25.0)):
            for seed in (0, 1, 2):
                for ds in ("cholec80", "autolaparo"):
                    acc = 20 + gain * relevance + rng.normal(0, 2)
                    rows.append((relevance, method, seed, ds, acc, acc * 0.6))
    return pd.DataFrame(rows, columns=["relevance", "method", "seed", "dataset", "accuracy", "f1"])


def test_noise_figure_and_cli(tmp_path: Path, capsys) -> None:
    df = _noise_table()
    _check_png(noise_figure(df, tmp_path / "direct.png"))
    csv = tmp_path / "sweep.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "paper" / "narration_noise.png"
    assert run_cli(["paper", "noise", "--from-table", "--table", str(csv), "--out", str(out)]) == 0
    _check_png(out)
    df.drop(columns=["f1"]).to_csv(csv, index=False)
    assert (
        run_cli(["paper", "noise", "--from-table", "--table", str(csv), "--out", str(tmp_path / "x.png")])
        == 2
    )
    err = capsys.readouterr().err
    assert str(csv) in err and "lacks column(s) f1" in err
    assert not (tmp_path / "x.png").exists()
