"""`hecvl pretrain --params params.yaml --variant NAME --pairs DIR --out DIR [--steps N]`.

Runs single-process, or data-parallel when launched with `torchrun --nproc_per_node N -m hecvl.cli
pretrain ...` (or `torchrun ... $(which hecvl) pretrain ...`). Rerunning the same command in the
same --out resumes from the last valid checkpoint; a finished run only rewrites its outputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hecvl.config import load_params
from hecvl.training.trainer import pretrain


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="parameter file")
    parser.add_argument("--variant", default="main", help="named variant of params.yaml (default: main)")
    parser.add_argument("--pairs", type=Path, required=True, help="folder of the pair manifests (hecvl pair)")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="lecture corpus the manifests point into (default: data.corpus)")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder (weights, curves, checkpoints)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (overrides train.steps)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (overrides `seed`)")
    parser.add_argument("--no-resume", action="store_true",
                        help="delete existing checkpoints in --out and train from step 0")
    parser.add_argument("--restart-if-changed", action="store_true",
                        help="delete checkpoints written with other settings instead of refusing them "
                             "(the workflow's rerun after a settings change)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--no-tracking", action="store_true", help="do not log this run to MLflow")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params).variant(args.variant)
    if args.seed is not None:
        params = params.updated({"seed": args.seed})
    result = pretrain(
        params,
        args.pairs,
        args.out,
        corpus_root=args.corpus,
        variant=args.variant,
        steps=args.steps,
        resume=not args.no_resume,
        restart_if_changed=args.restart_if_changed,
        progress=False if args.no_progress else None,
        track=not args.no_tracking,
    )
    if result.is_main:
        print(f"pretrained {result.steps} steps in {result.seconds:.1f} s "
              f"(resumed from step {result.start_step}); weights in {result.model_dir}")
    return 0
