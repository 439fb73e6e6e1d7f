"""A tiny dataset in the published Cholec80 layout (H.264 videos, `videoNN-phase.txt`, splits.json), for
the evaluation tests: each second of a video shows one phase, drawn by the test's own `draw` function."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import av
import numpy as np

PHASES = [
    "Preparation",
    "CalotTriangleDissection",
    "ClippingCutting",
    "GallbladderDissection",
    "GallbladderPackaging",
    "CleaningCoagulation",
    "GallbladderRetraction",
]
FPS = 5

Draw = Callable[[int, np.random.Generator, int, int], np.ndarray]  # (phase, rng, h, w) -> uint8 (h, w, 3)


def write_video(path: Path, phases: list[int], seed: int, draw: Draw, h: int, w: int) -> None:
    """An H.264 video at FPS frames per second, second k showing phase `phases[k]`."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"g": str(FPS), "crf": "18"}
        for p in phases:
            for _ in range(FPS):
                frame = av.VideoFrame.from_ndarray(draw(p, rng, h, w), format="rgb24")
                for pkt in stream.encode(frame):
                    container.mux(pkt)
        for pkt in stream.encode():
            container.mux(pkt)


def write_cholec80(
    ds: Path, videos: Mapping[str, list[int]], splits: Mapping[str, list[str]], draw: Draw, h: int, w: int
) -> dict:
    """Videos, per-frame phase annotations and splits under `ds`; returns its `data.targets` entry."""
    for i, (video, phases) in enumerate(videos.items()):
        write_video(ds / "videos" / f"{video}.mp4", phases, seed=i, draw=draw, h=h, w=w)
        lines = ["Frame\tPhase"] + [f"{k}\t{PHASES[phases[k // FPS]]}" for k in range(len(phases) * FPS)]
        (ds / "phase_annotations").mkdir(parents=True, exist_ok=True)
        (ds / "phase_annotations" / f"{video}-phase.txt").write_text("\n".join(lines) + "\n")
    (ds / "splits.json").write_text(json.dumps(dict(splits)))
    return {
        "format": "cholec80",
        "root": str(ds),
        "videos": "videos/{video}.mp4",
        "labels": "phase_annotations",
        "splits": "splits.json",
    }


def gradient(p: int, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth gradients shifted by the phase: resampling differences between transforms show up."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 2 + 40 * p, yy * 2, (xx + yy + 60 * p)], axis=-1)
    return np.clip(base + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def small_model_params(root: Path, name: str, target: dict) -> dict:
    """A study of one target, `tiny`, scored by a small ResNet at 32 px, with caches under `root`."""
    return {
        "seed": 0,
        "study": {"name": name},
        "data": {"targets": {"tiny": target}},
        "frames": {"cache": str(root / "frames"), "transform": {"size": [48, 64], "crop": 32}},
        "model": {"visual": {"preset": "small", "image_size": 32}, "heads": {"dim": 32}},
        "eval": {"cache": str(root / "emb"), "batch_size": 8},
    }
