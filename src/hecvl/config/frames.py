"""`frames:` the 1 fps evaluation frames, decoded once into the frame cache (`hecvl frames`).

Row i of a cached video is the frame at second i: frame round(i * video fps) (docs/method.md §5).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from hecvl.config.base import Section, check_crop, reason


class TransformSettings(Section):
    """Resize to exactly H x W (aspect ignored, as the paper), then a centre crop."""

    size: tuple[PositiveInt, PositiveInt] | None = reason(
        "H x W; the paper's 360x640 region scaled to the model's 64 px crop (paper, real data: [360, 640])",
        (103, 183))
    crop: PositiveInt | None = reason("centre crop, px (paper, real data: 224)", 64)
    resample: Literal["bilinear", "pil", "pil-bicubic"] = reason(
        "bilinear: swscale inside the decoder (fast); pil: PIL bilinear on full-size frames, as the authors' "
        "code; pil-bicubic: PIL bicubic (SurgCLIP)",
        "bilinear")

    @model_validator(mode="after")
    def _crop_fits(self) -> TransformSettings:
        check_crop(self.size, self.crop)
        return self


class FramesSettings(Section):
    fps: PositiveFloat = reason("evaluation sampling rate (paper: 1)", 1.0)
    transform: TransformSettings = Field(default_factory=TransformSettings)
    backend: Literal["pyav", "decord", "auto"] = reason(
        "pyav skips the B-frames nobody refers to at 1 fps: ~1.5x faster than decord (benchmarks/decode.py)",
        "pyav")
    cache: str = reason("keyed by the video's SHA-256 + transform + fps + backend", "data/frames/cache",
                        min_length=1)
