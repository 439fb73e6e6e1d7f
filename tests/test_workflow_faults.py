"""The study under faults, for real: Snakemake on the smoke preset, real components, one model's evaluation.

One temporary smoke project builds `evaluate_hecvl_seed0` (acquire, frames, pair, pretrain, evaluate) once,
undisturbed: its metrics and weights are the reference. Each fault then redoes part of that target in the
same project and must end with the same bytes, having redone only what the fault took: Snakemake's whole
process group killed with SIGKILL during pretraining, then during evaluation, each followed by the same
command unchanged (no --unlock, no --rerun-incomplete on the command line); a real `mlflow server` the
jobs track to, killed mid-study and restarted, or killed for good.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import mlflow
import pytest
from study_helpers import BIN, env, free_port, planned_jobs, smoke_project
from study_helpers import run as _run
from study_helpers import snakemake as _snakemake

from hecvl.tracking import unreachable

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc"),
]

TARGET = "evaluate_hecvl_seed0"  # the hecvl seed-0 evaluation job: every cell of that model
MODEL = Path("results/models/hecvl/seed0")
WEIGHTS = MODEL / "model.safetensors"
EVAL = Path("results/eval/hecvl/seed0")
EXPERIMENT = "hecvl-synthetic"  # params.yaml's study.name
PARENT = f"snakemake {TARGET}"  # the name of the invocation's parent run
SPOOL = Path(".hecvl/tracking-spool")


def _outputs(project: Path) -> dict[str, bytes]:
    """What must survive every fault bit for bit: each metrics.json of the model, and its weights."""
    files = [*sorted((project / EVAL).rglob("metrics.json")), project / WEIGHTS]
    return {str(p.relative_to(project)): p.read_bytes() for p in files if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smoke_project(tmp_path_factory.mktemp("workflow-faults"))


@pytest.fixture(scope="module")
def reference(project: Path) -> dict[str, bytes]:
    """The target built once, undisturbed, in the faults' own project (which keeps its data stages)."""
    _snakemake(project, TARGET)
    out = _outputs(project)
    assert len(out) > 2 and str(WEIGHTS) in out, sorted(out)
    return out


def _identical(project: Path, reference: dict[str, bytes]) -> None:
    now = _outputs(project)
    assert sorted(now) == sorted(reference)
    for path, data in reference.items():
        if path.endswith(".json"):  # parsed first, so that a difference shows by key
            assert json.loads(now[path]) == json.loads(data), path
        assert now[path] == data, path


def _job_runs(reference: dict[str, bytes], pretrained: bool) -> set[str]:
    """The MLflow run names of the target's jobs: one per evaluation cell, and the pretraining's."""
    cells = {f"evaluate/{Path(p).parent.relative_to('results/eval')}" for p in reference
             if p.endswith(".json")}
    return cells if pretrained else {*cells, "pretrain/hecvl/seed0"}


def _fresh(project: Path, pretrained: bool) -> None:
    """The model's evaluation outputs gone, and its pretraining done (or gone with its checkpoints)."""
    shutil.rmtree(project / EVAL, ignore_errors=True)
    if not pretrained:
        shutil.rmtree(project / MODEL, ignore_errors=True)
    elif not (project / WEIGHTS).is_file():  # an earlier test here failed midway
        _snakemake(project, str(WEIGHTS))


def _no_debris(project: Path) -> None:
    debris = [p for root in ("results", "data") for p in (project / root).rglob(".*.tmp")]
    assert debris == [], debris
    incomplete = project / ".snakemake" / "incomplete"
    assert not incomplete.is_dir() or not any(incomplete.iterdir()), list(incomplete.iterdir())
    assert not any((project / ".snakemake" / "locks").glob("*.lock"))


