"""Recovery after a kill: the same command, run again unchanged, completes.

A Snakemake killed with SIGKILL leaves its lock behind, and the next invocation refuses to start until
`--unlock`. That lock is stale exactly when no Snakemake process works in this folder any more, which the
process table tells: the DAG clears it then, and only then (a Snakemake of this folder that is alive keeps
its lock). Outputs a killed job left half-written are rerun by `rerun-incomplete` in `profiles/default`,
and the temporary folders of its interrupted atomic writes (with a library's own temp files inside) are
removed by `remove_debris`, under the same condition.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

# hecvl.io's atomic writes: a private folder `.NAME.XXXXXXXX.tmp` beside the target (mkdtemp's 8 characters)
_TEMP_FOLDER = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def _ancestors(pid: int) -> set[int]:
    """This process and its parents (a Snakemake that is us, or runs us, is not "another" one)."""
    out = {pid}
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        out.add(pid)
    return out


def _is_snakemake(cmdline: list[str]) -> bool:
    """`snakemake ...`, or `python .../snakemake ...` (how a venv's console script shows up)."""
    return any(Path(arg).name == "snakemake" for arg in cmdline[:2])


def other_snakemakes(folder: str | Path = ".") -> list[int]:
    """Pids of the Snakemake processes, other than this one and its parents, working in `folder`."""
    here = Path(folder).resolve()
    mine = _ancestors(os.getpid())
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        if pid in mine:
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if _is_snakemake(cmdline) and Path(os.readlink(proc / "cwd")).resolve() == here:
                found.append(pid)
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def clear_stale_locks(folder: str | Path = ".") -> int:
    """Remove Snakemake's locks in `folder` when no other Snakemake works there; returns how many."""
    locks = sorted((Path(folder) / ".snakemake" / "locks").glob("*.lock"))
    if not locks or not Path("/proc/self").exists() or other_snakemakes(folder):
        return 0
    for lock in locks:
        lock.unlink(missing_ok=True)
    return len(locks)


def remove_debris(roots: list[str | Path], folder: str | Path = ".") -> int:
    """Remove the temporary folders of atomic writes that a killed process left under `roots`, when no
    other Snakemake works in `folder` (a live one may be writing them); returns how many."""
    if not Path("/proc/self").exists() or other_snakemakes(folder):
        return 0
    found = []
    for root in roots:
        for base, dirs, _files in os.walk(Path(folder) / root):
            debris = [d for d in dirs if _TEMP_FOLDER.fullmatch(d)]
            found += [Path(base, d) for d in debris]
            dirs[:] = [d for d in dirs if d not in debris]
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return len(found)
