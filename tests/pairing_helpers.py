"""Tiny lecture corpora for the pairing tests: real H.264 videos (PyAV, libx264) whose frames say their index.

Frame i is split in two grey halves: left (i % 16) * 16 + 8, right (i // 16 % 16) * 16 + 8, so a decoded
frame (after any resize, before a crop that loses a half) tells which frame of the file it is (mod 256).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pandas as pd


def make_video(
    path: Path, seconds: float, fps: int = 10, size: tuple[int, int] = (64, 96), textured: bool = False
) -> Path:
    """An H.264 yuv420p MP4 with a key frame every second (`textured`: a fixed smooth pattern instead)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    texture = (127 + 60 * np.sin(xx / 3.0) + 60 * np.cos(yy / 4.0)).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"g": str(fps), "preset": "ultrafast", "crf": "10"}
        for i in range(round(seconds * fps)):
            img = np.empty((h, w, 3), np.uint8)
            img[:, : w // 2] = (i % 16) * 16 + 8
            img[:, w // 2 :] = (i // 16 % 16) * 16 + 8
            if textured:
                img[:] = texture[..., None]
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def frame_index(frame: np.ndarray) -> int:
    """The index a frame of `make_video` shows; `frame` is (H, W, 3) or (3, H, W) uint8."""
    arr = np.asarray(frame)
    if arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = arr.transpose(1, 2, 0)
    w = arr.shape[1]
    left = float(arr[:, : w // 2 - 2].mean())
    right = float(arr[:, w // 2 + 2 :].mean())
    return round((left - 8) / 16) + 16 * round((right - 8) / 16)


def make_lecture(
    root: Path,
    lecture_id: str,
    seconds: float = 20.0,
    narrations: Sequence[tuple[float, float, str]] = (),
    keysteps: Sequence[tuple] | None = None,
    abstract: str | None = None,
    meta: dict | None = None,
    video: bool = True,
) -> Path:
    """One lecture folder in the corpus format (narration.csv always; the rest when given)."""
    folder = root / lecture_id
    folder.mkdir(parents=True, exist_ok=True)
    if video:
        make_video(folder / "video.mp4", seconds)
    pd.DataFrame(list(narrations), columns=["start", "end", "text"]).to_csv(
        folder / "narration.csv", index=False
    )
    if keysteps is not None:
        cols = (
            ["start", "end", "step", "text"]
            if keysteps and len(keysteps[0]) == 4
            else ["start", "end", "step"]
        )
        pd.DataFrame(list(keysteps), columns=cols).to_csv(folder / "keysteps.csv", index=False)
    if abstract is not None:
        (folder / "abstract.txt").write_text(abstract, encoding="utf-8")
    if meta is not None:
        (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


GOOD_NARRATIONS = [
    (0.5, 4.5, "we open the peritoneum with the hook"),
    (5.0, 6.0, "now the grasper holds the gallbladder"),  # 1 s: extended to 3 s
    (7.0, 12.0, "the clip applier places two clips on the duct"),
    (12.5, 13.0, "okay"),  # too short a text
    (14.0, 19.0, "scissors divide the cystic duct between the clips"),
]
GOOD_KEYSTEPS = [
    (0.0, 6.5, "Dissection", "dissection of the triangle of calot"),
    (7.0, 13.0, "Clipping", ""),
    (14.0, 15.0, "Cutting", "too short to be a phase"),  # 1 s: shorter than a clip
    (15.0, 20.0, "Cutting", "division of the duct"),
]
ABSTRACT = "A laparoscopic cholecystectomy for symptomatic gallstones with dissection, clipping and cutting."


def small_corpus(root: Path) -> Path:
    """Three lectures: a clean one, one with messy transcripts and no abstract, one with a corrupt video."""
    make_lecture(
        root, "lec_a", 20.0, GOOD_NARRATIONS, GOOD_KEYSTEPS, ABSTRACT, {"procedure": "cholecystectomy"}
    )
    make_lecture(
        root,
        "lec_b",
        16.0,
        [
            (9.0, 12.0, "out of order narration about the stapler"),
            (1.0, 5.0, "the first narration of this lecture"),
            (4.0, 8.0, "this one overlaps the previous narration"),
            (5.0, 7.0, "this one lies inside the one before"),
            (14.0, 20.0, "this runs past the end of the video"),
            (17.0, 19.0, "this starts after the end of the video"),
        ],
        [(0.0, 8.0, "Opening", ""), (10.0, 16.0, "Stapling", "the stapler fires across the stomach")],
        None,
    )
    bad = make_lecture(root, "lec_c", 5.0, [(0.0, 4.0, "a lecture whose video is corrupt")], None, ABSTRACT)
    data = (bad / "video.mp4").read_bytes()
    (bad / "video.mp4").write_bytes(data[: len(data) // 3])
    return root


def run_pair(corpus: Path, out: Path, params: str = "seed: 0\n", *extra: str) -> int:
    """`hecvl pair CORPUS --params P --out OUT` in-process (no tracking), `params` written beside OUT."""
    import pytest

    from hecvl.cli import main

    path = out.parent / f"{out.name}.params.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(params)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HECVL_TRACKING", "off")
        return main(["pair", str(corpus), "--params", str(path), "--out", str(out), "--no-progress", *extra])
