"""The tracking spool: what a job could not send to MLflow, kept on disk until `hecvl tracking sync`.

Every open run has a journal, `<project>/.hecvl/tracking-spool/<spool id>.jsonl` (layout.TRACKING_SPOOL),
locked (flock) by the process that owns the run for as long as the run is open. The journal starts with
the run's creation (experiment, name, parent, tags, start time) and, once it exists on the store, its id;
whatever the store then fails to take (params, metrics with their steps and timestamps, tags, artifacts:
small ones copied beside the journal, large ones by path) is appended, and so is the run's end. A run
that ended with everything sent deletes its journal.

Sync replays each journal no live process holds, then deletes it. The run is found by its tag
`hecvl.spool_id` (or its recorded id), never created twice; params and tags are set to the same values,
metrics carry their original timestamps, which the store keeps once (replaying twice changes nothing).
A journal without an end whose lock is free belongs to a job that was killed: its run is ended KILLED,
at the time the journal was last written. Where the file system has no locks, the recorded host and pid
decide (a journal from another host waits for its end record).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hecvl import layout

SPOOL_TAG = "hecvl.spool_id"
SMALL_ARTIFACT = 16 << 20  # bytes: artifacts up to this are copied into the spool, larger ones kept by path
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_WAIT = "wait"  # a journal whose parent is still being written: replayed by a later sync


def spool_dir(root: Path) -> Path:
    return root / layout.TRACKING_SPOOL


def new_spool_id(run_name: str) -> str:
    """`<UTC time>-<run name>-<random>`: sorts by start (a parent before its children), readable in `ls`."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:-3]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", run_name).strip("_")[:60] or "run"
    return f"{stamp}-{slug}-{uuid.uuid4().hex[:8]}"


def now_ms() -> int:
    return int(time.time() * 1000)


def _lock(fd: int) -> bool | None:
    """Take the journal's lock without waiting: True taken, False held by a live process, None no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in _NO_LOCKS:
            return None
        raise
    return True


class Journal:
    """One run's append-only journal, locked while its run is open. Never raises: a spool that cannot
    be written costs the run its tracking, never the job (`error` says why)."""

    def __init__(self, folder: Path, spool_id: str, start: Mapping[str, Any]) -> None:
        self.path = folder / f"{spool_id}.jsonl"
        self.spooled = False
        self.error: str | None = None
        self._mutex = threading.Lock()
        self._copies = 0
        self._fd: int | None = None
        try:  # written and locked under a temporary name, so a sync never sees it unlocked or empty
            folder.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            self._fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            _lock(self._fd)
            self._write(start)
            os.replace(tmp, self.path)
        except OSError as exc:
            self._fail(exc)

    def append(self, record: Mapping[str, Any], spooled: bool = True) -> None:
        with self._mutex:
            self.spooled |= spooled
            if self._fd is not None:
                try:
                    self._write(record)
                except OSError as exc:
                    self._fail(exc)

    def keep_artifact(self, path: Path, artifact_path: str | None) -> dict[str, Any]:
        """The record of an artifact: a small one copied beside the journal (the job may replace it),
        a large one by its absolute path."""
        record: dict[str, Any] = {"op": "artifact", "artifact_path": artifact_path,
                                  "path": str(path.resolve())}
        files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
        if sum(f.stat().st_size for f in files) <= SMALL_ARTIFACT:
            with self._mutex:
                self._copies += 1
                rel = Path(self.path.stem) / str(self._copies) / path.name
            try:
                dest = self.path.parent / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if path.is_dir() else shutil.copy2)(path, dest)
                record["path"], record["copied"] = str(rel), True
            except OSError:
                pass  # kept by path: sync reads the job's own output
        return record

    def close(self, keep: bool) -> None:
        """Release the journal: kept for sync when anything was spooled, else deleted with its copies."""
        if not keep:
            with contextlib.suppress(OSError):
                self.path.unlink()
            shutil.rmtree(self.path.parent / self.path.stem, ignore_errors=True)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _write(self, record: Mapping[str, Any]) -> None:
        assert self._fd is not None
        os.write(self._fd, (json.dumps(record, default=str) + "\n").encode())

    def _fail(self, exc: OSError) -> None:
        self.error = f"cannot write the tracking spool {self.path}: {exc.strerror or exc}"
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None


# --- sync ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class SyncReport:
    """What one sync did: journals sent, runs ended KILLED, journals left for later and why."""

    folder: Path
    sent: int = 0
    killed: int = 0
    open: int = 0
    failed: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)

    def line(self) -> str | None:
        """One line for the user, None when there was nothing to do."""
        if not (self.sent or self.open or self.failed or self.skipped):
            return None
        parts = [f"sent {self.sent} spooled run(s) from {self.folder}"]
        if self.killed:
            parts.append(f"{self.killed} of them left RUNNING by a killed job, now KILLED")
        if self.open:
            parts.append(f"{self.open} still open (their jobs are running)")
        if self.skipped:
            parts.append(f"{len(self.skipped)} record(s) refused by the store ({self.skipped[0]})")
        if self.failed:
            parts.append(f"{len(self.failed)} not sent ({self.failed[0]})")
        return "; ".join(parts)


def journals(folder: Path) -> list[Path]:
    """The spool's journals, oldest first (spool ids start with their UTC start time)."""
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def read_journal(path: Path) -> list[dict[str, Any]]:
    """A journal's records; a line cut short by a killed writer ends it."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


@contextlib.contextmanager
def claimed(path: Path) -> Iterator[list[dict[str, Any]] | None]:
    """A journal's records, locked for this sync; None while the process that owns its run is alive."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        locked = _lock(fd)
        records = read_journal(path) if locked is not False else []
        if locked is None and records and _owner_alive(records):
            records = []
        yield records or None
    finally:
        os.close(fd)


