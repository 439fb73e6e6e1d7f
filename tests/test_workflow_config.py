"""What Snakemake resolves is what the jobs run: --config and --configfile overrides reach the jobs.

A small project of its own (the smoke world, one pretraining run), so the shared smoke study of
test_workflow.py is left untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from study_helpers import BIN, copy_project
from study_helpers import env as _env
from study_helpers import run as _run

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
TARGET = "results/models/hecvl/seed0/model.safetensors"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("config") / "project")


def _trained_steps(project: Path) -> int:
    model = project / "results/models/hecvl/seed0"
    losses = pd.read_csv(model / "losses.csv")
    config = json.loads((model / "train_config.json").read_text())
    assert config["train"]["steps"] == len(losses)
    return len(losses)


def test_config_and_configfile_overrides_reach_the_pretraining_job(project: Path) -> None:
    snakemake = str(BIN / "snakemake")
    _run([snakemake, TARGET, "--cores", "2", "--config", "preset=smoke", 'train={"steps": 5}'], project)
    assert _trained_steps(project) == 5  # not the smoke preset's 16, not params.yaml's default 150
    resolved = yaml.safe_load((project / "results/config/study.yaml").read_text())
    assert resolved["preset"] == "smoke" and resolved["train"]["steps"] == 5

    (project / "override.yaml").write_text("preset: smoke\ntrain:\n  steps: 3\n  warmup_steps: 1\n")
    _run([snakemake, TARGET, "--cores", "2", "--configfile", "override.yaml"], project)
    assert _trained_steps(project) == 3  # the changed setting reran the job, with the file's values

    dry = _run([snakemake, TARGET, "--cores", "2", "-n", "--configfile", "override.yaml",
                "--config", 'train={"threads": 2}'], project)
    assert "Nothing to be done" in dry.stdout + dry.stderr  # execution-only settings never retrain


def test_a_bad_override_stops_the_dag_with_one_line(project: Path) -> None:
    import subprocess

    proc = subprocess.run([str(BIN / "snakemake"), "-n", "--config", 'train={"lr": -1}'], cwd=project,
                          env=_env(project), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "hecvl: params.yaml with --configfile/--config: train.lr must be > 0, got -1" in proc.stderr
    assert "Traceback" not in proc.stderr
