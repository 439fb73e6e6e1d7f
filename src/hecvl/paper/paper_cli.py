"""`hecvl paper`: the study's tables and figures.

hecvl paper table --params params.yaml --name NAME --out results/ablations/NAME.csv LABEL=PATH ...
    one ablation's tidy CSV (mean ± std across seeds of the video-wise means, per label and dataset)
hecvl paper build --params params.yaml --out results/paper
    main and ablation tables (CSV, Markdown, LaTeX), figures, run_protocol.md
hecvl paper readme [--findings results/paper/findings.md] [--readme README.md] [--check]
    the README's results block (between its results markers) replaced by the study's findings.md
hecvl paper noise --params params.yaml --table results/noise/narration_noise.csv --out PNG
    the narration-noise sweep (study.noise) gathered into a tidy CSV, and zero-shot accuracy / F1
    against the fraction of relevant narrations; with --from-table, only the figure from an existing CSV
hecvl paper sensitivity --params params.yaml --out results/paper SWEEP.csv ...
    the protocol-sensitivity table and figure from the models' `hecvl evaluate --sensitivity` sweeps
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hecvl import layout
from hecvl.config import load_params
from hecvl.io import write_text

# the README's generated blocks and the file each is copied from
README_BLOCKS = {"results": layout.FINDINGS, "noise": layout.NOISE_FINDINGS,
                 "protocols": layout.PROTOCOL_SENSITIVITY[1]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="paper_command", metavar="ACTION", required=True)
    table = sub.add_parser("table", help="aggregate one ablation's metrics files into its CSV")
    table.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study's params.yaml")
    table.add_argument("--name", required=True, help="ablation name (params.yaml `ablations:`)")
    table.add_argument("--out", type=Path, required=True, help="CSV to write")
    table.add_argument("--root", type=Path, default=Path("."), help="project root the paths are relative to")
    table.add_argument("rows", nargs="+", metavar="LABEL=PATH", help="each row's label and metrics.json")

    build = sub.add_parser("build", help="tables, figures and protocol note of the whole study")
    build.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study's params.yaml")
    build.add_argument("--out", type=Path, default=Path(layout.PAPER), help="output folder")
    build.add_argument("--root", type=Path, default=Path("."), help="project root the paths are relative to")

    readme = sub.add_parser("readme", help="copy findings.md into the README's results block")
    readme.add_argument("--findings", type=Path, default=None,
                        help=f"default: {layout.FINDINGS} (--block noise: {layout.NOISE_FINDINGS}; "
                        f"--block protocols: {layout.PROTOCOL_SENSITIVITY[1]})")
    readme.add_argument("--block", choices=tuple(README_BLOCKS), default="results",
                        help="which of the README's generated blocks (default: results)")
    readme.add_argument("--readme", type=Path, default=Path("README.md"))
    readme.add_argument("--check", action="store_true", help="exit 1 if the README's block differs")

    _add_sensitivity(sub)
    noise = sub.add_parser("noise", help="accuracy vs narration relevance figure of the noise sweep")
    noise.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study's params.yaml")
    noise.add_argument(
        "--table",
        type=Path,
        required=True,
        help="tidy CSV (relevance, method, seed, dataset, accuracy, f1): written, or read with --from-table",
    )
    noise.add_argument("--from-table", action="store_true", help="plot an existing table, gather nothing")
    noise.add_argument("--root", type=Path, default=Path("."), help="project root the paths are relative to")
    noise.add_argument("--out", type=Path, required=True, help="PNG to write")
    noise.add_argument("--findings", type=Path, default=Path(layout.NOISE_FINDINGS),
                       help=f"the sweep's findings in numbers (default: {layout.NOISE_FINDINGS})")


def _add_sensitivity(sub: argparse._SubParsersAction) -> None:
    sens = sub.add_parser("sensitivity", help="protocol-sensitivity table and figure of the sweeps")
    sens.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study's params.yaml")
    sens.add_argument("--out", type=Path, default=Path(layout.PAPER), help="output folder")
    sens.add_argument("sweeps", nargs="+", type=Path, help="sensitivity.csv of each model's sweep")


def run(args: argparse.Namespace) -> int:
    from hecvl.paper import build as paper
    from hecvl.paper.collect import parse_rows
    from hecvl.study import Study

    if args.paper_command == "table":
        study = Study(load_params(args.params))
        table = paper.ablation_table(study, args.name, parse_rows(args.rows), args.out, args.root)
        print(f"ablation {args.name}: {table['label'].nunique()} settings, {len(table)} rows -> {args.out}")
    elif args.paper_command == "readme":
        from hecvl.paper.findings import refresh_readme

        if args.findings is None:
            args.findings = Path(README_BLOCKS[args.block])
        changed = refresh_readme(args.readme, args.findings, check=args.check, block=args.block)
        if args.check:
            state = "differs from" if changed else "matches"
            print(f"{args.readme}: {args.block} block {state} {args.findings}")
            return 1 if changed else 0
        state = "updated from" if changed else "already equals"
        print(f"{args.readme}: {args.block} block {state} {args.findings}")
    elif args.paper_command == "sensitivity":
        from hecvl.paper.protocol import data_description
        from hecvl.paper.sensitivity import write_sensitivity

        params = load_params(args.params)
        written = write_sensitivity(args.sweeps, args.out, params.study.datasets, data_description(params)[0])
        print(f"protocol sensitivity: {len(args.sweeps)} sweeps -> {', '.join(map(str, written))}")
    elif args.paper_command == "build":
        written = paper.build(load_params(args.params), args.out, args.root)
        print(f"paper: {len(written)} files -> {args.out}")
    else:
        from hecvl.paper.figures import noise_figure
        from hecvl.paper.findings import noise_findings_markdown

        study = Study(load_params(args.params))
        if not args.from_table:
            paper.write_noise_table(study, args.table, args.root)
        table = paper.read_noise_table(args.table)
        noise_figure(table, args.out)
        data = study.params.data
        synthetic = data.synthetic.narration_relevance if data.source == "synthetic" else None
        findings = noise_findings_markdown(table, study.datasets, study.main, study.baseline, synthetic)
        write_text(args.findings, findings)
        print(f"narration-noise figure -> {args.out}; findings -> {args.findings}")
    return 0
