"""`hecvl dataset`: check your own dataset folder in the generic format before evaluating on it.

hecvl dataset check DIR [--no-probe]     every problem, one line each naming the file (and line),
                                         then a summary; exit status 1 when any is an error

The format (README, "Evaluate a model on your dataset"; hecvl.datasets.generic):
DIR/videos/<id>.<ext>, DIR/labels/<id>.csv, DIR/classes.yaml, DIR/splits.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hecvl.datasets.generic import check_dataset
from hecvl.datasets.registry import LABEL_OVERRUN_TOLERANCE_S


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("check", help="report every problem of a dataset folder in the generic format")
    check.add_argument("dir", type=Path, help="dataset folder (videos/, labels/, classes.yaml, splits.json)")
    check.add_argument("--no-probe", action="store_true",
                       help="do not open the videos (skips reading them and the label-length checks)")


def run(args: argparse.Namespace) -> int:
    result = check_dataset(args.dir, probe_videos=not args.no_probe, tolerance_s=LABEL_OVERRUN_TOLERANCE_S)
    for problem in result.problems:
        print(problem)
    print(result.summary())
    return 1 if result.errors else 0
