"""The paper's path end to end through the DAG on a CPU: `snakemake --cores 2 --config preset=paper-smoke`.

The preset keeps the paper's model and data path (random-init ResNet-50 at 336 px, a trainable text encoder
with the paper's pooling, lectures rendered at 1280x720 25 fps H.264, the JPEG frame store at 2 fps and
360x640, the chunked step) at toy batch sizes and 3 steps, so no part of that path goes untested here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from study_helpers import BIN, copy_project, run, snakemake

from hecvl.video import probe
from hecvl.video.store import Pack, verify

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def paper_smoke(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project of the workflow that ran `snakemake --cores 2 --config preset=paper-smoke` once."""
    project = copy_project(tmp_path_factory.mktemp("paper-smoke") / "project")
    run(["git", "init", "-q", "-b", "main"], project)
    run([str(BIN / "snakemake"), "--cores", "2", "--config", "preset=paper-smoke"], project, timeout=2400)
    return project


def test_the_lectures_are_real_resolution_h264(paper_smoke: Path) -> None:
    videos = sorted((paper_smoke / "data/world/corpus").glob("*/video.mp4"))
    assert len(videos) == 3
    for video in videos:
        info = probe(video)
        assert (info.width, info.height, info.fps) == (1280, 720, 25.0)
        assert info.codec == "h264"


def test_training_read_the_jpeg_store_of_every_lecture(paper_smoke: Path) -> None:
    packs = sorted((paper_smoke / "data/store").glob("*/*.pack"))
    assert [p.parent.name for p in packs] == ["360x640-bilinear.fps2.jpeg90.auto"] * 3
    for pack in packs:
        verify(pack)
        with Pack(pack) as p:
            assert p.fps == 2.0 and p.meta["settings"]["encoding"] == "jpeg"
            frames = p.rows([0, len(p) - 1])
            assert frames.shape == (2, 360, 640, 3) and frames.dtype.name == "uint8"
            assert frames.std() > 5  # pictures, not a blank frame


def test_the_run_trained_the_paper_model_with_the_chunked_step(paper_smoke: Path) -> None:
    run_dir = paper_smoke / "results/models/hecvl/seed0"
    config = json.loads((run_dir / "train_config.json").read_text())
    train, model = config["train"], config["params"]["model"]
    assert train["chunk"] == 4 and train["store"]["encoding"] == "jpeg"
    assert model["visual"]["preset"] == "resnet50" and model["visual"]["image_size"] == 336
    assert model["text"]["freeze"] is False and model["text"]["pooling"] == "sum_last4"
    assert config["schedule"]["batches"] == {"clip": 1, "phase": 1, "video": 1}
    losses = (run_dir / "losses.csv").read_text().splitlines()
    assert [line.split(",")[1] for line in losses[1:]] == ["clip", "phase", "video"]
    from safetensors.torch import load_file

    weights = load_file(run_dir / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
    rows = (run_dir / "validation.csv").read_text().splitlines()
    assert len(rows) > 1 and all(",cholec80," in r for r in rows[1:])  # the configured target only


def test_the_study_is_scored_and_a_second_run_has_nothing_to_do(paper_smoke: Path) -> None:
    metrics = json.loads((paper_smoke / "results/eval/hecvl/seed0/cholec80/ensemble-decomposed/metrics.json")
                         .read_text())
    assert 0.0 <= metrics["accuracy_mean"] <= 100.0
    assert (paper_smoke / "results/paper/main_table.csv").is_file()
    dry = snakemake(paper_smoke, "--config", "preset=paper-smoke", dry=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]
