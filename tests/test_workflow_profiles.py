"""The cluster profile is valid as shipped: Snakemake accepts it and the SLURM plugin reads its partitions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.workflow, pytest.mark.slow]  # Snakemake plans the whole study under the profile


def test_slurm_partitions_give_gpu_jobs_a_gpu_partition() -> None:
    partitions = pytest.importorskip("snakemake_executor_plugin_slurm.partitions")
    parts = partitions.read_partition_file(ROOT / "workflow/profiles/slurm/partitions.yaml")
    gpu = {p.name: p.limits.max_gpu for p in parts}
    assert gpu["cpu"] == 0 and gpu["gpu"] >= 1


def test_slurm_profile_plans_the_study(tmp_path: Path) -> None:
    """A dry run under the profile: its keys are valid options and every evaluation job asks for a GPU."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    for name in ("Snakefile", "workflow", "params.yaml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    env = {**os.environ, "HECVL_TRACKING": "off"}
    cmd = [str(BIN / "snakemake"), "--workflow-profile", "workflow/profiles/slurm", "-n"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "rule evaluate_hecvl_seed0:" in out and "rule pretrain:" in out
    block = out.split("rule evaluate_hecvl_seed0:", 1)[1].split("\n\n", 1)[0]
    assert "gpu=1" in block, block


def _dry_run_blocks(tmp_path: Path, args: list[str], env: dict[str, str]) -> dict[str, str]:
    """Rule name -> the first job block of `snakemake -n ARGS` in a copy of the workflow."""
    for name in ("Snakefile", "workflow", "params.yaml"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    cmd = [str(BIN / "snakemake"), *args, "-n"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    blocks = {}
    for block in (proc.stdout + proc.stderr).split("\nrule ")[1:]:
        blocks.setdefault(block.split(":", 1)[0], block.split("\n\n", 1)[0])
    return blocks


def test_slurm_local_profile_asks_for_no_gpus(tmp_path: Path) -> None:
    """The one-node cluster has no GPUs: its profile caps every GPU request at 0, with or without --config."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    env = {k: v for k, v in os.environ.items() if k != "HECVL_MAX_GPUS"} | {"HECVL_TRACKING": "off"}
    args = ["--workflow-profile", "workflow/profiles/slurm-local", "--config", "preset=smoke"]
    blocks = _dry_run_blocks(tmp_path, args, env)
    for rule in ("pretrain", "evaluate_hecvl_seed0"):
        assert "gpu=0" in blocks[rule] and "slurm_partition=cpu" in blocks[rule], blocks[rule]


def test_gpu_cap_reaches_jobs_through_the_environment(tmp_path: Path) -> None:
    """A job on a node reads the workflow without --resources: HECVL_MAX_GPUS carries the cap to it."""
    env = {**os.environ, "HECVL_TRACKING": "off", "HECVL_MAX_GPUS": "0"}
    blocks = _dry_run_blocks(tmp_path, ["--cores", "1", "--config", "preset=smoke"], env)
    assert "gpu=0" in blocks["pretrain"] and "gpu=0" in blocks["evaluate_hecvl_seed0"], blocks["pretrain"]
    bad = subprocess.run([str(BIN / "snakemake"), "-n"], cwd=tmp_path, env={**env, "HECVL_MAX_GPUS": "one"},
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "HECVL_MAX_GPUS='one'" in bad.stderr, bad.stderr[-2000:]
