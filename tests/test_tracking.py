"""Tracking against a real MLflow SQLite store: runs, parents, tags, params."""

from __future__ import annotations

import json

import mlflow
import pytest

from hecvl import tracking


@pytest.fixture()
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("HECVL_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv("HECVL_TRACKING", raising=False)
    monkeypatch.delenv("HECVL_PARENT_SPOOL_ID", raising=False)
    monkeypatch.chdir(tmp_path)  # the runs' journals (.hecvl/tracking-spool) go to the test's folder
    return uri


def test_flatten_nested_settings():
    flat = tracking.flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x", "empty": {}})
    assert flat == {"a.b": "1", "a.c.d": "[1, 2]", "e": "x", "empty": "{}"}


def test_run_logs_params_metrics_tags_and_artifacts(store, tmp_path):
    exp_id = tracking.init_tracking("study-x")
    assert tracking.init_tracking("study-x") == exp_id  # idempotent
    art = tmp_path / "table.csv"
    art.write_text("a,b\n1,2\n")
    with tracking.mlflow_run(
        "study-x", "evaluate/cholec80", tags={"rule": "evaluate"}, params={"m": {"k": 3}}
    ) as run:
        run.log_metrics({"accuracy_mean": 41.5}, step=0)
        for step in range(1, 31):  # the training loop's way: a background sender, sent by the run's end
            run.queue_metrics({"loss": 1 / step}, step=step)
        run.log_artifact(art)
    client = mlflow.MlflowClient(store)
    got = client.get_run(run.run_id)
    assert got.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.run_id, "loss")] == list(range(1, 31))
    assert got.data.tags["hecvl.spool_id"] == run.spool_id
    assert not list(tmp_path.glob(".hecvl/tracking-spool/*"))  # all sent: no journal left
    assert got.data.params["m.k"] == "3"
    assert got.data.metrics["accuracy_mean"] == 41.5
    assert got.data.tags["rule"] == "evaluate"
    assert {"git_commit", "git_dirty", "data_version"} <= set(got.data.tags)
    assert [a.path for a in client.list_artifacts(run.run_id)] == ["table.csv"]


def test_child_run_joins_parent_and_failure_is_recorded(store, monkeypatch):
    tracking.init_tracking("study-y")
    with tracking.mlflow_run("study-y", "snakemake") as parent:
        pass
    monkeypatch.setenv("HECVL_PARENT_RUN_ID", parent.run_id)
    with pytest.raises(RuntimeError), tracking.mlflow_run("study-y", "pretrain/hecvl") as child:
        raise RuntimeError("boom")
    got = mlflow.MlflowClient(store).get_run(child.run_id)
    assert got.data.tags["mlflow.parentRunId"] == parent.run_id
    assert got.info.status == "FAILED"


def test_tracking_off_logs_nothing(store, monkeypatch):
    monkeypatch.setenv("HECVL_TRACKING", "off")
    with tracking.mlflow_run("study-z", "x") as run:
        run.log_metrics({"a": 1.0})
    assert run.run_id is None
    assert mlflow.MlflowClient(store).get_experiment_by_name("study-z") is None


def test_parent_run_lifecycle(store):
    run_id = tracking.start_parent_run("study-p")
    client = mlflow.MlflowClient(store)
    assert client.get_run(run_id).info.status == "RUNNING"
    tracking.end_parent_run(run_id, "FAILED")
    assert client.get_run(run_id).info.status == "FAILED"
    tracking.end_parent_run(None)  # nothing opened: nothing to do


def test_local_store_keeps_artifacts_beside_its_database(store, tmp_path):
    exp_id = tracking.init_tracking("study-a")
    location = mlflow.MlflowClient(store).get_experiment(exp_id).artifact_location
    assert location == (tmp_path / "mlruns").as_uri()


# --- what a user sees in the MLflow UI ------------------------------------------------------------


