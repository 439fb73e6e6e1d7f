"""`hecvl synth`: generate the embedded synthetic world, or print its sanity figures (`--check`).

hecvl synth --preset default --seed 0 --out data/world
hecvl synth --params params.yaml                 # data.synthetic's settings (lecture_video too), to data.root
hecvl synth --check data/world --out reports/synth_check.json   # exit status 1 when a criterion fails
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hecvl.config import SyntheticSettings, load_params
from hecvl.errors import HecvlError
from hecvl.io import write_json
from hecvl.synth.vocab import presets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params", type=Path, help="take defaults from this params.yaml (data.synthetic, data.root)"
    )
    parser.add_argument("--preset", choices=sorted(presets()), help="world size (default: default)")
    parser.add_argument("--seed", type=int, help="random seed (default: 0)")
    parser.add_argument("--scale", type=float, help="multiply the number of lectures by K (default: 1)")
    parser.add_argument(
        "--narration-relevance",
        type=float,
        dest="relevance",
        help="fraction of narration sentences that describe the picture (default: 0.5)",
    )
    parser.add_argument("--workers", type=int, default=2, help="rendering processes (default: 2)")
    parser.add_argument(
        "--check",
        type=Path,
        metavar="DIR",
        help="print the sanity figures of the world in DIR; exit status 1 when a criterion fails",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="with --check: exit 0 even when a criterion fails (the findings state the verdict)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder of the world; with --check, the JSON report (default DIR/check.json)",
    )


def run(args: argparse.Namespace) -> int:
    progress = sys.stderr.isatty()
    if args.check is not None:
        from hecvl.synth.api import failed_criteria, format_report, run_check

        report = run_check(args.check, progress=progress)
        print(format_report(report))
        write_json(args.out or args.check / "check.json", report)
        failed = failed_criteria(report)
        if failed:
            print(f"hecvl synth --check: {len(failed)} criteria failed: {', '.join(failed)}", file=sys.stderr)
            return 0 if args.report_only else 1
        return 0
    from hecvl.synth.api import generate_world

    cfg = SyntheticSettings()
    out = args.out
    if args.params is not None:
        params = load_params(args.params)
        cfg = params.data.synthetic
        out = out or Path(params.data.root)
    if out is None:
        raise HecvlError("--out DIR (or --params with data.root) is required")
    generate_world(
        out,
        preset=args.preset or cfg.preset,
        seed=args.seed if args.seed is not None else cfg.seed,
        scale=args.scale if args.scale is not None else cfg.scale,
        narration_relevance=args.relevance if args.relevance is not None else cfg.narration_relevance,
        workers=args.workers,
        progress=progress,
        lecture_video=cfg.lecture_video.to_dict(),  # only from --params (data.synthetic.lecture_video)
    )
    print(f"wrote {out}")
    return 0
