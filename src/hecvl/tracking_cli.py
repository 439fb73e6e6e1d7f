"""`hecvl tracking sync`: send the MLflow runs jobs spooled while the tracking store did not answer.

Each run waits in `<project>/.hecvl/tracking-spool` (hecvl.tracking_spool) until a sync sends it to the
store it was meant for; a run a killed job left RUNNING is ended KILLED. Every Snakemake invocation
syncs at its start and end; this command is for sending sooner, or from another machine's shell.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hecvl.errors import HecvlError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["sync"],
                        help="sync: send the spooled runs (again is harmless), end runs of killed jobs")
    parser.add_argument("--project", type=Path, default=None,
                        help="the study's folder (default: the one holding params.yaml at or above here)")
    parser.add_argument("--tracking-uri", default=None,
                        help="send to this store instead of the one each run was meant for (a moved server)")


def run(args: argparse.Namespace) -> int:
    from hecvl import tracking

    root = tracking.project_root(args.project)
    report = tracking.sync(root, args.tracking_uri)
    line = report.line()
    if report.failed:
        raise HecvlError(f"{len(report.failed)} spooled run(s) not sent: {report.failed[0]}", report.folder)
    print(line or f"nothing to send: no spooled runs in {report.folder}")
    return 0
