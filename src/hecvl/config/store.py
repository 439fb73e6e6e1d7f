"""`train.store:` the training frame store (`hecvl store build`), one pack of decoded frames per lecture.

Each lecture video is decoded once, on a fixed time grid, at the training decode size
(`frames.transform.size`) and kept as raw uint8 frames or JPEG; training samples read those frames
instead of decoding the MP4 (`hecvl.video.store`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeFloat, PositiveFloat

from hecvl.config.base import Section, reason


class FrameStoreSettings(Section):
    """What the store holds (grid, encoding) and where; the grid and the encoding change pixels."""

    enabled: bool = reason("false: decode every training sample from the MP4 at train time (slow)", True)
    fps: NonNegativeFloat = reason(
        "time grid of the stored frames; sample times round to it. 0 = the video's own rate (exactly the "
        "decoder's frames); a real corpus: 2 (the clip level's grid)", 0.0, allow_inf_nan=False)
    encoding: Literal["raw", "jpeg"] = reason(
        "raw: uint8 frames (691 KB per 360x640 frame; fastest, for the small CPU study); jpeg: about 47 KB "
        "per 360x640 frame, the paper's scale", "raw")
    quality: int = reason("JPEG quality (encoding jpeg only)", 90, ge=1, le=100)
    root: str = reason('folder of the store; "" = data/store (hecvl.layout.STORE)', "")
    max_gib: PositiveFloat = reason(
        "refuse to build a store bigger than this (GiB, 2**30 bytes): raw counted from the probed videos "
        "before building, jpeg from what is built", 8.0)
