"""H.264 MP4 writing that is byte-identical for identical frames.

PyAV's bundled libx264 with one thread (x264's threaded lookahead is the one source of nondeterminism),
a fixed GOP (keyframe at least every `gop` frames, so clip sampling can seek cheaply; or `gop="x264"`:
libx264's own default, a key frame at most every 250 frames and at scene cuts, as real uploads have) and
no variable metadata: FFmpeg's MP4 muxer only writes a creation time when asked to, so none is set here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np

from hecvl.errors import HecvlError
from hecvl.io import atomic_path

X264_GOP = "x264"  # `gop` value: leave the key-frame interval to libx264's defaults


def write_mp4(
    path: str | Path,
    pictures: Iterable[np.ndarray],
    fps: int,
    n_frames: int,
    repeat: int = 1,
    gop: int | str | None = None,
    crf: int = 26,
) -> int:
    """Encode `pictures` (uint8 RGB, all one size), each shown `repeat` frames, to exactly `n_frames` frames.

    `gop`: frames between key frames (None: 2 s), or "x264" for libx264's default interval. Returns the
    number of frames written. The file appears only when complete (atomic rename).
    """
    if gop == X264_GOP:
        keyint: dict[str, str] = {}  # libx264's defaults: keyint 250, min-keyint auto, scene cuts
    elif isinstance(gop, str):
        raise HecvlError(f"gop must be a number of frames or {X264_GOP!r}, got {gop!r}", path)
    else:
        frames = int(gop or 2 * fps)
        keyint = {"g": str(frames), "keyint_min": str(min(frames, max(1, fps)))}
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
                if keyint:
                    stream.codec_context.gop_size = int(keyint["g"])
                stream.codec_context.thread_count = 1
                stream.options = {"preset": "superfast", "crf": str(crf), "threads": "1", **keyint}
            # converted once per picture, not once per repeated frame (the encoder would convert each)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pic), format="rgb24")
            frame = frame.reformat(format="yuv420p")
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
