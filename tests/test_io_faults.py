"""Fault injection on outputs: a full disk or a read-only folder is one line naming the file and the cause,
earlier outputs survive, and no temporary file is left behind.

The faults are real: a small tmpfs fills up, a tmpfs remounted read-only refuses writes. Mounting
needs root; elsewhere those tests skip with the reason (the permission test then runs instead).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from training_helpers import ROOT, smoke_world, write_params

from hecvl.cli import main
from hecvl.errors import WriteError
from hecvl.io import atomic_write, write_json
from hecvl.models import build_model, load_pretrained, save_pretrained
from hecvl.training.checkpoint import load_checkpoint

NO_SPACE = "no space left on device"
READ_ONLY = "read-only file system"
MODEL_CFG = {"visual": {"preset": "small", "image_size": 32}, "heads": {"dim": 16}}


def _mount(folder: Path, options: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True, text=True)


@functools.cache
def _cannot_mount() -> str | None:
    """Why no tmpfs can be mounted here (None: it can), found once by mounting a tiny one."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "a real full or read-only file system needs root to mount a tmpfs"
    with tempfile.TemporaryDirectory() as folder:
        proc = _mount(Path(folder), "size=64k")
        if proc.returncode:
            return f"cannot mount a tmpfs here: {proc.stderr.strip().splitlines()[0]}"
        subprocess.run(["umount", folder], check=True)
    return None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if reason := _cannot_mount():  # every test using the world mounts: do not build it for nothing
        pytest.skip(reason)
    return smoke_world(tmp_path_factory)


@pytest.fixture
def tmpfs() -> Iterator[Callable[..., Path]]:
    """`mount(folder, size, read_only=False)`: a real file system of `size` bytes at `folder`, unmounted
    after the test; the test skips where none can be mounted (not root, no mount permission)."""
    if reason := _cannot_mount():
        pytest.skip(reason)
    mounted: list[Path] = []

    def mount(folder: Path, size: int, read_only: bool = False) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        proc = _mount(folder, f"size={size}" + (",ro" if read_only else ""))
        assert proc.returncode == 0, proc.stderr
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=True)


def _resize(folder: Path, size: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def _fill(folder: Path) -> None:
    """Take the file system's last free bytes (a real write, until the disk says it is full)."""
    with open(folder / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 16))
                fh.flush()
        except OSError as exc:
            assert "No space left" in str(exc)


def _hidden(folder: Path) -> list[Path]:
    """Temporary files or folders (ours or a library's) anywhere under `folder`."""
    return list(folder.rglob(".*"))


