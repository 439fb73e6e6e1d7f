"""The corpus-import and inspect parts of `hecvl corpus` (wired in `hecvl.corpora.corpus_cli`).

hecvl corpus import surglavi DB --out DIR [--params FILE] [--clip-level L] [--phase-level L|none] ...
hecvl corpus import surgatlas PATH --out DIR [--params FILE] [--map MAP.yaml] [--keysteps phases|steps|none]
(the options' defaults: data.corpus_source of --params, else config/data.py; a flag overrides)
hecvl corpus inspect PATH        keys with nesting, types and counts (or an SQLite file's tables)

`hecvl corpus import TRANSCRIPT --out CSV` (one positional) still imports a single transcript.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import get_args

from hecvl.config import load_params
from hecvl.config.base import Section
from hecvl.config.data import SurgAtlasImport, SurgLaViImport
from hecvl.errors import HecvlError

log = logging.getLogger(__name__)

CORPORA = ("surglavi", "surgatlas")


def _choices(section: type[Section], name: str) -> list[str]:
    """The values a Literal option allows, as the config declares them."""
    return list(get_args(section.model_fields[name].annotation))


def _default(section: type[Section], name: str) -> str:
    return f"default {section.model_fields[name].default!r}"


def add_import_arguments(imp: argparse.ArgumentParser) -> None:
    """The corpus importers' second positional and options, beside the transcript importer's.

    Every option's default is data.corpus_source of --params, else the typed defaults (config/data.py:
    SurgLaViImport, SurgAtlasImport); a flag given overrides it.
    """
    imp.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=None,
        help="after a corpus name: the SurgLaVi database (surglavi_beta.db) or the SurgAtlas file/folder",
    )
    imp.add_argument("--params", type=Path, default=None,
                     help="take the importer's options from data.corpus_source of this parameter file")
    lavi = imp.add_argument_group("surglavi (defaults: the authors' loader filters)")
    L = SurgLaViImport
    lavi.add_argument("--clip-level", default=None,
                      help=f"level name or id -> narration.csv; auto: the finest "
                      f"({_default(L, 'clip_level')})")
    lavi.add_argument("--phase-level", default=None,
                      help="level name or id -> keysteps.csv; auto: the next level coarser than the clip "
                      f"level; none ({_default(L, 'phase_level')})")
    lavi.add_argument("--abstract", default=None,
                      help="abstract.txt from: coarsest (its captions joined in time order), a level name or "
                      f"id, description (videos.description), none ({_default(L, 'abstract')})")
    lavi.add_argument("--clip-text", choices=_choices(L, "clip_text"), default=None,
                      help=_default(L, "clip_text"))
    lavi.add_argument("--phase-text", choices=_choices(L, "phase_text"), default=None,
                      help=f"text column for keysteps.csv and for an abstract built from a level "
                      f"({_default(L, 'phase_text')})")
    lavi.add_argument("--min-duration", type=float, default=None,
                      help=f"keep captions with duration > this (s) ({_default(L, 'min_duration')})")
    lavi.add_argument("--max-duration", type=float, default=None,
                      help=f"keep captions with duration <= this (s) ({_default(L, 'max_duration')})")
    lavi.add_argument("--levels", nargs="+", default=None, metavar="LEVEL",
                      help="keep only these levels (default all)")
    lavi.add_argument("--no-pair-filter", dest="pair_filter", action="store_false", default=None,
                      help="keep captions whatever is_descriptive / is_surgical_content say (default: both "
                      "must be 1)")
    lavi.add_argument("--normalise", action="store_true", default=None,
                      help="normalise the texts (close to the authors' loader)")
    lavi.add_argument("--id-from", choices=_choices(L, "id_from"), default=None,
                      help=f"lecture folder names ({_default(L, 'id_from')})")
    atlas = imp.add_argument_group("surgatlas")
    atlas.add_argument("--map", type=Path, default=None, help="field map YAML (default: the shipped guess)")
    atlas.add_argument("--keysteps", choices=_choices(SurgAtlasImport, "keysteps"), default=None,
                       help=_default(SurgAtlasImport, "keysteps"))


def import_options(args: argparse.Namespace, name: str) -> SurgLaViImport | SurgAtlasImport:
    """`name`'s options: data.corpus_source of --params (or the typed defaults), the given flags on top."""
    section = SurgLaViImport if name == "surglavi" else SurgAtlasImport
    options = section()
    if args.params is not None:
        source = load_params(args.params).data.corpus_source
        if source is not None and source.importer != name:
            raise HecvlError(f"data.corpus_source imports {source.importer}, not {name}", args.params)
        if source is not None:
            options = source.surglavi if name == "surglavi" else source.surgatlas
    changes = {key: getattr(args, key) for key in section.model_fields
               if getattr(args, key, None) is not None}
    if "map" in changes:
        changes["map"] = str(changes["map"])
    return options.replace(**changes) if changes else options


def add_inspect_parser(sub: argparse._SubParsersAction) -> None:
    ins = sub.add_parser("inspect", help="print the keys of annotation files (to write a field map)")
    ins.add_argument(
        "source", type=Path, help="a JSON / JSONL / Parquet file or folder, or an SQLite database"
    )


def run_inspect(args: argparse.Namespace) -> int:
    from hecvl.corpora.inspect import inspect_path

    for line in inspect_path(args.source):
        print(line)
    return 0


def is_corpus_import(args: argparse.Namespace) -> bool:
    """`import NAME PATH` (or a corpus name alone, to say what is missing) rather than `import TRANSCRIPT`."""
    return args.path is not None or str(args.transcript) in CORPORA


def run_import(args: argparse.Namespace) -> int:
    """Import one corpus into a lecture-corpus folder and print what was kept."""
    name = str(args.transcript)
    if name not in CORPORA:
        raise HecvlError(
            f"unknown corpus {name!r} (known: {', '.join(CORPORA)}); a transcript takes no second path"
        )
    if args.path is None:
        what = "the database surglavi_beta.db" if name == "surglavi" else "the annotation file or folder"
        raise HecvlError(f"corpus import {name} needs {what}: hecvl corpus import {name} PATH --out DIR")
    options = import_options(args, name)
    if name == "surglavi":
        from hecvl.corpora.surglavi import import_surglavi, level_lines

        result = import_surglavi(args.path, args.out, options)
        for line in level_lines(result):
            print(line)
    else:
        from hecvl.corpora.surgatlas import import_surgatlas

        result = import_surgatlas(args.path, args.out, options.map, options.keysteps)
        for level, entry in result.record["levels"].items():
            dropped = ", ".join(f"{k} {v}" for k, v in entry["dropped"].items()) or "none"
            print(
                f"{level}: {entry['items']} items -> {entry['role'] or 'unused'}; kept {entry['kept']} "
                f"(dropped: {dropped})"
            )
    videos = result.record["videos"]
    dropped = ", ".join(f"{k} {v}" for k, v in videos["dropped"].items()) or "none"
    merged = videos.get("merged", 0)  # SurgLaVi: video rows sharing a YouTube id with an earlier one
    also = f"; merged into a lecture of the same YouTube id: {merged}" if merged else ""
    print(
        f"videos: {videos['imported']} lectures written to {args.out} of {videos['in_source']} "
        f"(dropped: {dropped}{also}); see {Path(args.out) / 'import.json'}"
    )
    if not videos["imported"]:
        raise HecvlError("no video could be imported (see the counts above)", args.path)
    return 0
