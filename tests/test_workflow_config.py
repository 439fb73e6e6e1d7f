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
from study_helpers import BIN, copy_project, planned_jobs
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


def _config_files(project: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((project / "results/config").glob("*.yaml"))}


def test_the_main_file_named_first_is_the_base_not_an_override(project: Path) -> None:
    """`--configfile params.yaml mine.yaml` trains what mine.yaml says, on the world its preset names."""
    (project / "mine.yaml").write_text("preset: smoke\ntrain: {steps: 7, warmup_steps: 1}\n")
    snakemake = str(BIN / "snakemake")
    dry = _run([snakemake, "--cores", "2", "-n", "--configfile", "params.yaml", "mine.yaml"], project)
    assert planned_jobs(dry.stdout).get("pretrain") == 3, dry.stdout  # the smoke design, not the default's 6
    _run([snakemake, TARGET, "--cores", "2", "--configfile", "params.yaml", "mine.yaml"], project)
    assert _trained_steps(project) == 7
    acquired = json.loads((project / "data/acquired.json").read_text())
    assert acquired["synthetic"]["preset"] == "smoke"
    copy = yaml.safe_load((project / "results/config/study.yaml").read_text())
    assert copy["preset"] == "smoke" and copy["data"]["synthetic"]["preset"] == "smoke"
    header = (project / "results/config/study.yaml").read_text().splitlines()[0]
    planned = project / header.split("a copy of ")[1].split(",")[0]
    assert yaml.safe_load(planned.read_text()) == copy  # the file the jobs read says the same


def test_fault_a_dry_run_with_another_preset_leaves_a_running_study_alone(project: Path) -> None:
    import subprocess
    import time

    (project / "nine.yaml").write_text("preset: smoke\ntrain: {steps: 9, warmup_steps: 1}\n")
    running = subprocess.Popen([str(BIN / "snakemake"), TARGET, "--cores", "2", "--configfile", "nine.yaml"],
                               cwd=project, env=_env(project), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 300
        while "steps: 9" not in (project / "results/config/study.yaml").read_text():
            assert running.poll() is None and time.time() < deadline, "the study did not start"
            time.sleep(0.5)
        before = _config_files(project)
        for extra in (["-n", "--config", "preset=default"], ["-n", "--unlock"]):
            # a dry run (refused on the running study's lock, or planned), an unlock attempt
            proc = subprocess.run([str(BIN / "snakemake"), "--cores", "2", *extra], cwd=project,
                                  env=_env(project), capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0 or "cannot be locked" in proc.stdout + proc.stderr, proc.stderr
            assert _config_files(project) == before  # nothing a job reads was written
        out, _ = running.communicate(timeout=600)
    finally:
        running.kill()
    assert running.returncode == 0, out
    assert _trained_steps(project) == 9


def test_a_new_world_retrains_and_the_same_bytes_rerun_nothing(project: Path) -> None:
    """The issue's case: a world seed change reran acquire and nothing else; now it retrains."""
    snakemake = str(BIN / "snakemake")
    base = [TARGET, "--cores", "2", "--config", "preset=smoke", 'train={"steps": 5, "warmup_steps": 1}']
    _run([snakemake, *base], project)
    pairs = (project / "data/pairs/clip.parquet").read_bytes()
    weights = (project / "results/models/hecvl/seed0/model.safetensors").read_bytes()
    seed1 = [*base, 'data={"synthetic": {"seed": 1}}']
    planned = planned_jobs(_run([snakemake, *seed1, "-n"], project).stdout)
    assert {"acquire", "pair", "frames", "pretrain"} <= set(planned), planned
    _run([snakemake, *seed1], project)
    assert (project / "data/pairs/clip.parquet").read_bytes() != pairs
    assert (project / "results/models/hecvl/seed0/model.safetensors").read_bytes() != weights
    again = _run([snakemake, *seed1, "-n"], project)
    assert "Nothing to be done" in again.stdout, again.stdout
    # a `dvc pull` of the same data: every file rewritten with its own bytes, new times
    for f in [*(project / "data/world").rglob("*"), *(project / "data/pairs").rglob("*"),
              project / "data/acquired.json"]:
        if f.is_file():
            f.write_bytes(f.read_bytes())
    assert "Nothing to be done" in _run([snakemake, *seed1, "-n"], project).stdout
    # an edited narration reruns exactly the readers of the corpus
    narration = sorted((project / "data/world/corpus").glob("*/narration.csv"))[0]
    narration.write_text(narration.read_text().rstrip("\n").rsplit("\n", 1)[0] + "\n")
    planned = planned_jobs(_run([snakemake, *seed1, "-n"], project).stdout)
    assert planned == {"pair": 1, "pretrain": 1}, planned


def test_the_paper_declares_every_cell_it_reads(project: Path) -> None:
    """The build reads the untrained and linear-probe cells through the ablations: they are its inputs, so
    with results/eval and results/paper deleted Snakemake remakes them before the paper job."""
    dry = _run([str(BIN / "snakemake"), "--cores", "2", "-n", "--config", "preset=smoke",
                'study={"ablations": ["references"]}', "--", "results/paper/findings.md"], project)
    block = dry.stdout.split("rule paper:", 1)[1].split("\n    output:", 1)[0]
    for reference in ("untrained", "linear_probe"):
        assert f"results/eval/{reference}/seed0/cholec80/metrics.json" in block, block
