"""MLflow tracking: one experiment per study, a parent run per Snakemake invocation, a child run per job.

Stages call `mlflow_run(...)` once; where the run lands is decided by the environment, so the same
command logs to the local SQLite database, to a lab's tracking server, or under a parent run:
- `MLFLOW_TRACKING_URI` overrides the default `sqlite:///<project>/mlflow.db`;
- `HECVL_PARENT_RUN_ID` makes the run a child of that run (set by the Snakefile for every job);
- `HECVL_RUN_PREFIX` prefixes the run's name (the narration-noise sweep: `noise/rel0.25/...`, so its
  runs never share a name with the study's);
- `HECVL_TRACKING=off` disables tracking (e.g. a quick local try).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
_MAX_PARAM_LEN = 6000
PARENT_ENV = "HECVL_PARENT_RUN_ID"
PREFIX_ENV = "HECVL_RUN_PREFIX"
# MLflow 3 sorts experiments into GenAI apps ("genai_development") and model training; this tag, what the
# UI's own experiment-kind selector writes, marks the study as the latter: a runs table, not traces.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# The UI (3.17) still opens any experiment on the GenAI overview unless its "Model training" switch is
# on (kept per browser) or the address asks for it, and its runs table shows no metric column and folds
# every job's run under its invocation's parent. So each study carries a shared view, the kind the UI's
# own "share" writes (an experiment tag read through the address's viewStateShareKey): every run flat,
# best accuracy first, accuracy and F1 as columns, names wide enough to read.
RUNS_VIEW_KEY = "study-runs"
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"
RUNS_VIEW = {
    "orderByKey": "metrics.`accuracy`",
    "orderByAsc": False,
    "selectedColumns": ["metrics.`accuracy`", "metrics.`f1`", "attributes.`Source`"],
    "columnOrder": ["attributes.`Run Name`", "runDateAndNestInfo", "duration", "metrics.`accuracy`",
                    "metrics.`f1`", "attributes.`Source`"],
    "columnWidths": {"attributes.`Run Name`": 440},
}
EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, RUNS_VIEW_TAG: json.dumps(RUNS_VIEW)}


def project_root(start: str | Path | None = None) -> Path:
    """The nearest folder at or above `start` holding params.yaml (else `start` itself)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file():
            return folder
    return here


