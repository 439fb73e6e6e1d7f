"""Recovery after a kill (hecvl.recovery): a stale Snakemake lock is cleared only when no Snakemake of the
folder is alive, so the same command completes when run again unchanged."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hecvl.recovery import clear_stale_locks, other_snakemakes

pytestmark = pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")


def _locks(folder: Path) -> list[Path]:
    locks = folder / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    out = [locks / "0.input.lock", locks / "0.output.lock"]
    for lock in out:
        lock.write_text("results/x\n")
    return out


def test_fault_a_live_snakemake_keeps_its_lock_and_a_dead_ones_lock_is_cleared(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    locks = _locks(folder)
    fake = tmp_path / "bin" / "snakemake"  # a process that shows up as `python .../snakemake` in this folder
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(60)\n")
    alive = subprocess.Popen([sys.executable, str(fake)], cwd=folder)
    try:
        deadline = time.time() + 10
        while alive.pid not in other_snakemakes(folder):
            assert time.time() < deadline, "the running Snakemake was not seen"
            time.sleep(0.1)
        assert clear_stale_locks(folder) == 0
        assert all(lock.exists() for lock in locks)
        assert other_snakemakes(tmp_path) == []  # another folder's Snakemake is not this one's
    finally:
        alive.kill()
        alive.wait()
    assert clear_stale_locks(folder) == 2
    assert not any(lock.exists() for lock in locks)
    assert clear_stale_locks(folder) == 0  # nothing left to clear


def test_fault_temp_folders_of_killed_writes_are_removed_and_nothing_else(tmp_path: Path) -> None:
    import os
    import signal

    from hecvl.io import atomic_path
    from hecvl.recovery import remove_debris

    target = tmp_path / "results" / "models" / "model.safetensors"
    target.parent.mkdir(parents=True)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # a writer killed in the middle of an atomic write
        os.close(reader)
        with atomic_path(target) as tmp:
            Path(tmp).write_bytes(b"half")
            (Path(tmp).parent / ".tmpAbC123").write_bytes(b"a library's own temp file")
            os.write(writer, b"x")
            time.sleep(60)
        os._exit(0)
    os.close(writer)
    os.read(reader, 1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    keep = [tmp_path / "results" / ".hidden.tmp", tmp_path / "data" / "user" / ".notes"]
    for folder in keep:
        folder.mkdir(parents=True)
    debris = [p for p in target.parent.iterdir() if p.name.startswith(".model.safetensors.")]
    assert len(debris) == 1 and debris[0].is_dir()
    assert remove_debris(["results", "data"], tmp_path) == 1
    assert not debris[0].exists() and not target.exists()
    assert all(folder.is_dir() for folder in keep)
