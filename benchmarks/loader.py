"""Clip-level loader throughput against the raw decode rate of the same frames.

Measures clips per second of `PairDataset("clip")` through `make_loader` with 0, 1 and 2 workers, and
of a plain decode loop over the same clips and frame times (one `hecvl.video` reader per video, the
same resize and crop, no Dataset, no DataLoader), in one run. Validation mode is used so both decode
exactly the same frames. The target: the loader with 2 workers within 1.5x of the raw rate
(raw / loader <= 1.5). The last line printed is one JSON object.

    .venv/bin/python benchmarks/loader.py                       # generates and pairs the smoke world
    .venv/bin/python benchmarks/loader.py --corpus data/world/corpus --pairs data/pairs --clips 256
    .venv/bin/python benchmarks/loader.py --smoke               # seconds: smoke world at scale 1, 16 clips
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _prepare(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path]:
    """The corpus and its pair manifests: as given, or the smoke world generated and paired here."""
    from _smoke import pair_corpus, smoke_world, work_dir

    os.environ.setdefault("HECVL_TRACKING", "off")
    corpus, pairs, work = args.corpus, args.pairs, tmp
    if corpus is None:
        work = work_dir(tmp) if args.smoke else tmp  # --smoke may share one generated world
        corpus = smoke_world(work, args.scale) / "corpus"
    if pairs is None or not (pairs / "clip.parquet").is_file():
        pairs = pair_corpus(corpus, pairs or work / f"pairs-{corpus.parent.name}")
    return corpus, pairs


def raw_decode(
    rows: list[dict], corpus: Path, size: tuple[int, int], crop: int | None, backend: str
) -> float:
    """Clips per second of a bare decode loop over the same frames (readers kept open per video)."""
    from hecvl.video import FrameTransform, open_video
    from hecvl.video.transform import centre_crop_origin

    transform = FrameTransform(size=size)
    readers: dict[str, object] = {}
    start = time.perf_counter()
    for row in rows:
        reader = readers.get(row["video"])
        if reader is None:
            reader = readers[row["video"]] = open_video(corpus / row["video"], backend=backend)
        info = reader.info
        times = np.clip(np.asarray(row["frame_times"]), 0.0, (info.num_frames - 1) / info.fps)
        frames = reader.frames_at(times, transform)
        if crop:
            top, left = centre_crop_origin(frames.shape[1], frames.shape[2], crop)
            frames = np.ascontiguousarray(frames[:, top : top + crop, left : left + crop])
    elapsed = time.perf_counter() - start
    for reader in readers.values():
        reader.close()
    return len(rows) / elapsed


def loader_rate(dataset: object, workers: int, batch_size: int) -> float:
    """Clips per second through make_loader, worker start-up included."""
    from hecvl.pairing.datasets import make_loader

    start = time.perf_counter()
    loader = make_loader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False)
    count = sum(len(batch["pair_id"]) for batch in loader)
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="lecture corpus (default: generate the smoke world)")
    parser.add_argument("--pairs", type=Path, help="pair manifests of the corpus (default: pair it here)")
    parser.add_argument("--scale", type=float, default=8.0, help="--scale of the generated smoke world")
    parser.add_argument("--clips", type=int, default=256, help="clips measured (the first N of the manifest)")
    parser.add_argument("--size", type=int, nargs=2, default=[72, 96], metavar=("H", "W"))
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--backend", default="auto", choices=["auto", "decord", "pyav"])
    parser.add_argument("--repeats", type=int, default=2, help="best of N timings per setting")
    parser.add_argument("--smoke", action="store_true", help="a check in seconds: 16 clips, 1 repeat")
    args = parser.parse_args(argv)
    if args.smoke:
        args.scale, args.clips, args.repeats = 1.0, min(args.clips, 16), 1

    from hecvl.pairing.datasets import PairDataset
    from hecvl.pairing.manifest import read_manifest

    with tempfile.TemporaryDirectory(prefix="hecvl-loader-bench-") as tmp:
        corpus, pairs = _prepare(args, Path(tmp))
        rows = read_manifest(pairs, "clip").to_pylist()[: args.clips]
        size, crop = tuple(args.size), args.crop
        dataset = PairDataset(
            pairs,
            "clip",
            corpus,
            size=size,
            crop=crop,
            backend=args.backend,
            pair_ids={r["pair_id"] for r in rows},
        )
        raw = max(raw_decode(rows, corpus, size, crop, args.backend) for _ in range(args.repeats))
        print(f"raw decode: {raw:.1f} clips/s", file=sys.stderr)
        rates = {}
        for workers in (0, 1, 2):
            rates[str(workers)] = max(
                loader_rate(dataset, workers, args.batch_size) for _ in range(args.repeats)
            )
            print(f"loader, {workers} workers: {rates[str(workers)]:.1f} clips/s", file=sys.stderr)
    ratio = raw / rates["2"]
    result = {
        "benchmark": "loader",
        "smoke": args.smoke,
        "clips": len(rows),
        "frames_per_clip": int(rows[0]["frames"]) if rows else 0,
        "videos": len({r["video"] for r in rows}),
        "size": list(size),
        "crop": crop,
        "backend": args.backend,
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "raw_clips_per_s": round(raw, 2),
        "loader_clips_per_s": {k: round(v, 2) for k, v in rates.items()},
        "raw_over_loader_2_workers": round(ratio, 3),
        "target": 1.5,
        "pass": bool(ratio <= 1.5),
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