def experiment_name(params: Any) -> str:
    """The study's MLflow experiment: `study.name` of the configuration (one experiment per study)."""
    return params.study.name


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI`, or the study's SQLite database at the project root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def enabled() -> bool:
    return os.environ.get("HECVL_TRACKING", "on").lower() not in {"off", "0", "false", "no"}


def init_tracking(experiment: str) -> str:
    """Create the tracking store's schema and the study's experiment; returns the experiment id.

    Run once before parallel jobs start: concurrent first-time schema creation of a SQLite store crashes.
    """
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        for key, value in EXPERIMENT_TAGS.items():  # a store from before them; a kind set by hand is kept
            if key not in exp.tags:
                client.set_experiment_tag(exp.experiment_id, key, value)
        return exp.experiment_id
    # A local store keeps artifacts beside its database, not in whatever folder a job ran from.
    location = None
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        location = ((db if db.is_absolute() else Path.cwd() / db).parent / "mlruns").as_uri()
    return client.create_experiment(experiment, artifact_location=location, tags=EXPERIMENT_TAGS)


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow params: `a.b.c -> value`, values as strings within MLflow's limit."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:_MAX_PARAM_LEN]
    return out


def git_tags(root: Path | None = None) -> dict[str, str]:
    """The code version a run used: commit and whether the work tree had uncommitted changes."""
    root = root or project_root()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


def data_version(root: Path | None = None) -> str:
    """A short hash of dvc.lock: the version of the data a run saw (`none` without DVC)."""
    lock = (root or project_root()) / "dvc.lock"
    if not lock.is_file():
        return "none"
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:12]


class Run:
    """The few logging calls stages need, bound to one MLflow run."""

    def __init__(self, run_id: str | None) -> None:
        self.run_id = run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.run_id is None:
            return
        import mlflow

        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.run_id is None:
            return
        import mlflow

        p = Path(path)
        if p.is_dir():
            mlflow.log_artifacts(str(p), artifact_path=artifact_path)
        elif p.is_file():
            mlflow.log_artifact(str(p), artifact_path=artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.run_id is None:
            return
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})


@contextlib.contextmanager
def mlflow_run(
    experiment: str,
    run_name: str,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    system_metrics: bool = False,
) -> Iterator[Run]:
    """Open a run for one job; it ends FAILED if the block raises, FINISHED otherwise."""
    if not enabled():
        yield Run(None)
        return
    import mlflow

    mlflow.set_experiment(experiment_id=init_tracking(experiment))
    all_tags = {**git_tags(), "data_version": data_version(), **{k: str(v) for k, v in (tags or {}).items()}}
    parent = os.environ.get(PARENT_ENV) or None
    if prefix := os.environ.get(PREFIX_ENV, "").strip("/"):
        run_name = f"{prefix}/{run_name}"
    with mlflow.start_run(
        run_name=run_name,
        parent_run_id=parent,
        tags=all_tags,
        log_system_metrics=system_metrics or None,
    ) as active:
        if params:
            flat = flatten(params)
            items = list(flat.items())
            for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
                mlflow.log_params(dict(items[i : i + 100]))
        yield Run(active.info.run_id)


def start_parent_run(experiment: str, run_name: str = "snakemake") -> str:
    """Open the parent run of one Snakemake invocation; jobs join it through HECVL_PARENT_RUN_ID."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient()
    exp_id = init_tracking(experiment)
    tags = {**git_tags(), "data_version": data_version(), "rule": "snakemake"}
    return client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id


def end_parent_run(run_id: str | None, status: str = "FINISHED") -> None:
    """Close the parent run (FINISHED or FAILED); a no-op when tracking is off or no run was opened."""
    if not run_id or not enabled():
        return
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.MlflowClient().set_terminated(run_id, status=status)



def begin_invocation(experiment: str, run_name: str = "snakemake") -> str | None:
    """Create the store and the parent run of a workflow invocation, exported to its jobs' environment.

    An already exported parent (an outer invocation, a cluster job) is kept. Returns the parent run id.
    """
    init_tracking(experiment)  # schema created once, before jobs run in parallel
    if not enabled():
        return None
    if not os.environ.get(PARENT_ENV):
        os.environ[PARENT_ENV] = start_parent_run(experiment, run_name)
    return os.environ[PARENT_ENV]


def end_invocation(status: str) -> None:
    """Close the parent run opened by `begin_invocation` (FINISHED or FAILED) and say where to see it."""
    run_id = os.environ.get(PARENT_ENV)
    end_parent_run(run_id, status)
    if run_id and enabled():
        import mlflow

        exp_id = mlflow.MlflowClient(tracking_uri()).get_run(run_id).info.experiment_id
        print(f"MLflow, the study's runs: {ui_hint(exp_id)}", file=sys.stderr)


def runs_url(experiment_id: str, server: str = "http://127.0.0.1:5000") -> str:
    """The address of an experiment's runs table in the MLflow UI served at `server`.

    Names the runs tab and the model-training view, so a browser on the UI's default GenAI view still
    opens the table, and the study's shared view of it (RUNS_VIEW).
    """
    query = f"viewStateShareKey={RUNS_VIEW_KEY}&workflowType=machine_learning"
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def ui_hint(experiment_id: str) -> str:
    """How to look at an experiment's runs: the tracking server's address, or the local UI to start."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        return runs_url(experiment_id, uri)
    return f"`mlflow ui --backend-store-uri {uri}`, then open {runs_url(experiment_id)}"
