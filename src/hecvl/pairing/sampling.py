"""Frame sampling plans: which frame times a pair shows the model, fixed (validation) or random (training).

One module serves both the manifest (the fixed plan, written as frame times) and the training loader
(random plans drawn from a seeded generator), so the two can never disagree on the rule:
- clip level: a clip of `min_s`-`max_s` seconds inside the narration window (centred, of the mean
  length, when fixed; random length and position in training), a grid of `fps` frames per second over
  the clip, split into `frames` equal runs, one frame per run (the middle one, or a random one);
- phase and video levels: the span split into `frames` equal segments, one time per segment (the
  centre, or a uniform point in it): TSN-style segment sampling.
Times are rounded to the millisecond so manifests read cleanly and compare exactly.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-9


def clip_span(
    window_start: float,
    window_end: float,
    min_s: float,
    max_s: float,
    rng: np.random.Generator | None = None,
) -> tuple[float, float]:
    """The clip inside a narration window: centred mean length if `rng` is None, else random."""
    window = window_end - window_start
    if rng is None:
        length = min(window, 0.5 * (min_s + max_s))
        start = window_start + 0.5 * (window - length)
    else:
        hi = min(max_s, window)
        lo = min(min_s, hi)
        length = float(rng.uniform(lo, hi)) if hi > lo else hi
        start = window_start + float(rng.uniform(0.0, window - length)) if window > length else window_start
    return round(start, 3), round(start + length, 3)


def clip_times(
    start: float, end: float, fps: float, frames: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """`frames` times on the clip's `fps` grid: one per equal run of grid points (middle one, or random)."""
    count = max(int(np.floor((end - start) * fps + 1e-6)), 1)
    if count < frames:  # a clip shorter than frames/fps: fall back to even spacing inside it
        return segment_times(start, end, frames, rng)
    bounds = (np.arange(frames + 1) * count) // frames  # run j is grid points bounds[j] .. bounds[j+1]-1
    if rng is None:
        picks = ((2 * np.arange(frames) + 1) * count) // (2 * frames)
    else:
        picks = rng.integers(bounds[:-1], bounds[1:])
    return np.round(start + picks / fps, 3)


def segment_times(
    start: float, end: float, frames: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """`frames` times splitting [start, end) into equal segments: centres, or a uniform point in each."""
    width = (end - start) / frames
    offsets = np.full(frames, 0.5) if rng is None else rng.uniform(0.0, 1.0 - _EPS, size=frames)
    return np.round(start + (np.arange(frames) + offsets) * width, 3)


def clamp_times(times: np.ndarray, last_frame_s: float) -> np.ndarray:
    """Keep times inside the video: no time after its last frame (a span may end at the video's end)."""
    return np.clip(times, 0.0, max(last_frame_s, 0.0))
