"""Acquire: produce the study's data, then register and verify it.

With `data.source: synthetic` the embedded world is generated (unless an identical one is already
there); with `data.source: local` nothing is generated and the user's copies of the real datasets
and lecture corpus, named in params.yaml, are checked. Either way every study dataset is verified
(each split video present, each label file readable and consistent with its video, checksums in a
`SHA256SUMS` file at a dataset's root verified when present) and the corpus is validated. The
inventory written at the end is what DVC versions and what MLflow runs are tagged with.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hecvl.config import Params, load_params
from hecvl.errors import HecvlError
from hecvl.io import sha256_file, write_json

log = logging.getLogger(__name__)
CHECKSUMS = "SHA256SUMS"


def read_checksums(path: Path) -> dict[str, str]:
    """`sha256sum` output (`<hex>  <relative path>` per line) as {relative path: hex}."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise HecvlError(f"line {n}: expected '<sha256>  <path>', got {line!r}", path)
        out[parts[1].lstrip("*").strip()] = parts[0].lower()
    return out


def verify_checksums(root: Path) -> int:
    """Verify every file listed in root/SHA256SUMS; returns how many were checked (0 without the file)."""
    listing = root / CHECKSUMS
    if not listing.is_file():
        return 0
    expected = read_checksums(listing)
    for rel, digest in tqdm(expected.items(), desc=f"checksums {root.name}", unit="file", disable=None):
        path = root / rel
        if not path.is_file():
            raise HecvlError(f"listed in {listing} but missing", path)
        if sha256_file(path) != digest:
            raise HecvlError(f"checksum mismatch (expected {digest[:12]}… from {listing})", path)
    return len(expected)


def register_dataset(name: str, params: Params) -> dict[str, Any]:
    """Check one target dataset end to end and describe it for the inventory."""
    from hecvl.datasets.registry import TargetDataset

    ds = TargetDataset.from_params(name, params)
    splits = ds.splits()
    label_files = ds.label_files()
    entry: dict[str, Any] = {"format": ds.fmt, "root": str(ds.root), "classes": ds.classes, "splits": {}}
    for split, videos in splits.items():
        missing = [v for v in videos if not ds.video_path(v).is_file()]
        if missing:
            first = ds.video_path(missing[0])
            raise HecvlError(f"dataset {name}, split {split}: {len(missing)} video(s) missing, e.g. {first}")
        unlabelled = [v for v in videos if v not in label_files]
        if unlabelled:
            raise HecvlError(f"dataset {name}, split {split}: no label file for video(s) {unlabelled[:5]}")
        labels = ds.labels(split)  # parses every label file and checks it against its video
        entry["splits"][split] = {
            "videos": list(videos),
            "seconds": len(labels),
            "label_sha256": {v: sha256_file(label_files[v]) for v in videos},
        }
    entry["checksums_verified"] = verify_checksums(ds.root)
    return entry


def register_corpus(corpus: Path) -> dict[str, Any]:
    """Validate the lecture corpus; any error stops the study before hours are spent on it.

    A downloaded corpus (one with `hecvl corpus download`'s manifest) has lectures whose video was
    unavailable: those are warnings (pairing leaves them out, the availability report counts them).
    """
    from hecvl.corpora.corpus_download import MANIFEST_FILE, counts, read_manifest
    from hecvl.corpora.validate import lecture_dirs, summary, validate_corpus

    downloaded = (corpus / MANIFEST_FILE).is_file()
    problems = validate_corpus(corpus, skip_missing_videos=downloaded)
    n = len(lecture_dirs(corpus)) if corpus.is_dir() else 0
    for p in problems:
        (log.error if p.severity == "error" else log.warning)("%s: %s: %s", p.lecture, p.path, p.message)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise HecvlError(f"lecture corpus has errors: {summary(problems, n)} (listed above)", corpus)
    entry = {"root": str(corpus), "lectures": n, "warnings": len(problems)}
    if downloaded:
        entry["downloads"] = counts(read_manifest(corpus))
    return entry


def acquire(params: Params, workers: int = 1) -> dict[str, Any]:
    """Generate (synthetic) or locate (local) the data, then verify it; returns the inventory."""
    data = params.data
    if data.source == "synthetic":
        from hecvl.synth.api import ensure_world

        syn = data.synthetic
        ensure_world(
            Path(data.root),
            preset=syn.preset,
            seed=syn.seed,
            scale=syn.scale,
            narration_relevance=syn.narration_relevance,
            workers=workers,
            lecture_video=syn.lecture_video.to_dict(),
        )
    datasets = params.study.datasets
    return {
        "source": data.source,
        "synthetic": data.synthetic.to_dict() if data.source == "synthetic" else None,
        "corpus": register_corpus(Path(data.corpus)),
        "datasets": {name: register_dataset(name, params) for name in datasets},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="the study's params.yaml")
    parser.add_argument("--out", required=True, help="inventory JSON to write (e.g. data/acquired.json)")
    parser.add_argument("--workers", type=int, default=1, help="processes for generating the synthetic world")


def run(args: argparse.Namespace) -> int:
    inventory = acquire(load_params(args.params), workers=args.workers)
    write_json(args.out, inventory)
    n = {k: sum(len(s["videos"]) for s in v["splits"].values()) for k, v in inventory["datasets"].items()}
    print(f"acquired: {inventory['corpus']['lectures']} lectures; videos per dataset: {n}")
    return 0
