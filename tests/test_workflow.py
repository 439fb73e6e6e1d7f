"""The study's DAG on the smoke preset, for real: Snakemake, DVC with a local remote, MLflow.

One temporary project runs the whole smoke study once per session (conftest's `study`); the tests
check what a user relies on: the paper's outputs exist, a second `snakemake` has nothing to do, every
job is an MLflow child run of the invocation's parent run (read back through a real `mlflow server`),
and the pinned reproduction (`git checkout <tag>`, `dvc pull`, `snakemake <ablation>`) in a fresh clone gives
the same metrics without re-running the data stages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from study_helpers import BIN, ROOT, mlflow_api, mlflow_server, planned_jobs
from study_helpers import run as _run
from study_helpers import snakemake as _snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
# `study`, the smoke study run once per session, is conftest's (made by study_helpers.make_study)


def _metrics(project: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(project)): json.loads(p.read_text())
        for p in sorted((project / "results" / "eval").rglob("metrics.json"))
    }


def test_study_writes_the_papers_outputs(study: Path):
    paper = study / "results" / "paper"
    for name in ("main_table", "ablation_table"):
        for ext in ("csv", "md", "tex"):
            assert (paper / f"{name}.{ext}").stat().st_size > 0
    for ext in ("csv", "md"):
        assert (paper / f"paired.{ext}").stat().st_size > 0
    paired = (paper / "paired.csv").read_text().splitlines()
    assert paired[0] == "dataset,metric,n,mean_diff,ci_low,ci_high,main,baseline"
    assert any(line.startswith("average,accuracy,") for line in paired[1:])
    for line in paired[1:]:  # one seed (the smoke preset): the interval is left empty, not faked
        fields = line.split(",")
        assert fields[2] != "1" or fields[4:6] == ["", ""], line
    check = json.loads((study / "results" / "world" / "check.json").read_text())  # rule world_check
    assert set(check["datasets"]) >= {"cholec80", "strasbypass70"}
    assert check["criteria"]["tool_tips_at_least_2px"]
    findings = (paper / "findings.md").read_text(encoding="utf-8")
    assert "**Is the task learnable?** `hecvl synth --check`" in findings
    from paper_helpers import findings_structure

    from hecvl.paper.findings import readme_block

    # the README's results block is a findings.md of this code (refresh it: make study && make readme)
    assert findings_structure(readme_block(ROOT / "README.md")) == findings_structure(findings)
    convergence = (paper / "convergence.csv").read_text().splitlines()
    assert convergence[0] == "variant,seed,step,dataset,split,space,prompts,accuracy,f1"
    assert any(",val," in line for line in convergence[1:])  # scored on the validation split, never test
    assert not any(",test," in line for line in convergence[1:])
    for fig in ("accuracy_f1", "per_phase_f1", "confusion", "timelines", "convergence"):
        assert (paper / f"{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    main = (paper / "main_table.md").read_text()
    assert "published" in main and "hecvl" in main and "clip_only" in main
    for ablation in ("heads", "prompts"):
        assert (study / "results" / "ablations" / f"{ablation}.csv").is_file()
    # Every evaluation scored every test second of its dataset.
    metrics = _metrics(study)
    assert metrics and all(m["num_frames"] > 0 and 0 <= m["accuracy_mean"] <= 100 for m in metrics.values())


def test_second_run_has_nothing_to_do(study: Path):
    out = _snakemake(study, dry=True).stdout
    assert "Nothing to be done" in out and "Job stats:" not in out, out


def test_runs_are_children_of_one_parent_in_mlflow_server(study: Path):
    with mlflow_server(study) as base:
        exp = mlflow_api(base, "experiments/get-by-name?experiment_name=hecvl-synthetic")["experiment"]
        body = {"experiment_ids": [exp["experiment_id"]], "max_results": 1000}
        runs = mlflow_api(base, "runs/search", body)["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    parents = [r["info"]["run_id"] for r, t in zip(runs, tags, strict=True) if t.get("rule") == "snakemake"]
    assert parents, "no parent run for the Snakemake invocation"
    children = [t for t in tags if t.get("mlflow.parentRunId") in parents]
    stages = {t.get("stage") or t.get("rule") for t in children}
    assert {"pretrain", "evaluate"} <= stages, stages
    assert all("git_commit" in t and "data_version" in t for t in children)


def test_pinned_reproduction_of_an_ablation(study: Path):
    clone = study.parent / "clone"  # beside the project: the relative DVC remote resolves the same
    _run(["git", "clone", "-q", str(study), str(clone)], study.parent)
    _run(["git", "checkout", "-q", "smoke-v1"], clone)
    _run([str(BIN / "dvc"), "pull", "-q"], clone)
    planned = planned_jobs(_snakemake(clone, "ablation_heads", dry=True).stdout)
    assert "pretrain" in planned and not {"acquire", "pair"} & set(planned), planned
    # one evaluation job per model: hecvl's (heads + prompts ablations) and shared_heads'
    assert {"evaluate_hecvl_seed0", "evaluate_shared_heads_seed0"} <= set(planned), planned
    _snakemake(clone, "ablation_heads")
    original, reproduced = _metrics(study), _metrics(clone)
    assert reproduced and set(reproduced) <= set(original)
    for path, metrics in reproduced.items():
        assert metrics["per_video"] == original[path]["per_video"], path
        assert metrics["accuracy_mean"] == original[path]["accuracy_mean"], path


def test_report_builds_with_the_figures(study: Path):
    _run([str(BIN / "snakemake"), "--report", "results/paper/report.html"], study)  # as `make study` does
    html = (study / "results" / "paper" / "report.html").read_text(errors="replace")
    assert "accuracy_f1.png" in html and "convergence.png" in html


def test_narration_noise_sweep_runs_on_its_own_worlds(study: Path):
    """`snakemake narration_noise`: its own worlds, pairs, models and evaluations; the study's untouched."""
    planned = planned_jobs(_snakemake(study, "narration_noise", dry=True).stdout)
    assert {"noise_world", "noise_pair", "noise_pretrain", "narration_noise"} <= set(planned), planned
    assert not {"acquire", "pair", "pretrain", "frames"} & set(planned), planned  # shared frames reused
    assert planned["noise_world"] == 2 and planned["noise_pretrain"] == 4  # smoke: 2 levels x 2 variants
    _snakemake(study, "narration_noise")
    table = pd.read_csv(study / "results" / "noise" / "narration_noise.csv")
    assert sorted(table["relevance"].unique()) == [0.25, 0.8]
    assert set(table["method"]) == {"clip_only", "hecvl"} and len(table) == 2 * 2 * 2  # x 2 datasets
    assert table[["accuracy", "f1"]].notna().all().all()
    import mlflow  # the sweep's MLflow runs carry the relevance: none shares a name with the study's

    client = mlflow.MlflowClient(f"sqlite:///{study / 'mlflow.db'}")
    exp_id = client.get_experiment_by_name("hecvl-synthetic").experiment_id
    runs = client.search_runs([exp_id], max_results=1000)
    names = [r.info.run_name for r in runs if r.data.tags.get("rule") != "snakemake"]
    assert len(set(names)) == len(names), sorted(names)
    assert {"noise/rel0.25/pretrain/hecvl/seed0", "noise/rel0.8/pair"} <= set(names), sorted(names)
    assert any(n.startswith("noise/rel0.8/evaluate/hecvl/seed0/") for n in names), sorted(names)
    png = study / "results" / "paper" / "narration_noise.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    findings = (study / "results" / "noise" / "findings.md").read_text(encoding="utf-8")
    assert "- relevance 0.25: hecvl − clip_only" in findings and "- relevance 0.8:" in findings
    readme = study / "README.md"
    readme.write_text("<!-- noise:begin -->\n<!-- noise:end -->\n", encoding="utf-8")
    _run([str(BIN / "hecvl"), "paper", "readme", "--block", "noise", "--readme", str(readme)], study)
    assert findings in readme.read_text(encoding="utf-8")  # what `make readme` puts in the README
    again = _snakemake(study, dry=True)  # the sweep changed nothing the study depends on
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout


