"""Tracking against a real MLflow SQLite store: runs, parents, tags, params."""

from __future__ import annotations

import mlflow
import pytest

from hecvl import tracking


@pytest.fixture()
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("HECVL_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv("HECVL_TRACKING", raising=False)
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
        run.log_artifact(art)
    client = mlflow.MlflowClient(store)
    got = client.get_run(run.run_id)
    assert got.info.status == "FINISHED"
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
