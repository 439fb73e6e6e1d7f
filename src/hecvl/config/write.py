"""The resolved configuration as a file: what the DAG writes once and every job reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hecvl.io import atomic_path


def dump(params: Any, header: str = "") -> str:
    """YAML text of a resolved `Params`: `preset` names the preset already applied; presets left out."""
    data = params.to_dict()
    data.pop("presets", None)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
    return "".join(f"# {line}\n" for line in header.splitlines()) + text


def write_resolved(params: Any, path: str | Path, header: str = "") -> bool:
    """Write `params` to `path` atomically, and only when the text changes (True when it did)."""
    path = Path(path)
    text = dump(params, header)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return True
