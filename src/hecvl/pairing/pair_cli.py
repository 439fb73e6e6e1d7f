"""`hecvl pair CORPUS --params params.yaml --out DIR`: the three pair manifests and their statistics.

Writes DIR/clip.parquet, DIR/phase.parquet, DIR/video.parquet (see `manifest.py`), DIR/stats.json and
DIR/stats.png. Re-running on the same corpus and rules gives byte-identical manifests.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hecvl.config import PairingRules, Params, load_params
from hecvl.errors import HecvlError
from hecvl.layout import PAIR_STATS, PAIR_STATS_FIGURE
from hecvl.pairing.build import build_pairs
from hecvl.pairing.derive import get_summariser
from hecvl.pairing.manifest import LEVELS, write_manifest
from hecvl.pairing.stats import build_stats, check_accounting, write_stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", type=Path, help="lecture corpus folder (one folder per lecture)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="parameter file")
    parser.add_argument("--variant", default=None, help="named variant of params.yaml (default: main)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for manifests and stats")
    parser.add_argument(
        "--derive",
        action="store_true",
        help="fill missing keystep titles / abstracts from the narrations (sets pairing.derive.enabled)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params).variant(args.variant)
    rules = params.pairing
    if args.derive:
        rules = rules.model_copy(update={"derive": rules.derive.model_copy(update={"enabled": True})})
    summarise = get_summariser(rules.derive, params) if rules.derive.enabled else None
    pairset = build_pairs(args.corpus, rules, summarise, progress=not args.no_progress)
    stats = build_stats(pairset.tally, pairset.tables, rules.to_dict(), str(args.corpus))
    bad = check_accounting(stats)
    if bad:  # a bug in the pairing code, not a data problem: never write inconsistent outputs
        raise RuntimeError("pairing lost track of segments: " + "; ".join(bad))
    for level in LEVELS:
        write_manifest(args.out, level, pairset.tables[level])
    write_stats(args.out, stats, pairset.tables)
    _track(params, rules, stats, args.out)
    for level in LEVELS:
        entry = stats["levels"][level]
        dropped = ", ".join(f"{r} {n}" for r, n in entry["dropped"].items()) or "none"
        print(f"{level}: {entry['pairs']} pairs from {entry['input']} (dropped: {dropped})")
    used, excluded = stats["lectures"].get("used", 0), len(stats["lectures"]["excluded"])
    print(f"lectures: {used} used, {excluded} excluded; see {args.out / PAIR_STATS}")
    if not used:
        raise HecvlError(f"no lecture could be paired (every lecture excluded: see {PAIR_STATS})",
                         args.corpus)
    return 0


def _track(params: Params, rules: PairingRules, stats: dict, out: Path) -> None:
    """One MLflow child run with the rules, the counts and the stats files."""
    from hecvl.tracking import experiment_name, mlflow_run

    metrics = {f"pairs_{lv}": stats["levels"][lv]["pairs"] for lv in LEVELS}
    metrics.update({f"dropped_{lv}": sum(stats["levels"][lv]["dropped"].values()) for lv in LEVELS})
    metrics["lectures_excluded"] = len(stats["lectures"]["excluded"])
    tags = {"stage": "pair", "rule": "pair"}
    with mlflow_run(
        experiment=experiment_name(params), run_name="pair", tags=tags, params={"pairing": rules.to_dict()}
    ) as run:
        run.log_metrics(metrics)
        run.log_artifact(out / PAIR_STATS)
        run.log_artifact(out / PAIR_STATS_FIGURE)