def test_study_experiment_is_a_model_training_experiment(store):
    """MLflow 3 opens a GenAI experiment on its traces overview; the study's is marked as model training."""
    client = mlflow.MlflowClient(store)
    exp_id = tracking.init_tracking("study-k")
    tags = client.get_experiment(exp_id).tags
    assert tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    # the view the printed address opens: every run flat, sorted by accuracy, accuracy and F1 as columns
    view = json.loads(tags["mlflow.sharedViewState.study-runs"])
    assert view["orderByKey"] == "metrics.`accuracy`" and view["orderByAsc"] is False
    assert {"metrics.`accuracy`", "metrics.`f1`"} <= set(view["selectedColumns"])
    # a store from before the tag gets it on the next job; a kind someone chose is left alone
    old = client.create_experiment("study-old")
    genai = {tracking.EXPERIMENT_KIND_TAG: "genai_development"}
    chosen = client.create_experiment("study-chosen", tags=genai)
    assert tracking.init_tracking("study-old") == old and tracking.init_tracking("study-chosen") == chosen
    assert client.get_experiment(old).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert tracking.RUNS_VIEW_TAG in client.get_experiment(old).tags
    assert client.get_experiment(chosen).tags[tracking.EXPERIMENT_KIND_TAG] == "genai_development"


def test_end_of_invocation_says_where_the_runs_table_is(store, monkeypatch, capsys):
    monkeypatch.setenv("HECVL_PARENT_RUN_ID", tracking.start_parent_run("study-u"))
    exp_id = mlflow.MlflowClient(store).get_experiment_by_name("study-u").experiment_id
    tracking.end_invocation("FINISHED")
    err = capsys.readouterr().err
    view = "viewStateShareKey=study-runs&workflowType=machine_learning"
    url = f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?{view}"
    assert f"`mlflow ui --backend-store-uri {store}`, then open {url}" in err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.lab.example:8443/")
    assert tracking.ui_hint("7") == f"https://mlflow.lab.example:8443/#/experiments/7/runs?{view}"


def _cell(method: str, variant: str, seed: int, dataset: str, space: str, prompts: str | None) -> dict:
    run = {"method": method, "variant": variant, "seed": seed, "dataset": dataset, "space": space}
    return run if prompts is None else {**run, "prompts": prompts}


def test_evaluation_run_names_tell_every_cell_apart():
    """Two seeds, datasets, spaces or prompt styles of one model never share a run name."""
    from hecvl.evaluation.evaluate import run_name

    cells = [
        _cell("zeroshot", variant, seed, dataset, space, prompts)
        for variant in ("hecvl", "clip_only", "released_hecvl")
        for seed in (0, 1)
        for dataset in ("cholec80", "autolaparo")
        for space in ("clip", "ensemble")
        for prompts in ("decomposed", "simple")
    ]
    cells += [_cell("untrained", "main", s, "cholec80", "ensemble", "decomposed") for s in (0, 1)]
    cells += [_cell("linear_probe", "main", s, "cholec80", "ensemble", None) for s in (0, 1)]
    names = [run_name(c) for c in cells]
    assert len(set(names)) == len(cells)
    assert run_name(cells[0]) == "evaluate/hecvl/seed0/cholec80/clip-decomposed"
    assert "evaluate/clip_only/seed1/cholec80/clip-decomposed" in names  # was evaluate/cholec80/clip_only/...
    assert names[-1] == "evaluate/linear_probe/seed1/cholec80/ensemble"


def test_evaluation_runs_log_accuracy_and_f1_at_the_top_level():
    from hecvl.evaluation.evaluate import headline_metrics

    metrics = {"accuracy_mean": 61.5, "accuracy_std": 3.0, "f1_mean": 42.25, "f1_std": 2.0,
               "accuracy_pooled": 60.0, "f1_pooled": None, "num_frames": 900}
    assert headline_metrics(metrics) == {
        "accuracy": 61.5, "f1": 42.25, "accuracy_mean": 61.5, "accuracy_std": 3.0, "f1_mean": 42.25,
        "f1_std": 2.0, "accuracy_pooled": 60.0,
    }


def test_run_prefix_tells_a_sweeps_runs_from_the_studys(store, monkeypatch):
    """HECVL_RUN_PREFIX (set by the narration-noise rules) leads the run name; unset, the name is kept."""
    with tracking.mlflow_run("study-n", "pretrain/hecvl/seed0") as plain:
        pass
    monkeypatch.setenv("HECVL_RUN_PREFIX", "noise/rel0.25/")
    with tracking.mlflow_run("study-n", "pretrain/hecvl/seed0") as swept:
        pass
    client = mlflow.MlflowClient(store)
    assert client.get_run(plain.run_id).info.run_name == "pretrain/hecvl/seed0"
    assert client.get_run(swept.run_id).info.run_name == "noise/rel0.25/pretrain/hecvl/seed0"
