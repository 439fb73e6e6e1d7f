"""Tracking is best-effort once results exist: a real `mlflow server` on loopback that is down, comes
back, or never answers, and jobs that are killed. Outputs are always kept; the spool is sent once."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from pairing_helpers import ABSTRACT, GOOD_KEYSTEPS, GOOD_NARRATIONS, make_lecture
from study_helpers import BIN, env, free_port

from hecvl import tracking
from hecvl.cli import main

EXPERIMENT = "hecvl-synthetic"  # params.yaml's default study.name

pytestmark = pytest.mark.slow  # real mlflow servers stopped, restarted and jobs killed: about 45 s


class Server:
    """A real `mlflow server` on one fixed loopback port, over the project's SQLite store: a job can be
    pointed at it while it is down, and it comes back at the same address."""

    def __init__(self, project: Path) -> None:
        self.project, self.port = project, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if self.proc is not None:
            return
        cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
               "--backend-store-uri", f"sqlite:///{self.project / 'mlflow.db'}", "--workers", "1"]
        self.proc = subprocess.Popen(cmd, cwd=self.project, env=env(self.project),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(240):
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                return
            assert self.proc.poll() is None, f"mlflow server exited with {self.proc.returncode}"
            time.sleep(0.5)
        raise AssertionError("mlflow server did not start within 120 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def runs(self, name: str | None = None) -> list:
        client = mlflow.MlflowClient(self.uri)
        exp = client.get_experiment_by_name(EXPERIMENT)
        runs = client.search_runs([exp.experiment_id]) if exp else []
        return [r for r in runs if name is None or r.info.run_name == name]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder (params.yaml: the defaults) with a one-lecture corpus for `hecvl pair`."""
    root = tmp_path_factory.mktemp("faults")
    (root / "params.yaml").write_text("seed: 0\n")
    make_lecture(root / "corpus", "lec_a", 20.0, GOOD_NARRATIONS, GOOD_KEYSTEPS, ABSTRACT)
    return root


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[Server]:
    srv = Server(project)
    yield srv
    srv.stop()


