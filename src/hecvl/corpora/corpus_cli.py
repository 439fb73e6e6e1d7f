"""`hecvl corpus`: check a lecture corpus, or import a transcript into its narration format.

hecvl corpus validate CORPUS [--no-probe] [--skip-missing-videos]
                                              every problem, one line each, then a summary;
                                              exit status 1 when any is an error
hecvl corpus import TRANSCRIPT --out narration.csv [--format srt|vtt|json|csv]
hecvl corpus import surglavi|surgatlas PATH --out DIR [options]   (see hecvl.corpora.import_cli)
hecvl corpus inspect PATH                     keys, nesting, types and counts of annotation files
hecvl corpus download CORPUS [--params P] [--cookies FILE] [--max-height 720] [--retries N]
                             [--rate-limit 2M] [--sleep S] [--retry-unavailable] [--strict]
hecvl corpus report CORPUS [--params P] [--tolerance S] [--out report.md|report.csv]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hecvl.config import DownloadSettings, load_params
from hecvl.corpora.corpus import lecture_dirs
from hecvl.corpora.import_cli import (
    add_import_arguments,
    add_inspect_parser,
    is_corpus_import,
    run_import,
    run_inspect,
)
from hecvl.corpora.transcripts import TRANSCRIPT_FORMATS, import_transcript, write_narrations
from hecvl.corpora.validate import summary, validate_corpus
from hecvl.errors import HecvlError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = sub.add_parser("validate", help="report every problem of a lecture corpus")
    check.add_argument("corpus", type=Path, help="corpus folder (one sub-folder per lecture)")
    check.add_argument("--no-probe", action="store_true", help="do not open the videos (skips length checks)")
    check.add_argument("--skip-missing-videos", action="store_true",
                       help="a lecture without a video is a warning, not an error (a downloaded corpus)")
    imp = sub.add_parser(
        "import",
        help="convert an SRT / WebVTT / Whisper JSON transcript to narration.csv, "
        "or import a public corpus (surglavi DB, surgatlas PATH) into a lecture-corpus folder",
    )
    imp.add_argument(
        "transcript", type=Path, help="transcript file (format from its extension), or surglavi | surgatlas"
    )
    imp.add_argument("--out", type=Path, required=True, help="narration CSV, or corpus folder, to write")
    imp.add_argument("--format", choices=sorted(set(TRANSCRIPT_FORMATS.values())), default=None)
    add_import_arguments(imp)
    add_inspect_parser(sub)
    _add_download_arguments(sub)


def _add_download_arguments(sub: argparse._SubParsersAction) -> None:
    """`download` and `report`: their defaults are data.download of --params (or the typed defaults)."""
    down = sub.add_parser("download", help="fetch each lecture's video (meta.json url) with yt-dlp")
    down.add_argument("corpus", type=Path, help="an imported corpus folder (one sub-folder per lecture)")
    down.add_argument("--params", type=Path, default=None, help="take data.download from this parameter file")
    down.add_argument("--cookies", default=None, help="your cookies file for yt-dlp (read, never copied)")
    down.add_argument("--max-height", type=int, default=None, help="tallest video fetched (default 720)")
    down.add_argument("--retries", type=int, default=None, help="retries of a failed transfer (default 3)")
    down.add_argument("--rate-limit", default=None, help="bytes per second, e.g. 2M (default: unlimited)")
    down.add_argument("--sleep", type=float, default=None, help="seconds between two downloads (default 0)")
    down.add_argument("--retry-unavailable", action="store_true",
                      help="try again the videos recorded unavailable by an earlier run")
    down.add_argument("--strict", action="store_true", default=None,
                      help="exit 1 when any video could not be fetched")
    down.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    rep = sub.add_parser("report", help="which videos were fetched, and how many pairs that leaves")
    rep.add_argument("corpus", type=Path, help="an imported corpus folder")
    rep.add_argument("--params", type=Path, default=None, help="take data.download from this parameter file")
    rep.add_argument("--tolerance", type=float, default=None,
                     help="seconds a video may differ from expected_duration (default 2)")
    rep.add_argument("--out", type=Path, default=None, help="write the report (.md or .csv), atomically")
    rep.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _download_settings(args: argparse.Namespace) -> DownloadSettings:
    """data.download of --params (or the defaults), with the command line's values on top."""
    settings = load_params(args.params).data.download if args.params else DownloadSettings()
    flags = {"cookies": "cookies", "max_height": "max_height", "retries": "retries",
             "rate_limit": "rate_limit", "sleep": "sleep", "strict": "strict",
             "tolerance": "duration_tolerance"}
    changes = {key: getattr(args, flag) for flag, key in flags.items()
               if getattr(args, flag, None) is not None}
    return settings.replace(**changes) if changes else settings


def _download(args: argparse.Namespace) -> int:
    from hecvl.corpora.corpus_download import MANIFEST_FILE, counts, download_corpus

    settings = _download_settings(args)
    manifest = download_corpus(args.corpus, settings, progress=not args.no_progress,
                               retry_unavailable=args.retry_unavailable)
    n = counts(manifest)
    missing = len(manifest["lectures"]) - n["downloaded"]
    print(f"{len(manifest['lectures'])} lecture(s): " + ", ".join(f"{v} {k}" for k, v in n.items() if v)
          + f"; see {args.corpus / MANIFEST_FILE}")
    return 1 if settings.strict and missing else 0


def _report(args: argparse.Namespace) -> int:
    from hecvl.corpora.corpus_report import availability, summarise, summary_lines, write_report

    if args.out is not None and args.out.suffix.lower() not in (".md", ".csv"):
        raise HecvlError("the report is written as .md or .csv", args.out)
    tolerance = _download_settings(args).duration_tolerance
    rows = availability(args.corpus, tolerance, progress=not args.no_progress)
    summary = summarise(rows)
    if args.out is not None:
        write_report(rows, summary, args.corpus, args.out)
    for line in summary_lines(summary):
        print(line)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "download":
        return _download(args)
    if args.action == "report":
        return _report(args)
    if args.action == "inspect":
        return run_inspect(args)
    if args.action == "import" and is_corpus_import(args):
        return run_import(args)
    if args.action == "import":
        table = import_transcript(args.transcript, args.format)
        write_narrations(table, args.out)
        log.info("wrote %s: %d segments", args.out, len(table))
        return 0
    n_lectures = len(lecture_dirs(args.corpus))
    problems = validate_corpus(args.corpus, probe_videos=not args.no_probe,
                               skip_missing_videos=args.skip_missing_videos)
    for problem in problems:
        print(problem)
    line = summary(problems, n_lectures)
    errors = any(p.severity == "error" for p in problems)
    print(line)
    return 1 if errors else 0