# --- Snakemake in its own process group, watched through /proc --------------------------------------
def _group(pgid: int) -> Iterator[list[str]]:
    """The command lines of the live (not zombie) processes of the process group `pgid`."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" or int(fields[2]) != pgid:
                continue
            yield (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue


class Invocation:
    """`snakemake evaluate_hecvl_seed0 --cores 2` (the command study_helpers.snakemake runs) started as the
    leader of a new process group, so that one SIGKILL takes it and every job it started."""

    started: ClassVar[list[Invocation]] = []  # killed after each test if still running (`_no_orphans`)

    def __init__(self, project: Path, uri: str | None = None) -> None:
        environ = env(project) if uri is None else {**env(project), "MLFLOW_TRACKING_URI": uri}
        self.project = project
        self.log = project.parent / f"snakemake-{time.monotonic_ns()}.out"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen([str(BIN / "snakemake"), TARGET, "--cores", "2"], cwd=project,
                                         env=environ, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        Invocation.started.append(self)

    def running(self, stage: str) -> bool:
        """Whether a `hecvl <stage>` job process runs in this invocation's process group."""
        return any(Path(a).name == "hecvl" and b == stage
                   for args in _group(self.proc.pid) for a, b in itertools.pairwise(args))

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 900) -> None:
        """Poll `ready` (no fixed sleeps: the machine may be slow or fast)."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"snakemake ended ({self.proc.returncode}) before {what}:\n{self.output()}")
            assert time.monotonic() < deadline, f"no {what} within {timeout} s"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL to the whole process group, as an OOM killer, a lost node or a cancelled job gives."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        deadline = time.monotonic() + 60
        while any(True for _ in _group(self.proc.pid)):
            assert time.monotonic() < deadline, "processes of the killed group still run"
            time.sleep(0.1)

    def finish(self, timeout: float = 900) -> str:
        """Wait for a successful end; its output."""
        rc = self.proc.wait(timeout=timeout)
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}"
                         for p in sorted((self.project / "logs").rglob("*.log")))
        assert rc == 0, f"snakemake failed ({rc}):\n{self.output()}\n{logs}"
        return self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-8000:]


@pytest.fixture(autouse=True)
def _no_orphans() -> Iterator[None]:
    """A test that fails midway leaves no Snakemake of its own running."""
    yield
    while Invocation.started:
        study = Invocation.started.pop()
        if study.proc.poll() is None:
            os.killpg(study.proc.pid, signal.SIGKILL)
            study.proc.wait()


# --- SIGKILL of the whole study -------------------------------------------------------------------
def test_fault_sigkill_during_pretraining_then_the_same_command_completes(
    project: Path, reference: dict[str, bytes]
) -> None:
    _fresh(project, pretrained=False)
    checkpoint = project / MODEL / "checkpoints" / "step-00000008.json"  # smoke: checkpoint_every 8 of 16
    study = Invocation(project)
    study.wait_until(lambda: checkpoint.is_file() and study.running("pretrain"), "a pretraining checkpoint")
    study.kill()
    assert not (project / WEIGHTS).exists(), "pretraining had ended before the kill"
    assert any((project / ".snakemake" / "locks").glob("*.lock")), "the killed Snakemake left no lock"

    again = _snakemake(project, TARGET)  # the same command, unchanged
    out = again.stdout + again.stderr
    assert re.search(r"cleared \d+ stale lock", out), out[-3000:]
    assert planned_jobs(out) == {"pretrain": 1, TARGET: 1}  # the data stages were kept
    log = (project / "logs/pretrain/hecvl/seed0.log").read_text()
    resumed = re.search(r"resuming from step (\d+) of 16", log)
    assert resumed and int(resumed.group(1)) >= 8, "the rerun did not resume from the kill's checkpoint"
    _identical(project, reference)
    _no_debris(project)


def test_fault_sigkill_during_evaluation_then_the_same_command_completes_without_debris(
    project: Path, reference: dict[str, bytes]
) -> None:
    _fresh(project, pretrained=True)
    cells = [p for p in reference if p.endswith("metrics.json")]
    study = Invocation(project)
    study.wait_until(lambda: any((project / EVAL).rglob("metrics.json")) and study.running("evaluate"),
                     "a first evaluation cell")
    study.kill()
    written = {p: p.stat().st_mtime_ns for p in (project / EVAL).rglob("metrics.json")}
    assert 0 < len(written) < len(cells), "the evaluation had ended before the kill"

    again = _snakemake(project, TARGET)
    out = again.stdout + again.stderr
    assert planned_jobs(out) == {TARGET: 1}, out[-3000:]  # the model kept
    assert all(p.stat().st_mtime_ns != t for p, t in written.items())  # cells of the killed job redone
    _identical(project, reference)
    _no_debris(project)


# --- a tracking server that dies ------------------------------------------------------------------
class Server:
    """A real `mlflow server` over the project's SQLite store at one fixed loopback address, in its own
    process group: killed with SIGKILL (workers and all), then started again at the same address."""

    def __init__(self, project: Path) -> None:
        self.project, self.port = project, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
               "--backend-store-uri", f"sqlite:///{self.project / 'mlflow.db'}", "--workers", "1"]
        self.proc = subprocess.Popen(cmd, cwd=self.project, env=env(self.project), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 180
        while unreachable(self.uri, timeout=2):
            assert self.proc.poll() is None, f"mlflow server exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, "mlflow server did not start within 180 s"
            time.sleep(0.5)

    def kill(self) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.proc = None
        deadline = time.monotonic() + 60
        while not unreachable(self.uri, timeout=2):
            assert time.monotonic() < deadline, f"{self.uri} still answers after the kill"
            time.sleep(0.2)

    def check_runs(self, names: set[str]) -> None:
        """The latest invocation's parent run and exactly its jobs' runs `names`, all FINISHED; no run of
        the study RUNNING."""
        client = mlflow.MlflowClient(self.uri)
        exp = client.get_experiment_by_name(EXPERIMENT)
        runs = client.search_runs([exp.experiment_id], max_results=1000)
        assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
        parent = max((r for r in runs if r.info.run_name == PARENT), key=lambda r: r.info.start_time)
        assert parent.info.status == "FINISHED"
        children = {r.info.run_name: r.info.status for r in runs
                    if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
        assert children == dict.fromkeys(names, "FINISHED"), children


@pytest.fixture()
def server(project: Path) -> Iterator[Server]:
    srv = Server(project)
    yield srv
    srv.kill()


def _spooled(project: Path) -> list[str]:
    """The run names of the journals waiting in the project's spool."""
    journals = (project / SPOOL).glob("*.jsonl")
    return sorted(json.loads(p.read_text().splitlines()[0])["run_name"] for p in journals)


