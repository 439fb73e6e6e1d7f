"""The smoke study through SLURM, for real: a one-node cluster on this machine, the slurm-local profile.

`tools/local-cluster.sh up` installs munge, SLURM, slurmdbd and MariaDB from Debian if
missing and starts them (module fixture; `down` at teardown). The study then runs once through
`--workflow-profile workflow/profiles/slurm-local` while a pretraining job is cancelled with `scancel`
mid-run, as an admin or a preemption would; the tests check that every rule instance ran as an sbatch
job that accounting (`sacct`) saw complete, that the cancelled job was submitted again and the study
finished, and that its metrics are byte-identical to the same study run without SLURM (conftest's
`study`, shared with the other workflow tests).
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from study_helpers import BIN, env, planned_jobs, run, smoke_project

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "local-cluster.sh"
PROFILE = "workflow/profiles/slurm-local"
STUDY_TIMEOUT_S = 900  # a hang (a job whose end Snakemake never sees) must fail the test, not stall it
CANCELLED_RULE = "rule_pretrain_"  # the plugin's job comment: rule_<rule>_wildcards_<values>

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[dict[str, str]]:
    """A running one-node cluster with accounting; its state in a fresh folder, stopped at teardown."""
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (it installs Debian packages, writes /etc/slurm)")
    if shutil.which("apt-get") is None:
        pytest.skip("no apt-get to install munge, slurm-wlm, slurmdbd and mariadb-server")
    state = Path(tempfile.mkdtemp(prefix="hecvl-slurm-test-", dir="/tmp"))  # MariaDB's user must enter it
    state.chmod(0o755)
    cluster_env = {**os.environ, "HECVL_SLURM_DIR": str(state), "HECVL_SLURM_PORT": "26817"}
    started = time.monotonic()
    up = subprocess.run([str(SCRIPT), "up"], env=cluster_env, capture_output=True, text=True, timeout=900)
    if up.returncode == 100:  # the script names the Debian package apt-get could not install
        shutil.rmtree(state, ignore_errors=True)
        pytest.skip(up.stderr.strip().splitlines()[-1])
    try:
        assert up.returncode == 0, f"local-cluster.sh up failed:\n{up.stderr[-4000:]}"
        print(f"local-cluster.sh up: {time.monotonic() - started:.1f} s")
        yield cluster_env
    finally:
        down = subprocess.run([str(SCRIPT), "down"], env=cluster_env, capture_output=True, text=True,
                              timeout=300)
        shutil.rmtree(state, ignore_errors=True)
        assert down.returncode == 0, f"local-cluster.sh down failed:\n{down.stderr[-4000:]}"


def _metric_files(project: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(project)): p.read_bytes()
        for p in sorted((project / "results" / "eval").rglob("metrics.json"))
    }


@dataclass
class SlurmRun:
    project: Path
    planned: dict[str, int]  # rule -> jobs, from the dry run under the profile
    submitted: dict[str, str]  # SLURM job id -> the rule Snakemake submitted it for
    cancelled: str  # the job id this test cancelled
    accounting: list[dict[str, str]]  # sacct's rows for this cluster: JobIDRaw, State, Comment


def _squeue() -> list[tuple[str, str, str]]:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True, timeout=30)
    return [tuple(line.split("|", 2)) for line in out.stdout.splitlines() if line.count("|") >= 2]


def _run_and_cancel_one_pretraining(project: Path) -> tuple[str, str]:
    """Runs the study under the profile; cancels the first pretraining job seen RUNNING for 3 s.

    Returns (cancelled job id, Snakemake's output). Fails, killing Snakemake, past STUDY_TIMEOUT_S.
    """
    cmd = [str(BIN / "snakemake"), "--workflow-profile", PROFILE]
    log = project / "slurm-run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=project, env=env(project), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    cancelled, running_since = "", {}
    try:
        while proc.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"the study under SLURM did not end in {STUDY_TIMEOUT_S} s:\n"
                            f"{log.read_text()[-6000:]}\nsqueue: {_squeue()}")
            if not cancelled:
                for job, state, comment in _squeue():
                    if state == "RUNNING" and comment.startswith(CANCELLED_RULE):
                        since = running_since.setdefault(job, time.monotonic())
                        if time.monotonic() - since >= 3:
                            subprocess.run(["scancel", job], check=True, timeout=30)
                            cancelled = job
                            break
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    output = log.read_text()
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{output[-8000:]}"
    assert cancelled, "no pretraining job was seen RUNNING in squeue to cancel"
    return cancelled, output


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster: dict[str, str], tmp_path_factory) -> SlurmRun:
    """The smoke study through the slurm-local profile, one pretraining job cancelled mid-run."""
    project = smoke_project(tmp_path_factory.mktemp("slurm"))
    dry = run([str(BIN / "snakemake"), "--workflow-profile", PROFILE, "-n", "--quiet", "rules"], project)
    planned = planned_jobs(dry.stdout)
    started = time.monotonic()
    cancelled, output = _run_and_cancel_one_pretraining(project)
    print(f"study through SLURM: {time.monotonic() - started:.1f} s")
    # "Job 9 has been submitted with SLURM jobid 19 (log: .../slurm_logs/rule_pretrain/hecvl_0/19.log)."
    pattern = r"submitted with SLURM jobid (?P<id>\d+) \(log: \S*/slurm_logs/rule_(?P<rule>\w+?)/"
    submitted = {m["id"]: m["rule"] for m in re.finditer(pattern, output)}
    fields = ["JobIDRaw", "State", "Comment"]
    sacct = subprocess.run(
        ["sacct", "-X", "-P", "-n", "--allusers", "-S", "2000-01-01", "-o", ",".join(fields)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    accounting = [dict(zip(fields, line.split("|", 2), strict=True)) for line in sacct.stdout.splitlines()]
    return SlurmRun(project, planned, submitted, cancelled, accounting)


def test_slurm_cluster_runs_every_rule_instance_as_an_sbatch_job(slurm_run: SlurmRun) -> None:
    assert slurm_run.planned["all"] == 1  # a target with no command: Snakemake ends it itself
    planned = {rule: n for rule, n in slurm_run.planned.items() if rule != "all"}
    # the frame store's jobs, one per lecture of the smoke world, join the DAG once acquire (a checkpoint) ran
    assert "store" not in planned
    planned["store"] = 3
    assert set(slurm_run.submitted.values()) == set(planned), slurm_run.submitted
    by_id = {row["JobIDRaw"]: row for row in slurm_run.accounting}
    assert set(by_id) == set(slurm_run.submitted), "sacct's jobs are not the jobs Snakemake submitted"
    completed = [row for row in slurm_run.accounting if row["State"] == "COMPLETED"]
    # one completed job per rule instance: the plugin's comment names the rule and the wildcards
    per_rule = collections.Counter(re.sub(r"_wildcards_.*", "", row["Comment"]) for row in completed)
    assert per_rule == {f"rule_{rule}": n for rule, n in planned.items()}, per_rule
    assert len({row["Comment"] for row in completed}) == len(completed)
    others = [row for row in slurm_run.accounting if row["State"] != "COMPLETED"]
    assert [row["JobIDRaw"] for row in others] == [slurm_run.cancelled], others
    print(f"sbatch jobs: {len(slurm_run.accounting)} ({len(completed)} completed, 1 cancelled)")


def test_slurm_cluster_resubmits_a_cancelled_job(slurm_run: SlurmRun) -> None:
    cancelled = next(row for row in slurm_run.accounting if row["JobIDRaw"] == slurm_run.cancelled)
    assert cancelled["State"].startswith("CANCELLED"), cancelled
    again = [
        row for row in slurm_run.accounting
        if row["Comment"] == cancelled["Comment"] and int(row["JobIDRaw"]) > int(slurm_run.cancelled)
    ]
    assert [row["State"] for row in again] == ["COMPLETED"], (cancelled, again)
    assert (slurm_run.project / "results" / "paper" / "main_table.csv").stat().st_size > 0
    dry = run([str(BIN / "snakemake"), "--cores", "1", "-n"], slurm_run.project)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout


def test_slurm_cluster_metrics_match_the_local_run(
    slurm_run: SlurmRun, study: Path
) -> None:
    local_metrics = _metric_files(study)
    through_slurm = _metric_files(slurm_run.project)
    assert local_metrics and set(through_slurm) == set(local_metrics)
    differ = [path for path, data in local_metrics.items() if through_slurm[path] != data]
    assert not differ, f"metrics differ between the SLURM and the local run: {differ}"