def _owner_alive(records: list[dict[str, Any]]) -> bool:
    """Without file locks: a run is open while its process lives (same host) or until its end record."""
    if any(r.get("op") == "end" for r in records):
        return False
    start = records[0]
    if start.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(start.get("pid", 0)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
    shutil.rmtree(path.parent / path.stem, ignore_errors=True)


def replay(client: Any, path: Path, records: list[dict[str, Any]], experiment_id: Any,
           skipped: list[str]) -> str:
    """Send one journal's run to the store: "sent", "killed" (ended KILLED) or "wait" (parent not yet sent).

    `experiment_id(name)` gives the study's experiment on that store; records the store refuses (a 4xx:
    a param whose value changed, an artifact gone) are listed in `skipped` and passed over.
    """
    start = records[0]
    run_id = _existing_run(client, start, records, experiment_id)
    if run_id is None:
        parent = _parent_run(client, start, path.parent, experiment_id)
        if parent == _WAIT:
            return _WAIT
        tags = dict(start.get("tags") or {})
        tags[SPOOL_TAG] = start["spool_id"]
        if parent:
            tags["mlflow.parentRunId"] = parent
        run_id = client.create_run(experiment_id(start["experiment"]), start_time=start.get("start_time"),
                                   tags=tags, run_name=start.get("run_name")).info.run_id
    end = None
    for record in records[1:]:
        if record.get("op") == "end":
            end = record
        else:
            _apply(client, run_id, record, path, skipped)
    if end is not None:
        client.set_terminated(run_id, end.get("status", "FINISHED"), end_time=end.get("end_time"))
        return "sent"
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, "KILLED", end_time=int(path.stat().st_mtime * 1000))
        return "killed"
    return "sent"


def _existing_run(client: Any, start: Mapping[str, Any], records: list[dict[str, Any]],
                  experiment_id: Any) -> str | None:
    from mlflow.exceptions import MlflowException

    created = next((r["run_id"] for r in records if r.get("op") == "created"), None)
    if created:
        try:
            return client.get_run(created).info.run_id
        except MlflowException as exc:
            if exc.get_http_status_code() != 404:
                raise
    return find_run(client, experiment_id(start["experiment"]), start["spool_id"])


def find_run(client: Any, exp_id: str, spool_id: str) -> str | None:
    """The run created from a journal (its tag `hecvl.spool_id`), None if there is none yet."""
    runs = client.search_runs([exp_id], filter_string=f"tags.`{SPOOL_TAG}` = '{spool_id}'", max_results=1)
    return runs[0].info.run_id if runs else None


def _parent_run(client: Any, start: Mapping[str, Any], folder: Path, experiment_id: Any) -> str | None:
    """The parent's run id: recorded, else found by its spool id; _WAIT while its own journal is unsent."""
    if start.get("parent_run_id"):
        return start["parent_run_id"]
    spool_id = start.get("parent_spool_id")
    if not spool_id:
        return None
    found = find_run(client, experiment_id(start["experiment"]), spool_id)
    if found is None and (folder / f"{spool_id}.jsonl").exists():
        return _WAIT
    return found


def _apply(client: Any, run_id: str, record: Mapping[str, Any], path: Path, skipped: list[str]) -> None:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException

    op = record.get("op")
    try:
        if op == "params":
            items = list(record["params"].items())
            for i in range(0, len(items), 100):  # MLflow's per-request limit
                client.log_batch(run_id, params=[Param(k, v) for k, v in items[i : i + 100]])
        elif op == "metrics":
            rows = record["metrics"]
            for i in range(0, len(rows), 1000):
                client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in rows[i : i + 1000]])
        elif op == "tags":
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in record["tags"].items()])
        elif op == "artifact":
            _send_artifact(client, run_id, record, path, skipped)
    except MlflowException as exc:
        if not 400 <= exc.get_http_status_code() < 500:
            raise
        skipped.append(f"{path.name}: {op}: {str(exc).splitlines()[0][:200]}")


def _send_artifact(client: Any, run_id: str, record: Mapping[str, Any], path: Path,
                   skipped: list[str]) -> None:
    source = Path(record["path"])
    if record.get("copied"):
        source = path.parent / source
    if source.is_dir():
        client.log_artifacts(run_id, str(source), artifact_path=record.get("artifact_path"))
    elif source.is_file():
        client.log_artifact(run_id, str(source), artifact_path=record.get("artifact_path"))
    else:
        skipped.append(f"{path.name}: artifact {source} is gone")
