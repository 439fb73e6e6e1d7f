"""`hecvl params`: the resolved configuration, its JSON schema, and the file the DAG's jobs read.

    hecvl params show [--params params.yaml] [--preset P] [--variant V] [--config FILE ...]
    hecvl params schema [--out workflow/schemas/params.schema.json] [--check]
    hecvl params resolve [--params params.yaml] [--config FILE ...] --out results/config/study.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hecvl.config.params import Params
from hecvl.config.resolve import resolve_invocation
from hecvl.config.write import dump, write_resolved
from hecvl.errors import HecvlError

SCHEMA = Path("workflow/schemas/params.schema.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="params_command", metavar="ACTION", required=True)
    for name, text in (("show", "print the resolved configuration (YAML)"),
                       ("resolve", "write the resolved configuration that jobs read")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--params", type=Path, default=Path("params.yaml"), help="parameter file")
        p.add_argument("--config", type=Path, action="append", default=[],
                       help="override file merged on top (as snakemake --configfile); repeatable")
        p.add_argument("--preset", help="preset to apply instead of the file's `preset:`")
        if name == "show":
            p.add_argument("--variant", help="apply this variant's overrides too")
        else:
            p.add_argument("--out", type=Path, required=True, help="resolved YAML to write")
    schema = sub.add_parser("schema", help="write (or --check) the JSON schema generated from the models")
    schema.add_argument("--out", type=Path, default=SCHEMA, help=f"schema file (default: {SCHEMA})")
    schema.add_argument("--check", action="store_true", help="exit 1 when the file differs from the models")


def schema_text() -> str:
    """The JSON schema of params.yaml, generated from the typed models (descriptions = the reasons)."""
    schema = Params.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hecvl params.yaml"
    return json.dumps(schema, indent=1, sort_keys=True) + "\n"


def _resolved(args: argparse.Namespace):
    """As Snakemake resolves it: --config files as its --configfile, --preset as `--config preset=P`."""
    return resolve_invocation(args.params, args.config, {"preset": args.preset} if args.preset else None)


def run(args: argparse.Namespace) -> int:
    if args.params_command == "schema":
        text = schema_text()
        if args.check:
            if not args.out.is_file() or args.out.read_text(encoding="utf-8") != text:
                print(f"{args.out} differs from the models: run `hecvl params schema`", file=sys.stderr)
                return 1
            print(f"{args.out} matches the models")
            return 0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
        return 0
    params = _resolved(args)
    if args.params_command == "show":
        if args.variant:
            params = params.variant(args.variant)
        sys.stdout.write(dump(params, f"resolved from {args.params}, preset {params.preset}"))
        return 0
    if args.params_command == "resolve":
        write_resolved(params, args.out, f"resolved from {args.params}, preset {params.preset}")
        print(f"resolved configuration -> {args.out}")
        return 0
    raise HecvlError(f"unknown action {args.params_command!r}")