def test_protocol_sensitivity_scores_the_study_models_under_every_protocol(study: Path):
    """`snakemake protocol_sensitivity`: one sweep per model of the main comparison, then the paper's
    table and figure; the study's own results untouched."""
    planned = planned_jobs(_snakemake(study, "protocol_sensitivity", dry=True).stdout)
    assert planned == {"protocol_sweep": 2, "protocol_sensitivity": 1}, planned  # smoke: 2 variants x 1 seed
    _snakemake(study, "protocol_sensitivity")
    paper = study / "results" / "paper"
    rows = pd.read_csv(paper / "protocol_sensitivity.csv", dtype={"protocol_hash": str})
    assert set(rows["protocol"]) == {"hecvl", "surgvlp", "peskavlp-table1", "surgclip", "surglime"}
    assert set(rows["model"]) == {"clip_only", "hecvl"} and set(rows["seed"]) == {0}
    full = rows[rows["choice"] == "all"]
    assert full.groupby("protocol")["protocol_hash"].nunique().eq(1).all()  # one hash per protocol
    # the study protocol's sweep rows are the study's own evaluations, number for number
    row = full[(full["protocol"] == "hecvl") & (full["model"] == "hecvl") & (full["seed"] == 0)
               & (full["dataset"] == "cholec80")].iloc[0]
    run = json.loads((study / row["path"]).read_text())["run"]
    cell = study / f"results/eval/hecvl/seed0/cholec80/{run['space']}-{run['prompts']}/metrics.json"
    study_metrics = json.loads(cell.read_text())
    assert row["protocol_hash"] == study_metrics["protocol_hash"]
    assert row["accuracy_mean"] == pytest.approx(study_metrics["accuracy_mean"])
    md = (paper / "protocol_sensitivity.md").read_text(encoding="utf-8")
    assert "| surgclip (all) |" in md and "clip_only: Δ accuracy / Δ F1" in md
    assert (paper / "protocol_sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = study / "README.md"
    readme.write_text("<!-- protocols:begin -->\n<!-- protocols:end -->\n", encoding="utf-8")
    _run([str(BIN / "hecvl"), "paper", "readme", "--block", "protocols", "--readme", str(readme)], study)
    assert md in readme.read_text(encoding="utf-8")  # what `make readme` puts in the README
    again = _snakemake(study, dry=True)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout
