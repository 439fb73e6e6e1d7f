"""The study design: which runs exist, which are shared, where their results land."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from hecvl.config import load_params
from hecvl.errors import HecvlError
from hecvl.study import Study, expose_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def params():
    p = load_params(ROOT / "params.yaml").to_dict()
    p["variants"]["hecvl_again"] = {}  # same pretraining settings as hecvl, another name
    return p


def test_identical_variants_share_one_pretraining_run(params):
    study = Study(params)
    assert study.canonical("hecvl_again") == "hecvl"
    assert study.model_dir("hecvl_again", 1) == study.model_dir("hecvl", 1) == "results/models/hecvl/seed1"
    assert study.canonical("shared_heads") == "shared_heads"


def test_main_and_ablation_entries(params):
    study = Study(params)
    main = study.main_entries()
    assert len(main) == 2 * len(study.seeds) * len(study.datasets)
    space = study.ablation_entries("space")
    assert {e.space for e in space} == {"clip", "phase", "video", "ensemble"}
    assert all(e.path.endswith(f"{e.space}-decomposed/metrics.json") for e in space)
    refs = study.ablation_entries("references")
    assert {e.variant for e in refs} == {"untrained", "linear_probe"}
    assert refs[0].path.startswith("results/eval/untrained/seed0/")
    with pytest.raises(HecvlError, match="unknown ablation"):
        study.ablation_entries("nope")


def test_evaluation_jobs_cover_every_entry_once_one_process_per_model(params):
    study = Study(params)
    jobs = study.evaluation_jobs()
    produced = [m for job in jobs for m in job.metrics]
    assert len(produced) == len(set(produced))  # no two jobs write the same file
    assert set(produced) == {e.path for e in study.all_entries(defined=True)}
    assert {e.path for e in study.all_entries()} < set(produced)  # on-demand ablations have jobs too
    assert "evaluate_mil_nce_seed0" in {job.name for job in jobs}
    assert len({job.name for job in jobs}) == len(jobs)
    by_name = {job.name: job for job in jobs}
    # hecvl seed 0 answers the main table and the space and prompts ablations in one process
    hecvl = by_name["evaluate_hecvl_seed0"]
    assert set(hecvl.settings) >= {"ensemble-decomposed", "clip-decomposed", "ensemble-class_name"}
    assert hecvl.datasets == tuple(study.datasets)
    # the variant sharing hecvl's pretraining has no job of its own
    assert "evaluate_hecvl_again_seed0" not in by_name
    for job in jobs:  # the --out template expands to exactly the job's metrics folders
        expanded = {
            job.out_template.replace("{dataset}", d).replace("{space}-{prompts}", s) + "/metrics.json"
            for d in job.datasets
            for s in (job.settings or ("",))
        }
        assert expanded == set(job.metrics), job.name
    probe = by_name["evaluate_linear_probe_seed0"]
    assert probe.reference and probe.settings == ()
    assert probe.metrics[0] == f"results/eval/linear_probe/seed0/{study.datasets[0]}/metrics.json"


def test_a_preset_runs_a_subset_of_ablations(params):
    params["study"]["ablations"] = ["heads"]
    study = Study(params)
    assert list(study.ablations) == ["heads"]
    # the others stay targets of their own, built on demand
    assert "clip_loss" in study.defined_ablations and "levels" in study.defined_ablations
    assert {e.variant for e in study.ablation_entries("levels")} == {"clip_only", "clip_phase", "hecvl"}
    params["study"]["ablations"] = ["heads", "missing"]
    with pytest.raises(HecvlError, match="undefined ablation"):
        Study(params)


def test_noise_sweep_entries(params):
    study = Study(params)
    entries = study.noise_entries()
    n = len(study.noise["relevance"]) * len(study.noise["variants"]) * len(study.noise["seeds"])
    assert len(entries) == n * len(study.datasets)
    main = {e.path for e in study.main_entries()}
    for rel, e in entries:
        if rel == 0.5:  # the main world's relevance: the main study's own runs, not a second world
            assert e.path in main, e.path
        else:
            assert e.path.startswith(f"results/noise/rel{rel:g}/eval/"), e.path
    # a seed the main study does not run is swept at that relevance too, in its own tree
    params["study"]["noise"] = {"relevance": [0.5], "seeds": [7]}
    assert all(e.path.startswith("results/noise/rel0.5/") for _r, e in Study(params).noise_entries())
    # so is every level when the main world has another relevance
    params["study"].pop("noise")
    params["data"]["synthetic"]["narration_relevance"] = 0.6
    assert all(e.path.startswith("results/noise/") for _r, e in Study(params).noise_entries())


def test_workflow_rules_find_the_cli_beside_snakemake(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin")
    expose_cli()
    scripts = os.environ["PATH"].split(os.pathsep)[0]
    assert scripts == os.path.dirname(sys.executable)
    assert (Path(scripts) / "hecvl").exists()
    expose_cli()  # idempotent
    assert os.environ["PATH"].count(scripts) == 1


def test_noise_sweep_jobs_cover_its_entries_one_process_per_model(params):
    study = Study(params)
    jobs = study.noise_jobs()
    produced = [m for _rel, job in jobs for m in job.metrics]
    swept = [e.path for _rel, e in study.noise_entries() if e.path.startswith("results/noise/")]
    assert sorted(produced) == sorted(swept)
    levels = [r for r in study.noise["relevance"] if not study.is_main_world(r)]  # 0.5 is reused
    assert levels == [0.25, 0.8]
    n = len(levels) * len(study.noise["variants"]) * len(study.noise["seeds"])
    assert len(jobs) == n and len({job.name for _r, job in jobs}) == n
    rel, job = jobs[0]
    assert job.name == f"noise_rel{rel:g}_{job.model}_seed{job.seed}".replace(".", "p", 1)
    assert job.metrics[0].startswith(f"results/noise/rel{rel:g}/eval/{job.model}/seed{job.seed}/")


def test_only_what_decides_a_run_reruns_it(params):
    """The pretrain rule's params: execution details and study lists leave them unchanged."""
    before = Study(params).training_settings("hecvl")
    params["train"].update(threads=2, text_cache=False, checkpoint_every=7, num_workers=2)
    params["study"]["ablations"] = ["heads"]
    params["eval"]["batch_size"] = 7
    assert Study(params).training_settings("hecvl") == before
    params["train"]["lr"] = 5.0e-4
    assert Study(params).training_settings("hecvl") != before



def test_cutting_the_main_seeds_cuts_every_ablation_that_follows_them(params):
    """Issue 22: `study.seeds: [0]` trains 2 models, not hecvl seeds 1 and 2 for ablation_space too."""
    assert params["ablations"]["space"]["seeds"] == "main"
    full = Study(params)
    assert {e.seed for e in full.ablation_entries("space")} == {0, 1, 2}
    assert {e.seed for e in full.ablation_entries("prompts")} == {0}  # `seeds: ablation`
    params["study"]["seeds"] = [0]
    study = Study(params)
    assert {e.seed for e in study.ablation_entries("space")} == {0}
    assert study.trained_models() == [("clip_only", 0), ("hecvl", 0)]
    assert {e.seed for e in study.all_entries(defined=True)} == {0}
    assert {job.seed for job in study.evaluation_jobs()} == {0}


def test_an_ablation_follows_the_main_seeds_unless_it_names_others(params):
    params["study"].update(seeds=[3, 4], ablation_seeds=[4])
    del params["ablations"]["levels"]["seeds"]  # the default: study.seeds
    params["ablations"]["space"]["seeds"] = [5]  # a list is taken as it is
    study = Study(params)
    assert {e.seed for e in study.ablation_entries("levels")} == {3, 4}
    assert {e.seed for e in study.ablation_entries("heads")} == {4}
    assert {e.seed for e in study.ablation_entries("space")} == {5}


def test_choosing_other_main_seeds_moves_the_single_seed_ablations_too(params):
    """`study.ablation_seeds` unset: the first main seed, so `seeds: [1, 2]` never trains seed 0."""
    params["study"]["seeds"] = [1, 2]
    study = Study(params)
    assert {e.seed for e in study.ablation_entries("prompts")} == {1}
    assert {seed for _variant, seed in study.trained_models()} == {1, 2}
