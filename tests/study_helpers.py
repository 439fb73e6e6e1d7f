"""The smoke-preset study every end-to-end test reads: made once per session (conftest's `study`).

A temporary git + DVC project with the study's workflow and the smoke preset; its whole DAG runs once,
its data is pinned under the tag `smoke-v1`. The workflow tests (test_workflow.py) and the browser tests
(test_browser.py) both read it, so a full `pytest` runs the study a single time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROJECT_FILES = [
    "Snakefile",
    "workflow",
    "params.yaml",
    "dvc.yaml",
    "profiles",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
]


def env(project: Path) -> dict[str, str]:
    """A clean environment for a project's commands: its own tracking store, no inherited HECVL_ settings."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HECVL_"))}
    # the venv is NOT on PATH: `.venv/bin/snakemake` must find the `hecvl` beside it by itself
    path = [p for p in out.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != BIN.resolve()]
    out.update(
        PATH=os.pathsep.join(path),
        MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlflow.db'}",
        MLFLOW_DISABLE_TELEMETRY="true",
        HF_HUB_OFFLINE="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.org",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.org",
    )
    return out


def run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a command in a project; on failure the error carries its output and every job log."""
    proc = subprocess.run(cmd, cwd=cwd, env=env(cwd), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((cwd / "logs").rglob("*.log")))
        raise AssertionError(
            f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}\n{logs}"
        )
    return proc


def snakemake(cwd: Path, *targets: str, dry: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "snakemake"), *targets, "--cores", "2"]
    return run([*cmd, *(["-n", "--quiet", "rules"] if dry else [])], cwd)


def copy_project(project: Path) -> Path:
    """The study's workflow files (PROJECT_FILES) copied into a new folder `project`."""
    project.mkdir()
    for name in PROJECT_FILES:
        src, dst = ROOT / name, project / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    return project


def planned_jobs(dry_run_stdout: str) -> dict[str, int]:
    """Rule -> job count from the "Job stats" table of `snakemake -n`."""
    jobs = {}
    for line in dry_run_stdout.split("Job stats:", 1)[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def smoke_project(base: Path) -> Path:
    """A git project of the workflow with the smoke preset, not yet run: `base/project`."""
    project = copy_project(base / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["preset"] == "default"
    text = (project / "params.yaml").read_text().replace("preset: default ", "preset: smoke   ", 1)
    (project / "params.yaml").write_text(text)
    run(["git", "init", "-q", "-b", "main"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "smoke study"], project)
    return project


def make_study(base: Path) -> Path:
    """A git + DVC project with the smoke preset, its whole study run once, data pinned under a tag."""
    project = smoke_project(base)
    snakemake(project)
    # Pin the data: record the data stages' outputs in dvc.lock, push them to the default local remote.
    run([str(BIN / "dvc"), "commit", "-f", "-q"], project)
    run([str(BIN / "dvc"), "push", "-q"], project)
    run(["git", "add", "dvc.lock"], project)
    run(["git", "commit", "-qm", "pin data"], project)
    run(["git", "tag", "smoke-v1"], project)
    return project


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(project: Path) -> Iterator[str]:
    """A real `mlflow server` on loopback over the project's tracking store; yields its base address."""
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{project / 'mlflow.db'}", "--workers", "1"],
        cwd=project,
        env=env(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None:
                    raise AssertionError(f"mlflow server exited with {server.returncode}") from None
                time.sleep(0.5)
        else:
            raise AssertionError("mlflow server did not start within 60 s")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def mlflow_api(base: str, path: str, body: dict | None = None) -> dict:
    """One call of the server's REST API (GET without a body, POST with one)."""
    url = f"{base}/api/2.0/mlflow/{path}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())
