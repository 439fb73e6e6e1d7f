"""Inputs of the benchmarks: the synthetic smoke world, its pair manifests and a tiny H.264 clip.

Not a benchmark (its name starts with `_`): the scripts beside it import it. Everything is made with
the project's own commands (`hecvl synth`, `hecvl pair`, `hecvl.synth.encode.write_mp4`), once per
folder: a world with a manifest.json or a pairs folder with its stats.json is reused, so
$HECVL_BENCH_SMOKE_DIR (what tests/test_benchmarks.py sets) lets every `--smoke` run share one world.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

SMOKE_DIR_ENV = "HECVL_BENCH_SMOKE_DIR"


def work_dir(tmp: Path) -> Path:
    """Where smoke inputs live: $HECVL_BENCH_SMOKE_DIR when set (shared between runs), else `tmp`."""
    shared = os.environ.get(SMOKE_DIR_ENV)
    return Path(shared) if shared else Path(tmp)


def smoke_world(work: Path, scale: float = 1.0) -> Path:
    """The root of the smoke world (`hecvl synth --preset smoke --seed 0`) in `work`, generated if absent."""
    from hecvl.cli import main

    world = Path(work) / f"world-smoke-x{scale:g}"
    if not (world / "manifest.json").is_file():  # generate_world writes the manifest last
        print(f"generating the smoke world in {world}", file=sys.stderr)
        argv = ["synth", "--preset", "smoke", "--seed", "0", "--scale", f"{scale:g}", "--out", str(world)]
        if main(argv):
            raise SystemExit(f"hecvl synth failed for {world}")
    return world


def pair_corpus(corpus: Path, out: Path) -> Path:
    """The pair manifests of `corpus` (`hecvl pair`, default rules, seed 0) in `out`, built if absent."""
    from hecvl.cli import main

    if not (out / "stats.json").is_file():
        os.environ.setdefault("HECVL_TRACKING", "off")  # a benchmark's pairing is no study run
        out.mkdir(parents=True, exist_ok=True)
        params = out.parent / f"{out.name}-params.yaml"
        params.write_text("seed: 0\n", encoding="utf-8")
        print(f"pairing {corpus} into {out}", file=sys.stderr)
        if main(["pair", str(corpus), "--params", str(params), "--out", str(out), "--no-progress"]):
            raise SystemExit(f"hecvl pair failed for {corpus}")
    return out


def tiny_clip(path: Path, seconds: int = 4, fps: int = 25, size: tuple[int, int] = (96, 160)) -> Path:
    """A real H.264 MP4 of `seconds` s: a gradient drifting one pixel per frame, so every frame differs."""
    from hecvl.synth.encode import write_mp4

    h, w = size
    ramp = (np.add.outer(np.arange(h), np.arange(w)) * 2 % 256).astype(np.uint8)
    n = seconds * fps
    pictures = (
        np.stack([np.roll(ramp, i, 1), np.roll(ramp, 2 * i, 0), np.full_like(ramp, 8 * (i % 32))], axis=-1)
        for i in range(n)
    )
    write_mp4(path, pictures, fps=fps, n_frames=n)
    return path
