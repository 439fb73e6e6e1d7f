"""`hecvl evaluate` end to end on a small Cholec80-layout dataset of real H.264 videos.

The videos colour-code the phase (plus noise), so a linear probe must find the phases while an
untrained model is near chance: the two reference points bracket the zero-shot number.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from evaluation_helpers import PHASES, small_model_params, write_cholec80

from hecvl.cli import main
from hecvl.evaluation.embed import EmbeddingCache
from hecvl.evaluation.metrics import align, score_predictions
from hecvl.evaluation.prompts import load_prompts

COLOURS = np.array(
    [[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40], [200, 40, 200], [40, 200, 200], [120] * 3],
    np.uint8,
)
VIDEOS = ["video01", "video02", "video03", "video04"]


def _phases(i: int) -> list[int]:
    """Phase of each second: a Cholec80-like order, the ending differing between videos."""
    return [0] * 2 + [1] * 3 + [2] * 2 + [3] * 3 + [4 + (i % 3)] * 2 + ([5] if i == 3 else [])


def _colour(p: int, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """The phase's colour plus noise: a linear probe can read it, a random model cannot name it."""
    return np.clip(COLOURS[p].astype(int) + rng.integers(-30, 30, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("eval")
    videos = {video: _phases(i) for i, video in enumerate(VIDEOS)}
    tiny = write_cholec80(
        root / "tiny", videos, {"train": VIDEOS[:2], "test": VIDEOS[2:]}, _colour, h=48, w=64
    )
    params = small_model_params(root, "eval-test", tiny)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return {"root": root, "params": path, "cfg": params}


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")


def _evaluate(world: dict, out: Path, *extra: str) -> dict:
    args = ["evaluate", "--params", str(world["params"]), "--dataset", "tiny", "--out", str(out), *extra]
    assert main(args) == 0
    return json.loads((out / "metrics.json").read_text())


def test_untrained_zero_shot_writes_every_output_and_scores_consistently(world: dict) -> None:
    out = world["root"] / "untrained"
    m = _evaluate(world, out, "--untrained")
    assert m["run"]["method"] == "untrained" and m["run"]["space"] == "ensemble"
    assert m["run"]["prompts"] == "decomposed" and m["run"]["videos"] == ["video03", "video04"]
    pred = pd.read_parquet(out / "predictions.parquet")
    assert list(pred.columns[:4]) == ["video", "frame_sec", "phase_id", "gt_phase_id"]
    assert [c for c in pred.columns if c.startswith("score_")] == [f"score_{k}" for k in range(7)]
    # one row per second of each test video, ground truth joined from the published-format labels
    for i, video in ((2, "video03"), (3, "video04")):
        rows = pred[pred["video"] == video]
        assert rows["frame_sec"].tolist() == list(range(len(_phases(i))))
        assert rows["gt_phase_id"].tolist() == _phases(i)
    # the prediction is the argmax of the stored scores (ties to the lowest id)
    scores = pred[[f"score_{k}" for k in range(7)]].to_numpy()
    assert (pred["phase_id"].to_numpy() == scores.argmax(axis=1)).all()
    assert np.abs(scores).max() <= 100.0 + 1e-4  # 100 x cosine
    # metrics.json is exactly what the scorer gives for the parquet's predictions
    gt = pred[["video", "frame_sec", "gt_phase_id"]].rename(columns={"gt_phase_id": "phase_id"})
    frames, _ = align(gt, pred[["video", "frame_sec", "phase_id"]])
    again = score_predictions(frames, class_names=PHASES)
    for key in ("accuracy_mean", "accuracy_std", "f1_mean", "f1_std", "per_video", "per_phase"):
        assert m[key] == again[key]
    # and `hecvl score` on the parquet as it is gives the same numbers
    gt_csv = out.parent / "untrained-gt.csv"
    gt.dropna().to_csv(gt_csv, index=False)
    scored = out.parent / "untrained-scored.json"
    args = ["score", "--gt", str(gt_csv), "--pred", str(out / "predictions.parquet"), "--classes", "cholec80"]
    assert main([*args, "--out", str(scored)]) == 0
    rescored = json.loads(scored.read_text())
    for key in ("accuracy_mean", "f1_mean", "per_video", "per_phase", "confusion_matrix"):
        assert rescored[key] == m[key]
    prompts = json.loads((out / "prompts.json").read_text())
    assert prompts["classes"]["ClippingCutting"] == load_prompts("cholec80").texts[2]
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cache = EmbeddingCache(
        Path(world["cfg"]["eval"]["cache"]), m["run"]["model_key"], "tiny", "48x64-bilinear-c32"
    )
    for level in ("clip", "phase", "video"):
        arr = np.load(cache.path("video03", level))
        assert arr.shape == (len(_phases(2)), 32)
        assert np.allclose(np.linalg.norm(arr, axis=1), 1.0, atol=1e-5)


def test_second_run_is_served_from_the_caches(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    first = world["root"] / "cached-1"
    _evaluate(world, first, "--untrained", "--space", "clip", "--prompts", "class_name")
    from hecvl.models.model import HecVLModel
    from hecvl.video import FrameCache

    def refuse(*_a, **_k):
        raise AssertionError("decoded or embedded frames although the embeddings are cached")

    monkeypatch.setattr(FrameCache, "get", refuse)
    monkeypatch.setattr(HecVLModel, "embed_video", refuse)
    second = world["root"] / "cached-2"
    m = _evaluate(world, second, "--untrained", "--space", "clip", "--prompts", "class_name")
    assert m["run"]["prompts"] == "class_name"
    pd.testing.assert_frame_equal(
        pd.read_parquet(first / "predictions.parquet"), pd.read_parquet(second / "predictions.parquet")
    )


def test_saved_weights_equal_the_same_seeded_model_and_probe_finds_the_phases(world: dict) -> None:
    from hecvl.models import build_model, save_pretrained

    cfg = world["cfg"]
    weights = world["root"] / "model"
    save_pretrained(build_model(cfg["model"], seed=0), cfg, weights)
    zs = _evaluate(world, world["root"] / "weights", "--weights", str(weights), "--space", "phase")
    assert zs["run"]["method"] == "zeroshot" and zs["run"]["model"] == str(weights)
    untrained = _evaluate(world, world["root"] / "untrained-phase", "--untrained", "--space", "phase")
    # the same model, saved or built fresh with the same seed: one cache key, the same predictions
    assert zs["run"]["model_key"] == untrained["run"]["model_key"]
    other = _evaluate(
        world, world["root"] / "untrained-seed1", "--untrained", "--seed", "1", "--space", "phase"
    )
    assert other["run"]["model_key"] != untrained["run"]["model_key"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(world["root"] / "weights" / "predictions.parquet"),
        pd.read_parquet(world["root"] / "untrained-phase" / "predictions.parquet"),
    )
    probe = _evaluate(
        world, world["root"] / "probe", "--weights", str(weights), "--linear-probe", "--space", "phase"
    )
    assert probe["run"]["method"] == "linear_probe" and probe["run"]["train_videos"] == ["video01", "video02"]
    assert "prompts" not in probe["run"] and not (world["root"] / "probe" / "prompts.json").exists()
    # colours carry the phase: the probe reads them from frozen random-init features, zero-shot cannot
    assert probe["accuracy_mean"] >= 75.0
    assert probe["accuracy_mean"] > zs["accuracy_mean"] + 25.0
    scores = pd.read_parquet(world["root"] / "probe" / "predictions.parquet").filter(like="score_").to_numpy()
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)  # probabilities over all 7 classes


def test_format_hecvl_is_ours_with_one_deprecation_line(world: dict, caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    """`--format ours` names our own folder; the former name `hecvl` still works and says so once."""
    from hecvl.models import build_model, save_pretrained

    weights = world["root"] / "model-alias"
    save_pretrained(build_model(world["cfg"]["model"], seed=0), world["cfg"], weights)
    ours = _evaluate(world, world["root"] / "ours", "--format", "ours", "--weights", str(weights))
    with caplog.at_level("WARNING"):
        old = _evaluate(world, world["root"] / "old-name", "--format", "hecvl", "--weights", str(weights))
    lines = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert lines == ["--format hecvl is deprecated: use --format ours"]
    assert "format" not in ours["run"] and ours["run"]["model"] == str(weights)
    for key in ("accuracy_mean", "f1_mean", "per_video", "protocol_hash"):
        assert old[key] == ours[key]


def test_one_call_evaluates_several_datasets_and_settings_as_single_calls_do(world: dict) -> None:
    """The workflow's batch form: one model load, every (dataset, space, prompts), the same numbers."""
    cfg = {**world["cfg"], "data": {"targets": {**world["cfg"]["data"]["targets"]}}}
    cfg["data"]["targets"]["twin"] = cfg["data"]["targets"]["tiny"]  # a second dataset name, same files
    params = world["root"] / "two-datasets.yaml"
    params.write_text(yaml.safe_dump(cfg))
    template = world["root"] / "batch" / "{dataset}" / "{space}-{prompts}"
    settings = ["--setting", "clip-class_name", "--setting", "ensemble-decomposed"]
    args = ["evaluate", "--params", str(params), "--untrained", "--dataset", "tiny", "twin"]
    assert main([*args, *settings, "--out", str(template)]) == 0
    single = _evaluate(world, world["root"] / "single-clip", "--untrained", "--space", "clip",
                       "--prompts", "class_name")
    for dataset in ("tiny", "twin"):
        for space, prompts in (("clip", "class_name"), ("ensemble", "decomposed")):
            out = world["root"] / "batch" / dataset / f"{space}-{prompts}"
            m = json.loads((out / "metrics.json").read_text())
            assert (m["run"]["dataset"], m["run"]["space"], m["run"]["prompts"]) == (dataset, space, prompts)
            assert (out / "predictions.parquet").is_file() and (out / "confusion.png").is_file()
            if space == "clip":
                assert m["per_video"] == single["per_video"]
                assert m["accuracy_mean"] == single["accuracy_mean"]
    ensemble = json.loads((world["root"] / "batch/tiny/ensemble-decomposed/metrics.json").read_text())
    alone = _evaluate(world, world["root"] / "single-ensemble", "--untrained")
    assert ensemble["per_video"] == alone["per_video"]


def test_several_evaluations_need_an_out_template(world: dict, capsys: pytest.CaptureFixture) -> None:
    base = ["evaluate", "--params", str(world["params"]), "--untrained", "--dataset", "tiny"]
    plain = world["root"] / "plain"
    two = ["--setting", "clip-decomposed", "--setting", "phase-decomposed"]
    assert main([*base, *two, "--out", str(plain)]) == 2
    assert "several settings need an --out template with {space} or {prompts}" in capsys.readouterr().err
    assert main([*base, "--setting", "clip", "--out", str(plain)]) == 2
    assert "expected SPACE-PROMPTS" in capsys.readouterr().err
    assert main([*base, "--setting", "clip-decomposed", "--space", "clip", "--out", str(plain)]) == 2
    assert "--setting replaces --space and --prompts" in capsys.readouterr().err
    only_space = str(world["root"] / "t" / "{space}")
    twice = ["--setting", "clip-decomposed", "--setting", "clip-class_name"]
    assert main([*base, *twice, "--out", only_space]) == 2
    assert "gives two evaluations the same folder" in capsys.readouterr().err
    assert not plain.exists() and not (world["root"] / "t").exists()


def test_bad_requests_are_one_line_errors(world: dict, capsys: pytest.CaptureFixture) -> None:
    base = ["evaluate", "--params", str(world["params"]), "--untrained", "--out", str(world["root"] / "x")]
    assert main([*base, "--dataset", "nope"]) == 2
    assert "unknown target dataset 'nope'" in capsys.readouterr().err
    assert main([*base, "--dataset", "tiny", "--split", "val"]) == 2
    assert "no split 'val'" in capsys.readouterr().err
    bad = world["root"] / "bad.yaml"
    bad.write_text(yaml.safe_dump({**world["cfg"], "eval": {"spcae": "clip"}}))
    assert main(["evaluate", "--params", str(bad), "--untrained", "--dataset", "tiny", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: eval.spcae is not a setting" in err and len(err.strip().splitlines()) == 1
    assert not (world["root"] / "x").exists()


@pytest.mark.slow
def test_mlflow_run_holds_metrics_and_outputs(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    uri = f"sqlite:///{world['root'] / 'mlflow.db'}"
    monkeypatch.setenv("HECVL_TRACKING", "on")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(world["root"])  # the default artifact store is relative to the working directory
    m = _evaluate(world, world["root"] / "tracked", "--untrained", "--space", "video")
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["eval-test"], output_format="list")
    seed = m["run"]["seed"]
    assert len(runs) == 1 and runs[0].info.run_name == f"evaluate/untrained/seed{seed}/tiny/video-decomposed"
    run = runs[0]
    assert run.data.metrics["accuracy_mean"] == pytest.approx(m["accuracy_mean"])
    # what a reader sorts the runs table by: the per-video means under their plain names
    assert run.data.metrics["accuracy"] == pytest.approx(m["accuracy_mean"])
    assert run.data.metrics["f1"] == pytest.approx(m["f1_mean"])
    assert run.data.metrics["accuracy_pooled"] == pytest.approx(m["accuracy_pooled"])
    assert run.data.tags["seed"] == str(seed) and run.data.tags["output"] == str(world["root"] / "tracked")
    assert run.data.metrics["f1_std"] == pytest.approx(m["f1_std"])
    assert run.data.params["eval.space"] == "video" and run.data.tags["dataset"] == "tiny"
    assert run.data.tags["prompts"] == "decomposed" and run.data.tags["space"] == "video"
    assert run.data.params["eval.prompt_sha256"] == m["run"]["prompt_sha256"]
    assert run.data.tags["protocol"] == "hecvl v1" and run.data.tags["protocol_hash"] == m["protocol_hash"]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert artifacts == {"metrics.json", "predictions.parquet", "confusion.png", "prompts.json"}


def test_benchmark_prints_rates_and_a_json_last_line(world: dict, capsys: pytest.CaptureFixture) -> None:
    import runpy

    bench = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "evaluate.py"))
    assert bench["main"](["--params", str(world["params"]), "--dataset", "tiny", "--repeats", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["frames"] == sum(len(_phases(i)) for i in (2, 3))
    for key in ("decode_frames_per_s", "eval_cold_frames_per_s", "eval_warm_frames_per_s"):
        assert result[key] > 0
    assert result["cold_over_decode"] == pytest.approx(
        result["eval_cold_frames_per_s"] / result["decode_frames_per_s"], rel=1e-2
    )
    # one repeat: the paired median is that repeat's decode time / cold time, i.e. the best-time ratio
    assert result["cold_over_decode_paired_median"] == pytest.approx(result["cold_over_decode"], rel=1e-2)
    assert isinstance(result["meets_target"], bool) and result["space"] == "ensemble"
