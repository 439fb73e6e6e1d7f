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
