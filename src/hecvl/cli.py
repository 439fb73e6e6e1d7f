"""The `hecvl` command line: one subcommand per stage of the study.

Each subcommand lives in the module that does the work; that module exposes
`add_arguments(parser)` and `run(args) -> int`. Modules are imported only when their
subcommand runs, so `hecvl --help` stays fast and one stage's heavy imports never slow another.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from hecvl.errors import HecvlError, os_error_cause

# name -> (module, one-line help). Add a stage here and in its module; nothing else.
COMMANDS: dict[str, tuple[str, str]] = {
    "params": ("hecvl.config.params_cli", "show the resolved configuration, or write its schema"),
    "synth": ("hecvl.synth.synth_cli", "generate the synthetic world, or print its sanity figures (--check)"),
    "acquire": ("hecvl.acquire", "generate the synthetic world or register local datasets, and verify them"),
    "labels": ("hecvl.datasets.labels_cli", "convert published phase labels to the 1 fps label table"),
    "corpus": ("hecvl.corpora.corpus_cli",
               "validate, import (transcripts, SurgLaVi-β, SurgAtlas), download or report a lecture corpus"),
    "dataset": ("hecvl.datasets.dataset_cli", "check your own dataset folder (the generic format)"),
    "frames": ("hecvl.datasets.frames_cli",
               "decode the 1 fps evaluation frames of videos into the frame cache"),
    "store": ("hecvl.video.store_cli", "build (one lecture, or --all) or verify the training frame store"),
    "evaluate": ("hecvl.evaluation.evaluate_cli", "zero-shot phase recognition on a target dataset"),
    "protocols": ("hecvl.evaluation.protocols_cli", "list the named evaluation protocols and what they fix"),
    "score": ("hecvl.evaluation.score_cli", "score 1 fps phase predictions (CSV) against ground truth"),
    "pair": ("hecvl.pairing.pair_cli", "build the clip / phase / video pair manifests from a lecture corpus"),
    "pretrain": ("hecvl.training.pretrain_cli", "pretrain the HecVL model on the pair manifests (a variant)"),
    "paper": ("hecvl.paper.paper_cli", "the study's tables, figures and protocol note (results/paper)"),
    "tracking": ("hecvl.tracking_cli", "send MLflow runs spooled while the tracking store was down (sync)"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and one sub-parser per command (their arguments are added lazily)."""
    parser = argparse.ArgumentParser(prog="hecvl", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers = {
        name: sub.add_parser(name, help=help_text, description=help_text)
        for name, (_module, help_text) in COMMANDS.items()
    }
    return parser, subparsers


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = build_parser()
    # The command is the first argument that names one; its own arguments are added before parsing
    # so that `hecvl CMD --help` shows them.
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        parser.parse_args(argv)  # prints usage/help or the unknown-command error
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    module.add_arguments(subparsers[command])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(module.run(args) or 0)
    except (HecvlError, OSError) as exc:
        message = str(exc) if isinstance(exc, HecvlError) else os_error_line(exc)
        if args.debug or message is None:
            raise
        print(f"hecvl {command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hecvl {command}: interrupted", file=sys.stderr)
        return 130


def os_error_line(exc: OSError) -> str | None:
    """An OSError that escaped a stage (disk full, permission denied, read-only file system...) as
    "FILE: cause"; None for one without an errno, which is more likely a bug than the environment."""
    if exc.errno is None:
        return None
    cause = os_error_cause(exc)
    names = [os.fsdecode(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{' -> '.join(names)}: {cause}" if names else cause


if __name__ == "__main__":
    sys.exit(main())
