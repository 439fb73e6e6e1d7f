"""H.264 MP4 writing that is byte-identical for identical frames.

PyAV's bundled libx264 with one thread (x264's threaded lookahead is the one source of nondeterminism),
a fixed GOP (keyframe at least every `gop` frames, so clip sampling can seek cheaply) and no variable
metadata: FFmpeg's MP4 muxer only writes a creation time when asked to, so none is set here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np

from hecvl.errors import HecvlError
from hecvl.io import atomic_path


def write_mp4(
    path: str | Path,
    pictures: Iterable[np.ndarray],
    fps: int,
    n_frames: int,
    repeat: int = 1,
    gop: int | None = None,
    crf: int = 26,
) -> int:
    """Encode `pictures` (uint8 RGB, all one size), each shown `repeat` frames, to exactly `n_frames` frames.

    Returns the number of frames written. The file appears only when complete (atomic rename).
    """
    gop = int(gop or 2 * fps)
    written = 0
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = None
        for pic in pictures:
            if stream is None:
                h, w = pic.shape[:2]
                if h % 2 or w % 2:
                    raise HecvlError(f"frame size {w}x{h} must be even for yuv420p", path)
                stream = container.add_stream("libx264", rate=int(fps))
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.codec_context.gop_size = gop
                stream.codec_context.thread_count = 1
                stream.options = {
                    "preset": "superfast",
                    "crf": str(crf),
                    "threads": "1",
                    "g": str(gop),
                    "keyint_min": str(min(gop, max(1, fps))),
                }
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pic), format="rgb24")
            for _ in range(repeat):
                if written >= n_frames:
                    break
                frame.pts = written
                for packet in stream.encode(frame):
                    container.mux(packet)
                written += 1
        if stream is None:
            raise HecvlError("no frames to encode", path)
        for packet in stream.encode():
            container.mux(packet)
    if written != n_frames:
        raise HecvlError(f"wrote {written} frames, expected {n_frames}", path)
    return written
