"""`hecvl evaluate --format surgvlp`, the study's released-weights rows, and the paper's handling of them.

The released checkpoint is the random full-size one of tests/released_helpers.py (built once per session);
the dataset is a hand-made Cholec80-layout folder of two short real H.264 videos. The end-to-end run is
checked against the released model's own forward on the decoder's full-size frames, so the PIL-transform
frame cache, the adapter and the scoring together must equal the authors' pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from evaluation_helpers import PHASES, gradient, write_cholec80
from paper_helpers import ablation_rows, make_results_tree, run_cli, write_evaluation
from released_helpers import shared_released

from hecvl.cli import main
from hecvl.config import load_params
from hecvl.errors import HecvlError
from hecvl.evaluation.embed import EmbeddingCache
from hecvl.evaluation.metrics import align, score_predictions
from hecvl.evaluation.prompts import load_prompts
from hecvl.layout import RELEASED_EVAL
from hecvl.released_runs import ReleasedRuns
from hecvl.study import Study

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = {"video01": [0, 1], "video02": [2, 3]}  # phase of each second
PIL_KEY = "360x640-pil-c224"


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return shared_released(tmp_path_factory)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("released_eval")
    ds = root / "tiny"
    tiny = write_cholec80(ds, VIDEOS, {"train": [], "test": list(VIDEOS)}, gradient, h=120, w=160)
    params = {
        "seed": 0,
        "study": {"name": "released-test"},
        "data": {"targets": {"tiny": tiny}},
        # our models' frames: the decoder's bilinear path at 64 px; the released ones must not use it
        "frames": {
            "cache": str(root / "frames"),
            "backend": "pyav",
            "transform": {"size": [48, 64], "crop": 32},
        },
        "model": {"visual": {"image_size": 32}},  # our models train on crops of those frames
        "eval": {"cache": str(root / "emb"), "batch_size": 4},
    }
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return {"root": root, "params": path, "cfg": params, "ds": ds}


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")


def _args(world: dict, released: dict, out: Path, *extra: str) -> list[str]:
    return [
        "evaluate", "--params", str(world["params"]), "--format", "surgvlp",
        "--weights", str(released["ckpt"]), "--bert-dir", str(released["bert_dir"]),
        "--dataset", "tiny", "--split", "test", "--out", str(out), *extra,
    ]  # fmt: skip


def test_released_weights_end_to_end(
    world: dict, released: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from hecvl.released import surgvlp_model as released_module
    from hecvl.video import FrameCache, FrameTransform, open_video

    # keep what the command loads and embeds as text (both checked in test_models_released.py), so the
    # image side can be recomputed below without loading 534 MB and running BERT a second time
    seen: dict = {"models": [], "texts": []}
    load, embed_texts = released_module.load_released, released_module.ReleasedModel.embed_texts

    def recording_load(*args, **kwargs):
        seen["models"].append(load(*args, **kwargs))
        return seen["models"][-1]

    def recording_embed_texts(self, texts):
        seen["texts"].append((list(texts), embed_texts(self, texts)))
        return seen["texts"][-1][1]

    monkeypatch.setattr(released_module, "load_released", recording_load)
    monkeypatch.setattr(released_module.ReleasedModel, "embed_texts", recording_embed_texts)
    uri = f"sqlite:///{world['root'] / 'mlflow.db'}"
    monkeypatch.setenv("HECVL_TRACKING", "on")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(world["root"])
    out = world["root"] / "out"
    assert main(_args(world, released, out)) == 0
    m = json.loads((out / "metrics.json").read_text())
    run = m["run"]
    assert run["method"] == "zeroshot" and run["format"] == "surgvlp" and run["space"] == "joint"
    assert run["variant"] == "released_hecvl" and run["prompts"] == "decomposed"
    assert run["transform"] == PIL_KEY and run["weights"] == str(released["ckpt"])
    assert run["videos"] == list(VIDEOS) and run["truncated_prompts"] == 0

    # one row per second, ground truth joined, prediction = argmax of the 100 x cosine scores
    pred = pd.read_parquet(out / "predictions.parquet")
    for video, phases in VIDEOS.items():
        rows = pred[pred["video"] == video]
        assert rows["frame_sec"].tolist() == list(range(len(phases)))
        assert rows["gt_phase_id"].tolist() == phases
    scores = pred[[f"score_{k}" for k in range(7)]].to_numpy()
    assert (pred["phase_id"].to_numpy() == scores.argmax(axis=1)).all()
    assert np.abs(scores).max() <= 100.0 + 1e-3
    gt = pred[["video", "frame_sec", "gt_phase_id"]].rename(columns={"gt_phase_id": "phase_id"})
    frames, _ = align(gt, pred[["video", "frame_sec", "phase_id"]])
    again = score_predictions(frames, class_names=PHASES)
    for key in ("accuracy_mean", "f1_mean", "per_video", "per_phase", "confusion_matrix"):
        assert m[key] == again[key]
    assert 0.0 <= m["accuracy_mean"] <= 100.0 and 0.0 <= m["f1_mean"] <= 100.0
    for name in ("prompts.json", "confusion.png"):
        assert (out / name).is_file()

    # the scores are the released model's own forward on the full-size decoded frames (its PIL
    # resize + crop), with the decomposed prompts: the pipeline adds nothing and loses nothing
    [model] = seen["models"]
    [(texts, text_emb)] = seen["texts"]
    assert texts == load_prompts("cholec80").flat()  # one decomposed prompt per class, in id order
    assert torch.linalg.matrix_rank(text_emb) == 7  # seven distinct class embeddings
    for video, phases in VIDEOS.items():
        with open_video(world["ds"] / "videos" / f"{video}.mp4", backend="pyav") as reader:
            full = reader.frames_at(np.arange(len(phases), dtype=float))
        assert full.shape[1:] == (120, 160, 3)
        expected = model.score(model.embed_images(full), text_emb).numpy()
        got = pred[pred["video"] == video][[f"score_{k}" for k in range(7)]].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-3)

    # the authors' frames are their own frame-cache entry, beside (never instead of) ours
    cache = FrameCache(world["cfg"]["frames"]["cache"], backend="pyav")
    video = world["ds"] / "videos" / "video01.mp4"
    pil_entry, _ = cache.entry_paths(video, FrameTransform((360, 640), 224, "pil"))
    ours_entry, _ = cache.entry_paths(video, FrameTransform((48, 64), 32, "bilinear"))
    assert pil_entry.is_file() and not ours_entry.exists() and pil_entry.parent == ours_entry.parent
    assert np.load(pil_entry, mmap_mode="r").shape == (2, 224, 224, 3)
    emb = EmbeddingCache(Path(world["cfg"]["eval"]["cache"]), run["model_key"], "tiny", PIL_KEY)
    arr = np.load(emb.path("video01", "joint"))
    assert arr.shape == (2, 768) and np.allclose(np.linalg.norm(arr, axis=1), 1.0, atol=1e-5)

    # one MLflow run, as for our models
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["released-test"], output_format="list")
    assert [r.info.run_name for r in runs] == ["evaluate/released_hecvl/seed0/tiny/joint-decomposed"]
    assert runs[0].data.metrics["accuracy_mean"] == pytest.approx(m["accuracy_mean"])
    assert runs[0].data.metrics["accuracy"] == pytest.approx(m["accuracy_mean"])
    assert runs[0].data.params["eval.format"] == "surgvlp"


def test_bad_requests_are_one_line_errors_and_write_nothing(
    world: dict, released: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "x"
    assert main([*_args(world, released, out), "--space", "clip"]) == 2
    assert "--space does not apply to --format surgvlp" in capsys.readouterr().err
    assert main([*_args(world, released, out), "--linear-probe"]) == 2
    assert "--linear-probe is not offered" in capsys.readouterr().err
    base = ["evaluate", "--params", str(world["params"]), "--dataset", "tiny", "--out", str(out)]
    assert main([*base, "--weights", str(released["ckpt"])]) == 2  # forgot --format surgvlp
    assert "needs --format surgvlp" in capsys.readouterr().err
    assert main([*base, "--format", "surgvlp", "--weights", str(released["ckpt"])]) == 2
    assert "needs --bert-dir (or released.bert_dir" in capsys.readouterr().err
    assert main([*base, "--untrained", "--bert-dir", str(released["bert_dir"])]) == 2
    assert "--bert-dir applies to --format surgvlp, surgclip, surglime only" in capsys.readouterr().err
    junk = tmp_path / "SurgVLP.pth"
    junk.write_bytes(b"not a checkpoint")
    argv = [*base, "--format", "surgvlp", "--weights", str(junk), "--bert-dir", str(released["bert_dir"])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hecvl evaluate: error: {junk}: ") and err.count("\n") == 1
    assert not out.exists()


# ---- the study's design and the paper ----------------------------------------------------------------
def _with_released(params: dict, root: Path, weights: dict[str, str | None], bert: str | None) -> dict:
    params = json.loads(json.dumps(params))
    params["released"] = {"bert_dir": bert, "weights": weights}
    for path in [p for p in weights.values() if p and "missing" not in p]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"stand-in: the study only checks that the file is there")
    if bert and "missing" not in bert:
        (root / bert).mkdir(parents=True, exist_ok=True)
        (root / bert / "vocab.txt").write_text("[PAD]\n")
    return params


def test_study_lists_only_released_models_configured_and_on_disk(tmp_path: Path) -> None:
    project = load_params(ROOT / "params.yaml").to_dict()
    runs = ReleasedRuns(project)
    assert runs.entries(tmp_path) == []  # the shipped params.yaml names no file
    assert runs.notes(tmp_path) == [
        f"{n} (released weights) rows skipped: released.weights.{k} is not set"
        for k, n in (("surgvlp", "SurgVLP"), ("hecvl", "HecVL"), ("peskavlp", "PeskaVLP"))
    ]
    weights = {"surgvlp": "w/SurgVLP.pth", "hecvl": "w/HecVL.pth", "peskavlp": "w/missing.pth"}
    runs = ReleasedRuns(_with_released(project, tmp_path, weights, "bert"))
    assert runs.bert_dir == "bert"
    assert runs.weights(tmp_path) == {"surgvlp": "w/SurgVLP.pth", "hecvl": "w/HecVL.pth"}
    entries = runs.entries(tmp_path)
    datasets = Study(project).datasets
    assert [(e.label, e.dataset) for e in entries] == [
        (f"{n} (released weights)", d) for n in ("SurgVLP", "HecVL") for d in datasets
    ]
    e = entries[0]
    assert (e.variant, e.seed, e.space, e.prompts) == ("released_surgvlp", 0, "joint", "decomposed")
    assert e.path == f"{RELEASED_EVAL}/surgvlp/cholec80/joint-decomposed/metrics.json"
    assert e.path == runs.path("surgvlp", "cholec80") and e.label == runs.label("surgvlp")
    assert runs.notes(tmp_path) == [
        "PeskaVLP (released weights) rows skipped: released.weights.peskavlp = w/missing.pth not found"
    ]
    # relative paths are looked up under the project root that is passed
    assert ReleasedRuns(_with_released(project, tmp_path, weights, "bert")).entries(tmp_path / "w") == []
    # no vocabulary: nothing can be evaluated, and every configured model says why
    runs = ReleasedRuns(_with_released(project, tmp_path, weights, "missing_bert"))
    assert runs.entries(tmp_path) == []
    notes = runs.notes(tmp_path)
    assert sum("released.bert_dir missing_bert has no vocab.txt" in n for n in notes) == 2
    assert len(notes) == 3 and runs.notes(tmp_path, configured_only=True) == notes
    runs = ReleasedRuns(_with_released(project, tmp_path, {"hecvl": "w/HecVL.pth"}, None))
    assert runs.notes(tmp_path, configured_only=True) == [
        "HecVL (released weights) rows skipped: released.bert_dir is not set (a local Bio_ClinicalBERT "
        "folder with its vocab.txt)"
    ]
    with pytest.raises(HecvlError, match=r"released\.weights\.clip is not a setting$"):
        ReleasedRuns(_with_released(project, tmp_path, {"clip": "w/HecVL.pth"}, "bert"))


def test_paper_build_adds_released_rows_or_says_why_not(tmp_path: Path) -> None:
    study = make_results_tree(tmp_path)
    params_path = tmp_path / "params.yaml"
    for name in study.ablations:
        out = str(tmp_path / study.ablation_table(name))
        argv = ["paper", "table", "--params", str(params_path), "--name", name, "--out", out]
        assert run_cli([*argv, "--root", str(tmp_path), *ablation_rows(study, name)]) == 0

    def build(out: Path) -> tuple[pd.DataFrame, str]:
        argv = ["paper", "build", "--params", str(params_path), "--out", str(out), "--root", str(tmp_path)]
        assert run_cli(argv) == 0
        return pd.read_csv(out / "main_table.csv"), (out / "run_protocol.md").read_text()

    # without released weights: as before, and run_protocol.md says which rows were skipped and why
    table, protocol = build(tmp_path / "paper_without")
    assert "released" not in set(table["group"])
    assert "HecVL (released weights) rows skipped: released.weights.hecvl is not set" in protocol

    # with HecVL's file (PeskaVLP's configured but absent): HecVL rows right after the published ones
    params = yaml.safe_load(params_path.read_text())
    weights = {"hecvl": "models/HecVL.pth", "peskavlp": "models/missing.pth"}
    params_path.write_text(yaml.safe_dump(_with_released(params, tmp_path, weights, "models/bert")))
    params = load_params(params_path)
    study = Study(params)
    entries = ReleasedRuns(params).entries(tmp_path)
    assert [e.dataset for e in entries] == list(study.datasets)
    for e in entries:
        metrics = write_evaluation(tmp_path, e)
        metrics["run"].update(format="surgvlp", transform=PIL_KEY, weights="models/HecVL.pth", model_key="k")
        (tmp_path / e.path).write_text(json.dumps(metrics))
    table, protocol = build(tmp_path / "paper_with")
    assert list(dict.fromkeys(table["group"])) == ["published", "released", "ours", "reference"]
    rows = table[table["group"] == "released"]
    assert set(rows["method"]) == {"HecVL (released weights), synthetic"}
    assert list(rows["dataset"]) == [*study.datasets, "average"]
    cholec = rows[rows["dataset"] == "cholec80"].iloc[0]
    expected = json.loads((tmp_path / entries[0].path).read_text())
    assert cholec["accuracy_mean"] == pytest.approx(expected["accuracy_mean"], abs=1e-4)
    assert cholec["n_seeds"] == 1
    markdown = (tmp_path / "paper_with" / "main_table.md").read_text()
    assert "| HecVL (released weights), synthetic |" in markdown and "44.8 / 25.1" in markdown
    assert f"frames {PIL_KEY}" in protocol and "`models/HecVL.pth`" in protocol
    skipped = "PeskaVLP (released weights) rows skipped: released.weights.peskavlp = models/missing.pth"
    assert skipped in protocol
