"""`hecvl labels`: convert published phase labels to the 1 fps label table, or split pickles to JSON.

    hecvl labels {cholec80,autolaparo,multibypass140} PATH --out OUT.csv [--fps F] [--tables DIR]
    hecvl labels splits FOLDER_OR_PICKLE --out splits.json [--fold K]

PATH is a label file or a folder searched recursively. `splits` reads the MultiBypass140 split
pickles with the restricted unpickler: a `labels_by70_splits` folder gives {train, val, test} of
fold K (the splits.json format of the target datasets); a single pickle gives {"videos": [...]}.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hecvl.datasets.classes import LABEL_FORMATS
from hecvl.datasets.labels import read_labels
from hecvl.datasets.splits import multibypass_official_splits, read_split_pickle
from hecvl.io import write_csv, write_json

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "format", choices=[*LABEL_FORMATS, "splits"], help="label format, or 'splits' for split pickles"
    )
    parser.add_argument(
        "path", type=Path, help="label file or folder (searched recursively); for splits a pickle or folder"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output CSV (labels) or JSON (splits), written atomically"
    )
    parser.add_argument(
        "--fps", type=float, default=None, help="Cholec80: the videos' frame rate (default 25)"
    )
    parser.add_argument(
        "--tables",
        type=Path,
        default=None,
        help="MultiBypass140: tables/ folder or phase.csv of class names (default: PATH/tables)",
    )
    parser.add_argument(
        "--fold", type=int, default=0, help="splits: which of the 5 official folds (default 0)"
    )


def run(args: argparse.Namespace) -> int:
    if args.format == "splits":
        if args.path.is_file():
            out = {"videos": read_split_pickle(args.path)}
        else:
            out = multibypass_official_splits(args.path, args.fold)
        write_json(args.out, out)
        log.info("wrote %s: %s", args.out, ", ".join(f"{k} {len(v)}" for k, v in out.items()))
        return 0
    table = read_labels(args.format, args.path, fps=args.fps, tables=args.tables)
    write_csv(args.out, table)
    log.info("wrote %s: %d seconds of %d video(s)", args.out, len(table), table["video"].nunique())
    return 0
