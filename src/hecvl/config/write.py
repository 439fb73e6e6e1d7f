"""The resolved configuration as a file: what each invocation of the DAG writes once and its jobs read."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from hecvl.errors import HecvlError
from hecvl.io import atomic_path
from hecvl.layout import RESOLVED_NAME, resolved_config


def dump(params: Any, header: str = "") -> str:
    """YAML text of a resolved `Params`: `preset` names the preset already applied; presets left out."""
    data = params.to_dict()
    data.pop("presets", None)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
    return "".join(f"# {line}\n" for line in header.splitlines()) + text


def write_resolved(params: Any, path: str | Path, header: str = "") -> bool:
    """Write `params` to `path` atomically, and only when the text changes (True when it did)."""
    return write_text_once(path, dump(params, header))


def text_digest(text: str) -> str:
    """The 16-hex SHA-256 prefix that names a content-addressed configuration file."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def invocation_config(params: Any, header: str = "") -> tuple[str, str]:
    """(path, text) of an invocation's resolved configuration, named by its own digest.

    Each Snakemake invocation plans with one configuration and its jobs read exactly that file: a dry run
    or a second study in the same folder with other settings gets another name and cannot change what a
    running job reads (`verify_resolved` refuses a file whose text no longer has its name's digest).
    """
    text = dump(params, header)
    return resolved_config(text_digest(text)), text


def write_text_once(path: str | Path, text: str) -> bool:
    """Write `text` to `path` atomically unless the file already holds it (True when written)."""
    path = Path(path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return True


def verify_resolved(path: str | Path) -> None:
    """Refuse a content-addressed configuration whose text does not have the digest in its name."""
    path = Path(path)
    match = RESOLVED_NAME.fullmatch(path.name)
    if match is None or not path.is_file():
        return
    found = text_digest(path.read_text(encoding="utf-8"))
    if found != match.group(1):
        raise HecvlError(f"this configuration was planned with digest {match.group(1)} but its text now has "
                         f"{found}: it was changed after Snakemake wrote it; rerun snakemake", path)
