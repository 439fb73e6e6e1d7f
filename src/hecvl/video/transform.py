"""The deterministic part of the frame transform: exact resize, then centre crop.

The paper's evaluation transform is `Resize((360, 640))` (PIL bilinear, aspect ignored) followed
by `CenterCrop(224)`. Decoders can resize far faster than PIL inside swscale, while the frame is
still YUV, which is what `resample="bilinear"` does (swscale bilinear; it widens its filter when
shrinking, so it is antialiased like PIL's). The two differ by about one grey level on average.
Our own models are trained and evaluated through the decoder path; code that must match the
authors' preprocessing pixel for pixel (released weights) asks for `resample="pil"` (PIL bilinear) or
`resample="pil-bicubic"` (PIL bicubic, SurgCLIP's squash to 224). The method is part of `key()`, so
cache entries of different methods never mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLE_METHODS = ("bilinear", "pil", "pil-bicubic")
_PIL_FILTERS = {"pil": "BILINEAR", "pil-bicubic": "BICUBIC"}  # PIL resizes are antialiased


@dataclass(frozen=True)
class FrameTransform:
    """Resize to exactly `size` = (H, W) (None: keep the decoded size), then centre crop `crop` px square."""

    size: tuple[int, int] | None = None
    crop: int | None = None
    resample: str = "bilinear"

    def __post_init__(self) -> None:
        if self.size is not None:
            size = tuple(int(v) for v in self.size)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"size must be (height, width) with positive values, got {self.size!r}")
            object.__setattr__(self, "size", size)
        if self.crop is not None:
            if int(self.crop) < 1:
                raise ValueError(f"crop must be a positive number of pixels, got {self.crop!r}")
            object.__setattr__(self, "crop", int(self.crop))
            if self.size is not None and self.crop > min(self.size):
                raise ValueError(f"crop {self.crop} is larger than the resized frame {self.size}")
        if self.resample not in RESAMPLE_METHODS:
            raise ValueError(f"resample must be one of {RESAMPLE_METHODS}, got {self.resample!r}")

    def key(self) -> str:
        """A stable, file-name-safe string naming this transform, e.g. `360x640-bilinear-c224`."""
        parts = [f"{self.size[0]}x{self.size[1]}-{self.resample}" if self.size else "orig"]
        if self.crop:
            parts.append(f"c{self.crop}")
        return "-".join(parts)

    def to_dict(self) -> dict:
        return {"size": list(self.size) if self.size else None, "crop": self.crop, "resample": self.resample}

    @property
    def decoder_size(self) -> tuple[int, int] | None:
        """The (H, W) the decoder itself should scale to; None when frames come at full size."""
        return self.size if self.resample == "bilinear" else None

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) of the output for a source frame of `height` x `width`."""
        h, w = self.size if self.size else (height, width)
        if self.crop:
            if self.crop > min(h, w):
                raise ValueError(f"crop {self.crop} is larger than the frame {h}x{w}")
            return self.crop, self.crop
        return h, w

    def finish(self, frames: np.ndarray) -> np.ndarray:
        """Complete the transform on (N, h, w, 3) frames as they come from the decoder.

        Frames already at `decoder_size` are only cropped; full-size frames are resized with PIL first.
        """
        if self.size is not None and frames.shape[1:3] != self.size:
            frames = _pil_resize(frames, self.size, _PIL_FILTERS.get(self.resample, "BILINEAR"))
        if self.crop:
            top, left = centre_crop_origin(frames.shape[1], frames.shape[2], self.crop)
            frames = frames[:, top : top + self.crop, left : left + self.crop]
        return np.ascontiguousarray(frames)


def centre_crop_origin(height: int, width: int, crop: int) -> tuple[int, int]:
    """Top-left corner of a centred square crop, rounded exactly as torchvision's CenterCrop does."""
    if crop > min(height, width):
        raise ValueError(f"crop {crop} is larger than the frame {height}x{width}")
    return round((height - crop) / 2.0), round((width - crop) / 2.0)


def _pil_resize(frames: np.ndarray, size: tuple[int, int], method: str = "BILINEAR") -> np.ndarray:
    from PIL import Image

    h, w = size
    resample = Image.Resampling[method]
    out = np.empty((len(frames), h, w, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(frame).resize((w, h), resample))
    return out
