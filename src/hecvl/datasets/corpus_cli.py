"""`hecvl corpus`: check a lecture corpus, or import a transcript into its narration format.

hecvl corpus validate CORPUS [--no-probe]     every problem, one line each, then a summary;
                                              exit status 1 when any is an error
hecvl corpus import TRANSCRIPT --out narration.csv [--format srt|vtt|json|csv]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hecvl.datasets.corpus import lecture_dirs
from hecvl.datasets.transcripts import TRANSCRIPT_FORMATS, import_transcript, write_narrations
from hecvl.datasets.validate import summary, validate_corpus

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("validate", help="report every problem of a lecture corpus")
    check.add_argument("corpus", type=Path, help="corpus folder (one sub-folder per lecture)")
    check.add_argument("--no-probe", action="store_true", help="do not open the videos (skips length checks)")
    imp = sub.add_parser("import", help="convert an SRT / WebVTT / Whisper JSON transcript to narration.csv")
    imp.add_argument("transcript", type=Path, help="transcript file; the format comes from its extension")
    imp.add_argument("--out", type=Path, required=True, help="narration CSV to write (atomically)")
    imp.add_argument("--format", choices=sorted(set(TRANSCRIPT_FORMATS.values())), default=None)


def run(args: argparse.Namespace) -> int:
    if args.action == "import":
        table = import_transcript(args.transcript, args.format)
        write_narrations(table, args.out)
        log.info("wrote %s: %d segments", args.out, len(table))
        return 0
    n_lectures = len(lecture_dirs(args.corpus))
    problems = validate_corpus(args.corpus, probe_videos=not args.no_probe)
    for problem in problems:
        print(problem)
    line = summary(problems, n_lectures)
    errors = any(p.severity == "error" for p in problems)
    print(line)
    return 1 if errors else 0
