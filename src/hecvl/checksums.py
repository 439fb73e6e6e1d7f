"""Checksummed cache files: an entry counts only while its bytes match the record written after it.

The training checkpoints' scheme (`training.checkpoint`: the file, then a JSON record with its
SHA-256 and size), for the caches whose entries feed every later evaluation and run (frame
embeddings, text features). Both files are written atomically, the record last, so a record only
ever describes a complete file. A reader takes the bytes once, checks them against the record and
parses those same bytes: what it uses is exactly what was verified. A file damaged on disk, truncated,
unreadable, without a record (an interrupted write, or an entry from before cache entries carried
checksums) or with an unreadable record is a `BadEntry`; the cache warns once, naming the file, and
rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hecvl.errors import HecvlError
from hecvl.io import atomic_write, write_json

_OLD = "written before cache entries carried checksums, or by an interrupted write"


class BadEntry(HecvlError):
    """A cache file that must not be used; the message says what is wrong with it."""


def write_checked(path: Path, data: bytes, record: Path, fields: Mapping[str, Any] | None = None) -> None:
    """Write `data` to `path`, then `record` = `fields` + the data's SHA-256 and size (both atomic)."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    write_json(record, {**(fields or {}), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})


def read_checked(path: Path, record: Path) -> tuple[bytes, dict[str, Any]] | None:
    """(bytes, record) of an entry whose bytes match its record; None when neither file exists.

    Raises BadEntry (naming `path`) for any other state: the caller must rebuild the entry.
    """
    if not record.exists():
        if path.exists():
            raise BadEntry(f"no checksum record {record.name} ({_OLD})", path)
        return None
    try:
        meta = json.loads(record.read_text(encoding="utf-8"))
        expected, size = str(meta["sha256"]), int(meta["bytes"])
    except KeyError as exc:
        raise BadEntry(f"checksum record {record.name} has no {exc} ({_OLD})", path) from None
    except (OSError, ValueError, TypeError) as exc:
        raise BadEntry(f"unreadable checksum record {record.name} ({exc})", path) from None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadEntry(f"missing, although its checksum record {record.name} exists", path) from None
    except OSError as exc:
        raise BadEntry(f"unreadable ({exc})", path) from None
    if len(data) != size:
        raise BadEntry(f"{len(data)} bytes, its checksum record says {size} (truncated or altered)", path)
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise BadEntry(f"SHA-256 mismatch (got {actual[:12]}, recorded {expected[:12]}): altered", path)
    return data, meta
