"""`hecvl protocols`: the named evaluation protocols, and what each resolves to on the study's datasets.

    hecvl protocols                      one line per protocol: name, version, hash, title
    hecvl protocols NAME [--json]        its settings and sources, and its split per target dataset
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hecvl.config import load_params
from hecvl.evaluation.protocols import describe, protocols


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="show this protocol in full")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study's params.yaml")
    parser.add_argument("--json", action="store_true", help="print the resolved settings as JSON")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    names = [args.name] if args.name else list(protocols())
    resolved = {name: describe(name, params) for name in names}
    if args.json:
        print(json.dumps(resolved, indent=2, sort_keys=True))
        return 0
    for name, per_dataset in resolved.items():
        first = next(iter(per_dataset.values()))
        print(f"{name:<16} v{first['version']}  {first['hash']}  {first['title']}")
        if not args.name:
            continue
        print(f"  source: {first['source']}")
        for key, value in first["settings"].items():
            print(f"  {key}: {json.dumps(value, sort_keys=True)}")
        for dataset, record in per_dataset.items():
            fold = f", fold {record['applied']['fold']}" if record["applied"]["fold"] is not None else ""
            print(f"  {dataset}: split {record['applied']['split']}{fold}")
    return 0
