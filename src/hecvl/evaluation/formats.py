"""The one registry of model families: the choices of `hecvl evaluate --format`.

Our own (sources.py) and other groups' (`hecvl.released`, one file per family). Adding a family is its
file plus its line here; nothing in the scorer changes.
"""

from __future__ import annotations

import logging

from hecvl.errors import HecvlError
from hecvl.evaluation.sources import OURS, UNTRAINED, SourceFamily
from hecvl.released import hf_clip, surgclip, surglime, surgvlp

log = logging.getLogger(__name__)

FAMILIES: dict[str, SourceFamily] = {
    f.name: f for f in (OURS, UNTRAINED, surgvlp.FAMILY, surgclip.FAMILY, surglime.FAMILY, hf_clip.FAMILY)
}
ALIASES = {"hecvl": "ours"}  # former names: still accepted, with one deprecation line


def family(name: str) -> SourceFamily:
    """The family of a `--format` name; a former name logs one deprecation line."""
    if name in ALIASES:
        log.warning("--format %s is deprecated: use --format %s", name, ALIASES[name])
        name = ALIASES[name]
    if name not in FAMILIES:
        raise HecvlError(f"unknown --format {name!r} (choose from {', '.join(FAMILIES)})")
    return FAMILIES[name]


__all__ = ["ALIASES", "FAMILIES", "family"]
