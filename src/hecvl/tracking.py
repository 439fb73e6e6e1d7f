"""MLflow tracking: one experiment per study, a parent run per Snakemake invocation, a child run per job.

Stages call `mlflow_run(...)` once; where the run lands is decided by the environment, so the same
command logs to the local SQLite database, to a lab's tracking server, or under a parent run:
- `MLFLOW_TRACKING_URI` overrides the default `sqlite:///<project>/mlflow.db`;
- `HECVL_PARENT_RUN_ID` makes the run a child of that run (set by the Snakefile for every job;
  `HECVL_PARENT_SPOOL_ID` names the parent in the spool, which a parent not yet on the store has only);
- `HECVL_RUN_PREFIX` prefixes the run's name (the narration-noise sweep: `noise/rel0.25/...`, so its
  runs never share a name with the study's);
- `HECVL_TRACKING=off` disables tracking (e.g. a quick local try); `HECVL_TRACKING=spool` only writes the
  spool (a node that cannot reach the server), which `hecvl tracking sync` sends.

Tracking is best-effort once results exist: a store that fails (after a short HTTP retry budget, so a
dead server costs seconds) costs the process one warning line, never a job's outputs; what it would have
sent is spooled on disk (hecvl.tracking_spool) and sent by `hecvl tracking sync`, which every Snakemake
invocation runs at its start and end. Per-step training metrics go through a background thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hecvl import tracking_spool as spool

log = logging.getLogger(__name__)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# A short HTTP retry budget (MLflow's defaults: 7 retries with backoff 2, 120 s timeouts, minutes on a
# dead server): a refused connection fails in about 3 s, a hung server in under a minute, and the rest
# of the process spools. Set by the user, these are kept; exported, jobs inherit them.
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
for _name, _value in HTTP_RETRY_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
PROBE_TIMEOUT_S = 5.0  # an invocation's first look at a tracking server
_MAX_PARAM_LEN = 6000
PARENT_ENV = "HECVL_PARENT_RUN_ID"
PREFIX_ENV = "HECVL_RUN_PREFIX"
PARENT_SPOOL_ENV = "HECVL_PARENT_SPOOL_ID"
MODE_ENV = "HECVL_TRACKING"
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


def mode() -> str:
    """`HECVL_TRACKING`: "on" (the default), "off" (no tracking) or "spool" (journals only, sent later)."""
    value = os.environ.get(MODE_ENV, "on").lower()
    if value in {"off", "0", "false", "no"}:
        return "off"
    return "spool" if value == "spool" else "on"


def enabled() -> bool:
    return mode() != "off"


def spool_dir(root: Path | None = None) -> Path:
    """Where runs keep their journals: `<project>/.hecvl/tracking-spool`."""
    return spool.spool_dir(root or project_root())


def init_tracking(experiment: str, uri: str | None = None) -> str:
    """Create the tracking store's schema and the study's experiment; returns the experiment id.

    Run once before parallel jobs start: concurrent first-time schema creation of a SQLite store crashes.
    """
    import mlflow

    if uri is None:
        uri = tracking_uri()
        mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
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


def unreachable(uri: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why a tracking server does not answer (None if it does, or the store is no server).

    Its `/health` within `timeout` seconds; any HTTP answer, or a TLS handshake MLflow's own settings may
    accept, counts as there.
    """
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as exc:
        if "SSL" in type(exc.reason).__name__:
            return None
        return short_error(exc.reason if isinstance(exc.reason, BaseException) else exc)
    except OSError as exc:
        return short_error(exc)


def short_error(exc: BaseException) -> str:
    """An MLflow or network failure in a few words ("Connection refused", "timed out")."""
    text = str(exc)
    if match := re.search(r"\[Errno -?\d+\] ([^'\"()]+)", text):
        return match.group(1).strip().rstrip(".")
    if "timed out" in text.lower() or isinstance(exc, TimeoutError):
        return "timed out"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:200]


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


# --- a store that fails: one warning per process, the rest spooled --------------------------------

_DOWN: dict[str, str] = {}  # tracking URI -> why it failed, in this process


