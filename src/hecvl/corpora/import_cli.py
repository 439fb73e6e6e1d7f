"""The corpus-import and inspect parts of `hecvl corpus` (wired in `hecvl.datasets.corpus_cli`).

hecvl corpus import surglavi DB --out DIR [--clip-level L] [--phase-level L|none] [--abstract ...] ...
hecvl corpus import surgatlas PATH --out DIR [--map MAP.yaml] [--keysteps phases|steps|none]
hecvl corpus inspect PATH        keys with nesting, types and counts (or an SQLite file's tables)

`hecvl corpus import TRANSCRIPT --out CSV` (one positional) still imports a single transcript.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hecvl.errors import HecvlError

log = logging.getLogger(__name__)

CORPORA = ("surglavi", "surgatlas")


def add_import_arguments(imp: argparse.ArgumentParser) -> None:
    """The corpus importers' second positional and options, beside the transcript importer's."""
    imp.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=None,
        help="after a corpus name: the SurgLaVi database (surglavi_beta.db) or the SurgAtlas file/folder",
    )
    lavi = imp.add_argument_group("surglavi (defaults: the authors' loader filters)")
    lavi.add_argument(
        "--clip-level", default="auto", help="level name or id -> narration.csv (auto: the finest)"
    )
    lavi.add_argument(
        "--phase-level",
        default="auto",
        help="level name or id -> keysteps.csv; auto: the next level coarser than the clip level; none",
    )
    lavi.add_argument(
        "--abstract",
        default="coarsest",
        help="abstract.txt from: coarsest (its captions joined in time order), a level name or id, "
        "description (videos.description), none",
    )
    lavi.add_argument("--clip-text", choices=["raw_narration", "caption"], default="raw_narration")
    lavi.add_argument(
        "--phase-text",
        choices=["caption", "raw_narration"],
        default="caption",
        help="text column for keysteps.csv and for an abstract built from a level",
    )
    lavi.add_argument(
        "--min-duration", type=float, default=0.0, help="keep captions with duration > this (s)"
    )
    lavi.add_argument(
        "--max-duration", type=float, default=500.0, help="keep captions with duration <= this (s)"
    )
    lavi.add_argument(
        "--levels", nargs="+", default=[], metavar="LEVEL", help="keep only these levels (default all)"
    )
    lavi.add_argument(
        "--no-pair-filter",
        action="store_true",
        help="keep captions whatever is_descriptive / is_surgical_content say (default: both must be 1)",
    )
    lavi.add_argument(
        "--normalise", action="store_true", help="normalise the texts (close to the authors' loader)"
    )
    lavi.add_argument("--id-from", choices=["name", "video_id"], default="name", help="lecture folder names")
    atlas = imp.add_argument_group("surgatlas")
    atlas.add_argument("--map", type=Path, default=None, help="field map YAML (default: the shipped guess)")
    atlas.add_argument("--keysteps", choices=["phases", "steps", "none"], default="phases")


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
    if name == "surglavi":
        from hecvl.corpora.surglavi import SurgLaViOptions, import_surglavi, level_lines

        options = SurgLaViOptions(
            clip_level=args.clip_level,
            phase_level=args.phase_level,
            abstract=args.abstract,
            clip_text=args.clip_text,
            phase_text=args.phase_text,
            min_duration=args.min_duration,
            max_duration=args.max_duration,
            levels=tuple(args.levels),
            pair_filter=not args.no_pair_filter,
            normalise=args.normalise,
            id_from=args.id_from,
        )
        result = import_surglavi(args.path, args.out, options)
        for line in level_lines(result):
            print(line)
    else:
        from hecvl.corpora.surgatlas import import_surgatlas

        result = import_surgatlas(args.path, args.out, args.map, args.keysteps)
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
