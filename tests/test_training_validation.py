"""Zero-shot validation during pretraining: validation.csv on the smoke world's real target videos, and
training that is bit-identical with it on or off."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from training_helpers import small_params, smoke_world

from hecvl.config import load_params
from hecvl.errors import HecvlError
from hecvl.evaluation.validation import COLUMNS
from hecvl.training.trainer import Trainer, pretrain

DATASETS = ["cholec80", "strasbypass70"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return smoke_world(tmp_path_factory)


def params_for(world: dict[str, Path], tmp: Path, every: int) -> dict:
    """SMALL settings, the targets of the smoke world, its own frame caches, validation every `every`."""
    targets = load_params(Path(__file__).resolve().parents[1] / "params.yaml").data.targets
    root = world["corpus"].parent
    data = {name: {**t.to_dict(), "root": str(root / Path(t.root).relative_to("data/world"))}
            for name, t in targets.items()}
    return small_params(world["frames"], {
        "data": {"targets": data},
        "study": {"datasets": DATASETS},
        "frames": {"cache": str(tmp / "frames")},
        "model": {"visual": {"image_size": 32}},
        "train": {"validation": {"every": every}, "steps": 6},
    })


def test_validation_rows_at_start_every_and_end(world: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")
    on = pretrain(params_for(world, tmp_path, 4), world["pairs"], tmp_path / "on",
                  corpus_root=world["corpus"], progress=False)
    table = pd.read_csv(tmp_path / "on" / "validation.csv")
    assert list(table.columns) == COLUMNS
    assert sorted(table["step"].unique()) == [0, 4, 6]  # step 0, every 4, and the last
    assert set(table["dataset"]) == set(DATASETS) and set(table["split"]) == {"val"}
    assert set(table["space"]) == {"clip", "phase", "video", "ensemble"}
    assert len(table) == 3 * len(DATASETS) * 4
    assert table["accuracy"].between(0, 100).all() and table["f1"].between(0, 100).all()
    assert table.groupby(["dataset", "space"])["accuracy"].nunique().max() > 1  # the scores follow training

    off = pretrain(params_for(world, tmp_path, 0), world["pairs"], tmp_path / "off",
                   corpus_root=world["corpus"], progress=False)
    pd.testing.assert_frame_equal(on.losses, off.losses)  # validation draws nothing, changes nothing
    assert pd.read_csv(tmp_path / "off" / "validation.csv").empty  # header only: a fixed set of outputs
    again = pretrain(params_for(world, tmp_path, 4), world["pairs"], tmp_path / "again",
                     corpus_root=world["corpus"], progress=False)
    assert again.losses.equals(on.losses)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "validation.csv"), table)


def test_validation_rows_survive_a_resume(world: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")
    params = params_for(world, tmp_path, 2)
    trainer = Trainer(params, world["pairs"], tmp_path / "run", corpus_root=world["corpus"])
    row = (2, "cholec80", "val", "clip", "decomposed", 10.0, 5.0)
    trainer.val_rows = [dict(zip(COLUMNS, row, strict=True))]
    state = trainer.state(2, [])
    state["step"] = 2
    fresh = Trainer(params, world["pairs"], tmp_path / "run", corpus_root=world["corpus"])
    fresh.restore(state)
    assert fresh.val_rows == trainer.val_rows


def test_validation_needs_the_split(world: dict[str, Path], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")
    params = params_for(world, tmp_path, 2)
    params["train"]["validation"]["split"] = "holdout"
    with pytest.raises(HecvlError, match=r"has no split 'holdout'"):
        pretrain(params, world["pairs"], tmp_path / "x", corpus_root=world["corpus"], progress=False)
    params["train"]["validation"]["split"] = "test"
    with pytest.raises(HecvlError, match=r"train\.validation\.split: .*must not be the test split"):
        load_params_dict(params)


def load_params_dict(params: dict) -> None:
    from hecvl.config import coerce_params

    coerce_params(params)


def test_validation_uses_the_targets_the_user_configured(world: dict[str, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """data.source local: a study dataset whose folder is absent is left out of validation (one line),
    and with none present the run trains without validation instead of failing at step 0 (the corpus-only
    setup, whose params still name the study's targets: 'splits file not found')."""
    monkeypatch.setenv("HECVL_TRACKING", "off")
    params = params_for(world, tmp_path, 2)
    params["data"]["source"] = "local"
    params["data"]["targets"]["strasbypass70"]["root"] = str(tmp_path / "absent" / "multibypass140")
    with caplog.at_level(logging.INFO, logger="hecvl.config.identity"):
        pretrain(params, world["pairs"], tmp_path / "some", corpus_root=world["corpus"], progress=False)
    table = pd.read_csv(tmp_path / "some" / "validation.csv")
    assert set(table["dataset"]) == {"cholec80"} and sorted(table["step"].unique()) == [0, 2, 4, 6]
    said = [r.getMessage() for r in caplog.records if r.name == "hecvl.config.identity"]
    absent = tmp_path / "absent"
    assert said == [f"validation on cholec80 only (strasbypass70: no folder {absent}/multibypass140)"]

    caplog.clear()
    params["data"]["targets"]["cholec80"]["root"] = str(absent / "cholec80")
    with caplog.at_level(logging.INFO, logger="hecvl.config.identity"):
        none = pretrain(params, world["pairs"], tmp_path / "none", corpus_root=world["corpus"],
                        progress=False)
    assert pd.read_csv(tmp_path / "none" / "validation.csv").empty
    said = [r.getMessage() for r in caplog.records if r.name == "hecvl.config.identity"]
    assert len(said) == 1 and said[0].startswith("validation off: no target dataset of study.datasets is "
                                                 f"configured (cholec80: no folder {absent}/cholec80;")
    off = pretrain(params_for(world, tmp_path, 0), world["pairs"], tmp_path / "off",
                   corpus_root=world["corpus"], progress=False)
    pd.testing.assert_frame_equal(none.losses, off.losses)
