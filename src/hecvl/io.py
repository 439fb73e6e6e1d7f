"""Atomic writes, content hashes and checked reads: an interrupted stage never leaves a half-written
output, and a missing or malformed input is one error naming the file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from hecvl.errors import HecvlError, WriteError, os_error_cause


def _umask_mode() -> int:
    """The mode a plainly created file gets: mkstemp's 0600 would hide outputs from a lab's group."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it over `path` only if the block succeeds.

    A failed write (disk full, read-only...) is a WriteError naming `path`; nothing is left behind.
    """
    binary = "b" in mode
    with _temp_beside(path) as tmp, open(tmp, mode, encoding=None if binary else encoding) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` for writers that want a file name (Parquet, safetensors, PNG).

    The temporary path has `path`'s name (writers that pick a format by suffix see the right one) in a
    private folder, so a library's own temporary files (safetensors writes `.tmpXXXXXX` beside its
    target) go there too and are removed with it when the write fails. A failed write is a WriteError
    naming `path`, whichever library reported it (torch's "unexpected pos" included).
    """
    with _temp_beside(path) as tmp:
        yield tmp


@contextlib.contextmanager
def _temp_beside(path: str | Path) -> Iterator[Path]:
    """An empty file in a private temporary folder beside `path`, renamed over `path` if the block
    succeeds; on any failure the folder goes, and I/O failures become a WriteError naming `path`."""
    path = Path(path)
    folder: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        tmp = folder / path.name
        tmp.touch()
        yield tmp
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
        _remove(folder)
    except Exception as exc:
        error = _write_error(exc, path, folder)
        _remove(folder)
        if error is None:
            raise
        raise error from exc
    except BaseException:  # KeyboardInterrupt, SystemExit: no message to translate
        _remove(folder)
        raise


def _write_error(exc: Exception, path: Path, folder: Path | None) -> WriteError | None:
    """`exc` as a WriteError naming `path` (or the other file an OSError names), None if no I/O failure."""
    if isinstance(exc, HecvlError):
        return None
    cause = os_error_cause(exc, folder if folder is not None and folder.exists() else path.parent)
    if cause is None:
        return None
    other = getattr(exc, "filename", None)
    if other is not None and not _ours(Path(os.fsdecode(other)), path):
        return WriteError(cause, other)  # the block failed on another file (an input it reads, say)
    return WriteError(cause, path)


def _ours(name: Path, path: Path) -> bool:
    """Whether `name` is `path`, a folder above it (mkdir), or our temporary folder or a file in it."""
    temp_prefix = str(path.parent / f".{path.name}.")
    return name == path or path.is_relative_to(name) or str(name).startswith(temp_prefix)


def _remove(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as fh:
        fh.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON with sorted keys so identical results give identical bytes."""
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=_json_default)
        fh.write("\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_csv(path: str | Path, df: Any, **kwargs: Any) -> None:
    """Write a pandas DataFrame as CSV atomically (no index)."""
    kwargs.setdefault("index", False)
    with atomic_write(path) as fh:
        df.to_csv(fh, **kwargs)


def write_parquet(path: str | Path, df: Any) -> None:
    """Write a pandas DataFrame as Parquet atomically (no index)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (videos can be many GB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def json_error(exc: json.JSONDecodeError) -> str:
    """Where a JSON document breaks, for the one-line error that names its file."""
    return f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


def read_json(path: str | Path, what: str = "file", missing: str | None = None) -> Any:
    """A JSON file's content; missing (`missing`, else "<what> not found"), unreadable or malformed: a
    HecvlError naming the file."""

    def parse(text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise HecvlError(json_error(exc), path) from None

    return parse(_read_text(path, what, missing))


def read_yaml(path: str | Path, what: str = "file", missing: str | None = None) -> Any:
    """A YAML file's content (safe loader), with the same errors as `read_json`."""
    import yaml

    try:
        return yaml.safe_load(_read_text(path, what, missing))
    except yaml.YAMLError as exc:
        raise HecvlError(f"not valid YAML: {exc}", path) from None


def _read_text(path: str | Path, what: str, missing: str | None) -> str:
    path = Path(path)
    if not path.is_file():
        raise HecvlError(missing or f"{what} not found", path)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HecvlError(f"cannot read the {what}: {exc}", path) from None