def test_fault_tracking_server_killed_mid_study_and_restarted(
    project: Path, reference: dict[str, bytes], server: Server
) -> None:
    _fresh(project, pretrained=False)
    server.start()
    study = Invocation(project, server.uri)
    study.wait_until(lambda: study.running("pretrain"), "pretraining")
    server.kill()
    study.wait_until(lambda: study.running("evaluate"), "evaluation")
    server.start()
    study.finish()
    _identical(project, reference)
    pretrain_log = (project / "logs/pretrain/hecvl/seed0.log").read_text()
    assert pretrain_log.count(f"MLflow tracking at {server.uri} failed") == 1  # the kill reached the job

    _run([str(BIN / "hecvl"), "tracking", "sync"], project)  # what the invocation's end left, if anything
    server.check_runs(_job_runs(reference, pretrained=False))
    assert _spooled(project) == []


def test_fault_tracking_server_killed_for_good_the_study_spools_and_a_later_sync_sends_it(
    project: Path, reference: dict[str, bytes], server: Server
) -> None:
    _fresh(project, pretrained=True)
    server.start()
    study = Invocation(project, server.uri)
    study.wait_until(lambda: study.running("evaluate"), "evaluation")
    server.kill()
    out = study.finish()
    _identical(project, reference)
    jobs = _job_runs(reference, pretrained=True)
    assert _spooled(project) == sorted({PARENT, *jobs})  # the parent's end, every cell's whole run
    assert f"{len(jobs) + 1} run(s) wait in" in out, out[-3000:]

    server.start()  # on the same store, at the same address
    sync = _run([str(BIN / "hecvl"), "tracking", "sync"], project)
    assert f"sent {len(jobs) + 1} spooled run(s)" in sync.stdout, sync.stdout
    server.check_runs(jobs)
    assert _spooled(project) == []
