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