@pytest.fixture()
def clean_env(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("HECVL_TRACKING", "HECVL_PARENT_RUN_ID", "HECVL_PARENT_SPOOL_ID", "HECVL_RUN_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(project)
    return project


def hecvl(project: Path, uri: str, *args: str) -> subprocess.CompletedProcess:
    """The `hecvl` command in the project, tracking to `uri`."""
    return subprocess.run([str(BIN / "hecvl"), *args], cwd=project, capture_output=True, text=True,
                          timeout=300, env={**env(project), "MLFLOW_TRACKING_URI": uri})


def spool(project: Path) -> list[Path]:
    return sorted((project / ".hecvl" / "tracking-spool").glob("*.jsonl"))


def test_a_stage_against_a_dead_server_keeps_its_outputs_and_sync_sends_its_run_once(
    clean_env: Path, server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    project = clean_env
    server.stop()  # the server is down: nothing listens on its port
    t0 = time.monotonic()
    proc = hecvl(project, server.uri, "pair", "corpus", "--params", "params.yaml", "--out", "data/pairs",
                 "--no-progress")
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in (project / "data/pairs").iterdir()} == {
        "clip.parquet", "phase.parquet", "video.parquet", "stats.json", "stats.png"}
    # one warning line naming the store, no retry noise or traceback; seconds, not MLflow's minutes
    noisy = [ln for ln in proc.stderr.splitlines() if any(w in ln for w in ("WARNING", "ERROR", "Trace"))]
    assert len(noisy) == 1 and server.uri in noisy[0] and "hecvl tracking sync" in noisy[0], proc.stderr
    assert took < 60, took

    (journal,) = spool(project)
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    ops = [r["op"] for r in records]
    assert ops == ["start", "params", "metrics", "artifact", "artifact", "end"]
    start = records[0]
    assert start["run_name"] == "pair" and start["experiment"] == EXPERIMENT and start["uri"] == server.uri
    assert start["tags"]["stage"] == "pair" and start["tags"]["hecvl.spool_id"] == journal.stem
    assert records[-1]["status"] == "FINISHED"
    metrics = {k: (v, step) for k, v, _ts, step in records[2]["metrics"]}
    assert metrics["pairs_clip"] == (4.0, 0)
    assert all(r["copied"] for r in records[3:5])  # small artifacts copied: a rerun may replace them
    saved = project.parent / "saved-spool"
    shutil.copytree(journal.parent, saved)

    server.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    assert main(["tracking", "sync"]) == 0  # in the project folder, as a user would
    assert "sent 1 spooled run(s)" in capsys.readouterr().out
    assert spool(project) == [] and not (journal.parent / journal.stem).exists()
    (run,) = server.runs("pair")
    assert run.info.status == "FINISHED" and run.data.tags["hecvl.spool_id"] == journal.stem
    assert run.data.tags["stage"] == "pair" and run.data.params["pairing.clip.frames"] == "4"
    assert run.data.metrics["pairs_clip"] == 4.0
    client = mlflow.MlflowClient(server.uri)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"stats.json", "stats.png"}

    # the same spool replayed (a sync cut short, then run again): no second run, no repeated metric
    shutil.rmtree(journal.parent)
    shutil.copytree(saved, journal.parent)
    assert main(["tracking", "sync", "--project", str(project)]) == 0
    (again,) = server.runs("pair")
    assert again.info.run_id == run.info.run_id
    assert len(client.get_metric_history(run.info.run_id, "pairs_clip")) == 1
    capsys.readouterr()
    assert main(["tracking", "sync"]) == 0 and "nothing to send" in capsys.readouterr().out


KILLED_JOB = """
import sys, time
from hecvl import tracking
from hecvl.cli import main
with tracking.mlflow_run("hecvl-synthetic", "pretrain/killed/seed0", tags={"stage": "pretrain"}) as run:
    run.log_metrics({"loss": 1.5}, step=1)
    print(run.run_id, flush=True)
    time.sleep(300)
"""


def test_a_killed_jobs_run_is_ended_killed_by_sync_and_a_live_one_is_left_alone(
    clean_env: Path, server: Server
) -> None:
    project = clean_env
    server.start()
    job = subprocess.Popen([sys.executable, "-c", KILLED_JOB], cwd=project, stdout=subprocess.PIPE, text=True,
                           env={**env(project), "MLFLOW_TRACKING_URI": server.uri})
    try:
        run_id = job.stdout.readline().strip()
        assert run_id, "the job did not open its run"
        client = mlflow.MlflowClient(server.uri)
        live = tracking.sync(project)  # the job holds its journal's lock: still running, untouched
        assert (live.open, live.sent) == (1, 0)
        assert client.get_run(run_id).info.status == "RUNNING"
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait(timeout=30)
    report = tracking.sync(project)
    assert (report.sent, report.killed, report.open) == (1, 1, 0)
    got = client.get_run(run_id)
    assert got.info.status == "KILLED" and got.data.metrics["loss"] == 1.5
    assert spool(project) == []


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """An address that accepts connections and never answers (a hung server, a black-holed route)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_an_unreachable_server_at_invocation_start_is_one_line_and_the_study_spools(
    clean_env: Path, server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    project = clean_env
    with silent_server() as uri:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        t0 = time.monotonic()
        parent = tracking.begin_invocation(EXPERIMENT, "snakemake faults")
        took = time.monotonic() - t0
        err = capsys.readouterr().err.strip().splitlines()
        assert took < 10 and parent is None, took
        assert len(err) == 1 and uri in err[0], err
        assert "HECVL_TRACKING=off" in err[0] and "hecvl tracking sync" in err[0] and "goes on" in err[0]
        # the jobs spool at once, without waiting on the server, under the invocation's spooled parent
        t0 = time.monotonic()
        with tracking.mlflow_run(EXPERIMENT, "evaluate/faults", tags={"stage": "evaluate"},
                                 params={"eval": {"k": 1}}) as job:
            job.log_metrics({"accuracy": 50.0})
        assert job.run_id is None and time.monotonic() - t0 < 5
        tracking.end_invocation("FINISHED")
        err = capsys.readouterr().err
        assert "2 run(s) wait in" in err and "WARNING" not in err
    server.start()
    report = tracking.sync(project, server.uri)  # the server moved: send to its new address
    assert (report.sent, report.open, report.failed) == (2, 0, [])
    (parent_run,) = server.runs("snakemake faults")
    (child,) = server.runs("evaluate/faults")
    assert parent_run.info.status == "FINISHED" and child.info.status == "FINISHED"
    assert child.data.tags["mlflow.parentRunId"] == parent_run.info.run_id
    assert child.data.params["eval.k"] == "1" and child.data.metrics["accuracy"] == 50.0

    # HECVL_TRACKING=off: the way on without any tracking, nothing printed, nothing spooled
    monkeypatch.setenv("HECVL_TRACKING", "off")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    assert tracking.begin_invocation(EXPERIMENT) is None
    assert capsys.readouterr().err == "" and spool(project) == []