class _MlflowRetryNoise(logging.Filter):
    """Drops urllib3's per-retry warnings for MLflow requests and the system-metrics monitor's give-up
    warnings: a failing store is reported once, by this module."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name.startswith("urllib3"):
            return not ("Retrying" in message and "/mlflow" in message)
        return record.levelno < logging.WARNING or not message.startswith("Failed to")


for _logger in ("urllib3.connectionpool", "mlflow.system_metrics.system_metrics_monitor"):
    logging.getLogger(_logger).addFilter(_MlflowRetryNoise())


def _went_down(uri: str, what: str, exc: BaseException, folder: Path) -> None:
    if uri in _DOWN:
        return
    _DOWN[uri] = short_error(exc)
    log.warning("MLflow tracking at %s failed (%s: %s); the job goes on, its outputs are kept and its "
                "tracking is spooled to %s (`hecvl tracking sync` sends it)", uri, what, _DOWN[uri], folder)


class Run:
    """One run's logging calls. Each is sent to the store while it answers; once a call fails (or with
    `HECVL_TRACKING=spool`) it and every later one go to the run's journal instead, for `hecvl tracking
    sync`. A disabled run (`Run(None)`) takes every call and does nothing."""

    def __init__(self, run_id: str | None, uri: str | None = None, journal: spool.Journal | None = None,
                 spool_id: str | None = None) -> None:
        self.run_id = run_id
        self.uri = uri
        self.journal = journal
        self.spool_id = spool_id
        self.spooling = journal is None
        self._client: Any = None
        self._sender: _Sender | None = None
        self._monitor: Any = None

    @property
    def active(self) -> bool:
        """Whether this run records anything (tracking on, or spooling)."""
        return self.journal is not None

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = list(params.items())
        for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            batch = [Param(k, v) for k, v in items[i : i + 100]]
            if not self._sent("log params", lambda b=batch: self._log_batch(params=b)):
                self._spool({"op": "params", "params": dict(items[i:])})
                return

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Send now (spooled if the store fails); see `queue_metrics` for the training loop."""
        if self.active:
            self._send_metrics(_rows(metrics, step))

    def queue_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Hand metrics to a background sender, timestamped now: the caller never waits on the store."""
        if not self.active:
            return
        if self._sender is None:
            self._sender = _Sender(self._send_metrics)
        self._sender.put(_rows(metrics, step))

    def flush(self) -> None:
        """Wait until queued metrics are sent (or spooled)."""
        if self._sender is not None:
            self._sender.flush()

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        p = Path(path)
        if not self.active or not (p.is_dir() or p.is_file()):
            return
        if not self._sent("log artifacts", lambda: self._send_artifact(p, artifact_path)) and self.journal:
            self._spool(self.journal.keep_artifact(p, artifact_path))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        clean = {k: str(v) for k, v in tags.items()}
        batch = [RunTag(k, v) for k, v in clean.items()]
        if self.active and not self._sent("set tags", lambda: self._log_batch(tags=batch)):
            self._spool({"op": "tags", "tags": clean})

    def close(self, status: str) -> None:
        """End the run (FINISHED, FAILED, KILLED); its journal is kept only if anything was spooled."""
        if self.journal is None:
            return
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        self._stop_monitor()
        end = spool.now_ms()
        if not self._sent("end the run", lambda: self._terminate(status, end)):
            self._spool({"op": "end", "status": status, "end_time": end})
        self.journal.close(keep=self.journal.spooled)
        if self.journal.error and self.journal.spooled:
            log.warning("%s; what this run could not send is lost", self.journal.error)
        _OPEN.pop(self.run_id or "", None)

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    def _log_batch(self, **batch: Any) -> None:
        self.client.log_batch(self.run_id, **batch)

    def _send_artifact(self, path: Path, artifact_path: str | None) -> None:
        send = self.client.log_artifacts if path.is_dir() else self.client.log_artifact
        send(self.run_id, str(path), artifact_path)

    def _terminate(self, status: str, end_time: int) -> None:
        self.client.set_terminated(self.run_id, status, end_time=end_time)

    def _send_metrics(self, rows: list[list[Any]]) -> None:
        from mlflow.entities import Metric

        for i in range(0, len(rows), 1000):  # MLflow's per-request limit
            batch = [Metric(*r) for r in rows[i : i + 1000]]
            if not self._sent("log metrics", lambda b=batch: self._log_batch(metrics=b)):
                self._spool({"op": "metrics", "metrics": rows[i:]})
                return

    def _sent(self, what: str, call: Callable[[], Any]) -> bool:
        """Make one store call unless the run spools; a failure switches the run to spooling."""
        if self.spooling:
            return False
        try:
            call()
        except Exception as exc:  # any failure of the store: best-effort from here on
            self.spooling = True
            _went_down(self.uri or "", what, exc, self.journal.path.parent if self.journal else Path())
            return False
        return True

    def _spool(self, record: Mapping[str, Any]) -> None:
        if self.journal is not None:
            self.journal.append(record)

    def _start_monitor(self) -> None:
        """MLflow's CPU/memory/GPU sampler on this run (not spooled: a store that fails ends it)."""
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self._monitor = SystemMetricsMonitor(self.run_id, tracking_uri=self.uri)
            self._monitor.start()
        except Exception as exc:  # psutil missing, ...: the run goes on without
            log.debug("no system metrics: %s", exc)
            self._monitor = None

    def _stop_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        if self.spooling:  # what it still holds would go to the store that failed
            with contextlib.suppress(AttributeError):
                monitor.mlflow_logger.data = []
        with contextlib.suppress(Exception):
            monitor.finish()


def _rows(metrics: Mapping[str, float], step: int | None) -> list[list[Any]]:
    """Metrics as `[key, value, timestamp ms, step]` rows (None values dropped), as the journal keeps them."""
    now = spool.now_ms()
    return [[k, float(v), now, step or 0] for k, v in metrics.items() if v is not None]


class _Sender:
    """Sends a run's queued metrics from a thread, in batches (at most every `period` s or `every` rows):
    a slow or dead store never holds up a training step."""

    _STOP = object()

    def __init__(self, send: Callable[[list[list[Any]]], None], every: int = 1000,
                 period: float = 10.0) -> None:
        self._send, self._every, self._period = send, every, period
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="hecvl-tracking", daemon=True)
        self._thread.start()

    def put(self, rows: list[list[Any]]) -> None:
        self._queue.put(rows)

    def flush(self) -> None:
        if self._thread.is_alive():
            done = threading.Event()
            self._queue.put(done)
            done.wait()

    def close(self) -> None:
        self._queue.put(self._STOP)
        self._thread.join()

    def _work(self) -> None:
        pending: list[list[Any]] = []
        last = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self._period)
            except queue.Empty:
                item = None
            if isinstance(item, list):
                pending += item
            due = not isinstance(item, list) or len(pending) >= self._every
            if pending and (due or time.monotonic() - last >= self._period):
                try:
                    self._send(pending)
                except Exception:  # never lose the thread: the next batch may go through
                    log.exception("tracking: sending metrics failed")
                pending, last = [], time.monotonic()
            if isinstance(item, threading.Event):
                item.set()
            if item is self._STOP:
                return


# --- runs ------------------------------------------------------------------------------------------

_OPEN: dict[str, Run] = {}  # runs opened by start_parent_run, by run id, for end_parent_run
_INVOCATION: Run | None = None  # the parent run begin_invocation opened in this process


def open_run(experiment: str, run_name: str, tags: Mapping[str, Any], parent_run_id: str | None = None,
             parent_spool_id: str | None = None, system_metrics: bool = False) -> Run:
    """Open a run: its journal first (locked while it is open), then the run on the store if it answers."""
    from mlflow.tracking.context import registry

    uri = tracking_uri()
    spool_id = spool.new_spool_id(run_name)
    all_tags = {str(k): str(v) for k, v in tags.items()}
    all_tags[spool.SPOOL_TAG] = spool_id
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    all_tags = registry.resolve_tags(all_tags)  # source, user, git: what mlflow.start_run adds
    start = {"op": "start", "spool_id": spool_id, "experiment": experiment, "run_name": run_name,
             "tags": all_tags, "parent_run_id": parent_run_id, "parent_spool_id": parent_spool_id,
             "start_time": spool.now_ms(), "uri": uri, "host": socket.gethostname(), "pid": os.getpid()}
    journal = spool.Journal(spool_dir(), spool_id, start)
    if journal.error:
        log.warning("%s; tracking goes on without it", journal.error)
    run = Run(None, uri, journal, spool_id)
    run.spooling = mode() == "spool" or uri in _DOWN
    if not run.spooling:
        created: list[Any] = []

        def create() -> None:
            exp_id = init_tracking(experiment, uri)
            created.append(run.client.create_run(exp_id, start["start_time"], all_tags, run_name))

        run._sent("open the run", create)
        run.run_id = created[0].info.run_id if created else None
        if run.run_id:
            journal.append({"op": "created", "run_id": run.run_id}, spooled=False)
            if system_metrics:
                run._start_monitor()
    return run


@contextlib.contextmanager
def mlflow_run(
    experiment: str,
    run_name: str,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    system_metrics: bool = False,
) -> Iterator[Run]:
    """Open a run for one job; it ends FAILED if the block raises (KILLED if interrupted), FINISHED
    otherwise. Tracking never fails the block: a store that fails is one warning, the rest spooled."""
    if not enabled():
        yield Run(None)
        return
    from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING

    all_tags = {**git_tags(), "data_version": data_version(), **{k: str(v) for k, v in (tags or {}).items()}}
    if prefix := os.environ.get(PREFIX_ENV, "").strip("/"):
        run_name = f"{prefix}/{run_name}"
    run = open_run(experiment, run_name, all_tags, os.environ.get(PARENT_ENV) or None,
                   os.environ.get(PARENT_SPOOL_ENV) or None,
                   system_metrics=system_metrics or MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.get())
    status = "FAILED"
    try:
        if params:
            run.log_params(flatten(params))
        yield run
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        run.close(status)


def start_parent_run(experiment: str, run_name: str = "snakemake") -> str | None:
    """Open the parent run of one Snakemake invocation; jobs join it through HECVL_PARENT_RUN_ID.

    Returns its id on the store (None if it is only spooled); `end_parent_run` closes it.
    """
    run = _open_parent(experiment, run_name)
    return run.run_id


def _open_parent(experiment: str, run_name: str) -> Run:
    tags = {**git_tags(), "data_version": data_version(), "rule": "snakemake"}
    run = open_run(experiment, run_name, tags)
    if run.run_id:
        _OPEN[run.run_id] = run
    return run


def end_parent_run(run_id: str | None, status: str = "FINISHED") -> None:
    """Close the parent run (FINISHED or FAILED); a no-op when tracking is off or no run was opened."""
    if not run_id or not enabled():
        return
    if run_id in _OPEN:
        _OPEN[run_id].close(status)
        return
    import mlflow  # a parent opened by another process (an outer invocation)

    try:
        mlflow.MlflowClient(tracking_uri()).set_terminated(run_id, status=status)
    except Exception as exc:
        _went_down(tracking_uri(), "end the parent run", exc, spool_dir())


# --- invocations -----------------------------------------------------------------------------------


def begin_invocation(experiment: str, run_name: str = "snakemake") -> str | None:
    """Check the store, send what earlier jobs spooled, open the invocation's parent run, exported to its
    jobs' environment. An already exported parent (an outer invocation, a cluster job) is kept.

    A store that does not answer is one line (within PROBE_TIMEOUT_S) and the study goes on with
    HECVL_TRACKING=spool: jobs write journals without waiting on the store, sent by a later sync.
    Returns the parent run id (None when tracking is off or the parent is only spooled).
    """
    global _INVOCATION
    if not enabled():
        return None
    if mode() == "on":
        _check_store(experiment)
    if not (os.environ.get(PARENT_ENV) or os.environ.get(PARENT_SPOOL_ENV)):
        _INVOCATION = _open_parent(experiment, run_name)
        os.environ[PARENT_SPOOL_ENV] = _INVOCATION.spool_id or ""
        if _INVOCATION.run_id:
            os.environ[PARENT_ENV] = _INVOCATION.run_id
        else:  # a parent only in the spool: its jobs spool too, so sync links them to it
            os.environ[MODE_ENV] = "spool"
    return os.environ.get(PARENT_ENV)


def _check_store(experiment: str) -> None:
    uri = tracking_uri()
    problem = unreachable(uri)
    if problem is None:
        try:
            _say(sync().line())
            init_tracking(experiment)  # schema created once, before jobs run in parallel
        except Exception as exc:
            problem = short_error(exc)
    if problem is not None:
        _DOWN[uri] = problem
        os.environ[MODE_ENV] = "spool"
        _say(f"MLflow tracking store {uri} is unreachable ({problem}); the study goes on and its jobs spool "
             f"their tracking to {spool_dir()} (sent by `hecvl tracking sync` or the next invocation); "
             f"set HECVL_TRACKING=off to run without tracking")


def end_invocation(status: str) -> None:
    """Close the invocation's parent run (FINISHED or FAILED), send what its jobs spooled if the store
    answers, and say where to see the runs (or what is left to send)."""
    global _INVOCATION
    run_id = os.environ.get(PARENT_ENV)
    if _INVOCATION is not None:
        _INVOCATION.close(status)
        _INVOCATION = None
    else:
        end_parent_run(run_id, status)
    if not enabled():
        return
    uri, folder = tracking_uri(), spool_dir()
    problem = unreachable(uri)
    if problem is None and spool.journals(folder):
        _say(sync().line())
    if problem and spool.journals(folder):
        _say(f"{len(spool.journals(folder))} run(s) wait in {folder} for `hecvl tracking sync` "
             f"({uri} is unreachable: {problem})")
    elif run_id and problem is None:
        with contextlib.suppress(Exception):
            import mlflow

            exp_id = mlflow.MlflowClient(uri).get_run(run_id).info.experiment_id
            print(f"MLflow, the study's runs: {ui_hint(exp_id)}", file=sys.stderr)


def _say(line: str | None) -> None:
    if line:
        print(f"hecvl: {line}", file=sys.stderr)


def sync(root: Path | None = None, uri: str | None = None) -> spool.SyncReport:
    """Send every journal of the project's spool no live process holds, each to the store it was meant
    for (or `uri`), then delete it; a run a killed job left RUNNING is ended KILLED. Idempotent."""
    folder = spool_dir(root)
    report = spool.SyncReport(folder)
    stores: dict[str, _Store] = {}
    with _quiet_links():
        for path in spool.journals(folder):
            with spool.claimed(path) as records:
                if records is None:
                    report.open += path.exists()
                elif records[0].get("op") != "start":
                    report.failed.append(f"{path.name}: not a tracking journal (no start record)")
                else:
                    target = uri or records[0].get("uri") or tracking_uri()
                    _send_journal(path, records, stores.setdefault(target, _Store(target)), report)
    return report


class _Store:
    """One tracking store a sync sends to: probed once, its experiments looked up once."""

    def __init__(self, uri: str) -> None:
        from mlflow import MlflowClient

        self.uri, self.problem = uri, unreachable(uri)
        self.client = MlflowClient(uri)
        self._experiments: dict[str, str] = {}

    def experiment_id(self, name: str) -> str:
        if name not in self._experiments:
            self._experiments[name] = init_tracking(name, self.uri)
        return self._experiments[name]


def _send_journal(path: Path, records: list[dict[str, Any]], store: _Store, report: spool.SyncReport) -> None:
    if store.problem:
        report.failed.append(f"{store.uri} is unreachable: {store.problem}")
        return
    try:
        outcome = spool.replay(store.client, path, records, store.experiment_id, report.skipped)
    except Exception as exc:  # the store failed again: the journal stays for the next sync
        report.failed.append(f"{path.name}: {short_error(exc)}")
        return
    if outcome == "wait":
        report.open += 1
        return
    spool.remove(path)
    report.sent += 1
    report.killed += outcome == "killed"


@contextlib.contextmanager
def _quiet_links() -> Iterator[None]:
    """No "View run ... at" line per run a sync ends (MLflow prints one for each run a server ends)."""
    name = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
    before = os.environ.get(name)
    os.environ[name] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


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