def _one_line(err: str) -> str:
    """The error, checked to be stderr's only line (progress bars, redrawn with \\r, aside)."""
    lines = [line for line in err.split("\n") if line.strip() and "\r" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _pretrain(world: dict[str, Path], params: Path, out: Path, *extra: str) -> list[str]:
    return [*extra, "pretrain", "--params", str(params), "--pairs", str(world["pairs"]),
            "--corpus", str(world["corpus"]), "--out", str(out), "--no-progress", "--no-tracking"]


def test_fault_full_disk_during_training_is_one_line_and_keeps_what_was_written(
    world: dict[str, Path], tmp_path: Path, tmpfs: Callable[..., Path], capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's run: the disk fills at the third checkpoint, then (enlarged) at the export; each
    time the rerun resumes from the last checkpoint written."""
    monkeypatch.setenv("HECVL_TRACKING", "off")
    params = write_params(tmp_path / "params.yaml", world["frames"],
                          {"train": {"steps": 8, "checkpoint_every": 2, "keep_checkpoints": 2}})
    probe = tmp_path / "probe"  # a 2-step run on the ordinary disk measures a checkpoint and an export
    assert main([*_pretrain(world, params, probe), "--steps", "2"]) == 0
    ckpt = (probe / "checkpoints" / "step-00000002.pt").stat().st_size
    export = (probe / "model.safetensors").stat().st_size
    assert export > 2 * ckpt  # the frozen text encoder is exported, not checkpointed
    disk = tmp_path / "disk"
    out = tmpfs(disk, 2 * ckpt + ckpt // 2 + (1 << 20)) / "run"
    ckpts = out / "checkpoints"
    capsys.readouterr()

    assert main(_pretrain(world, params, out)) == 2
    line = _one_line(capsys.readouterr().err)
    assert line == f"hecvl pretrain: error: {ckpts}/step-00000006.pt: {NO_SPACE}"
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "step-00000002.json", "step-00000002.pt", "step-00000004.json", "step-00000004.pt"]
    assert load_checkpoint(ckpts / "step-00000004.json")["step"] == 4  # intact: its checksum verifies
    assert not _hidden(out)

    _resize(disk, 4 * ckpt + export // 2)  # room for the checkpoints, not for the exported weights
    assert main(_pretrain(world, params, out)) == 2
    assert _one_line(capsys.readouterr().err) == f"hecvl pretrain: error: {out}/model.safetensors: {NO_SPACE}"
    assert load_checkpoint(ckpts / "step-00000008.json")["step"] == 8
    assert not (out / "model.safetensors").exists() and not _hidden(out)

    _resize(disk, 4 * ckpt + 2 * export)
    assert main(_pretrain(world, params, out)) == 0
    assert "(resumed from step 8)" in capsys.readouterr().out
    load_pretrained(out)
    assert not _hidden(out)


def test_fault_full_disk_during_export_keeps_the_earlier_export(
    tmp_path: Path, tmpfs: Callable[..., Path]
) -> None:
    model = build_model(MODEL_CFG, seed=3)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    out = tmpfs(tmp_path / "disk", weights + weights // 2) / "export"
    save_pretrained(model, MODEL_CFG, out)
    before = (out / "model.safetensors").read_bytes()
    _fill(out.parent)
    with torch.no_grad():
        model.video_heads["clip"].weight.add_(1.0)
    with pytest.raises(WriteError) as exc:
        save_pretrained(model, MODEL_CFG, out)
    assert str(exc.value) == f"{out}/model.safetensors: {NO_SPACE}"
    assert (out / "model.safetensors").read_bytes() == before
    load_pretrained(out)  # the earlier export still loads: its checksum matches
    assert not _hidden(out.parent)


def test_fault_read_only_output_is_one_line(
    world: dict[str, Path], tmp_path: Path, tmpfs: Callable[..., Path], capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Atomic writes (`params resolve`), plain writes (`params schema`) and training: one line each."""
    monkeypatch.setenv("HECVL_TRACKING", "off")
    ro = tmpfs(tmp_path / "ro", 1 << 20, read_only=True)
    assert main(["params", "resolve", "--params", str(ROOT / "params.yaml"), "--out", f"{ro}/s.yaml"]) == 2
    assert _one_line(capsys.readouterr().err) == f"hecvl params: error: {ro}/s.yaml: {READ_ONLY}"
    assert main(["params", "schema", "--out", f"{ro}/schema.json"]) == 2
    assert _one_line(capsys.readouterr().err) == f"hecvl params: error: {ro}/schema.json: {READ_ONLY}"
    params = write_params(tmp_path / "params.yaml", world["frames"])
    assert main(_pretrain(world, params, ro / "run")) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"hecvl pretrain: error: {ro}/run") and line.endswith(f": {READ_ONLY}")
    assert not list(ro.iterdir())


def test_fault_debug_keeps_the_traceback(tmp_path: Path, tmpfs: Callable[..., Path]) -> None:
    ro = tmpfs(tmp_path / "ro", 1 << 20, read_only=True)
    cmd = [sys.executable, "-m", "hecvl.cli", "params", "resolve", "--params", str(ROOT / "params.yaml"),
           "--out", str(ro / "s.yaml")]
    plain = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert plain.returncode == 2
    assert _one_line(plain.stderr) == f"hecvl params: error: {ro}/s.yaml: {READ_ONLY}"
    debug = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True, cwd=ROOT)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "OSError: [Errno 30] Read-only file system" in debug.stderr
    assert debug.stderr.strip().endswith(f"WriteError: {ro}/s.yaml: {READ_ONLY}")


# Faults that need no mount: they run everywhere.


def test_fault_output_below_a_file_names_the_output(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "sub" / "out.json"
    with pytest.raises(WriteError) as exc:
        write_json(target, {"a": 1})
    assert str(exc.value) == f"{target}: not a directory"


def test_fault_on_another_file_inside_the_block_names_that_file(tmp_path: Path) -> None:
    missing = tmp_path / "input.txt"
    with pytest.raises(WriteError) as exc, atomic_write(tmp_path / "out.txt") as fh:
        fh.write(missing.read_text())
    assert str(exc.value) == f"{missing}: no such file or directory"
    assert not list(tmp_path.iterdir())


def _as_nobody(args: list[str]) -> tuple[int, str]:
    """`main(args)` in a forked child that dropped root for uid 65534 (root ignores file permissions)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            os.close(reader)
            sys.stderr = os.fdopen(writer, "w")  # not pytest's capture, which this child would keep
            os.setgid(65534)
            os.setuid(65534)
            code = main(args)
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader) as fh:
        err = fh.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


def test_fault_permission_denied_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="hecvl-perm-"))  # beside, not in, pytest's root-only folder
    base.chmod(0o755)
    locked = base / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    args = ["params", "resolve", "--params", str(ROOT / "params.yaml"), "--out", str(locked / "s.yaml")]
    try:
        if os.access(locked, os.W_OK):  # root: the same command as an unprivileged user
            code, err = _as_nobody(args)
        else:
            code, err = main(args), capsys.readouterr().err
        assert code == 2, err
        assert _one_line(err) == f"hecvl params: error: {locked}/s.yaml: permission denied"
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)
