"""Video decoding and the frame cache: the layer every stage reads frames through.

`probe` / `open_video` decode with decord or PyAV (see `reader` for the time -> frame rule),
`FrameTransform` is the deterministic resize + centre crop, `FrameCache` stores a video's 1 fps
evaluation frames once, keyed by content hash and transform; the training frame store (`store`) keeps
each lecture's frames on a time grid in one `Pack` (raw or JPEG) that loader workers read at random.
"""

from hecvl.config.frames import FramesSettings, TransformSettings
from hecvl.video.cache import FrameCache
from hecvl.video.reader import VideoInfo, VideoReader, frame_indices, open_video, probe, sample_times
from hecvl.video.store import Pack, SizeGuard, StoreSettings, build_pack, ensure_pack
from hecvl.video.transform import FrameTransform

__all__ = [
    "FrameCache",
    "FrameTransform",
    "Pack",
    "SizeGuard",
    "StoreSettings",
    "VideoInfo",
    "VideoReader",
    "build_pack",
    "ensure_pack",
    "frame_indices",
    "frames_setup",
    "frames_transform",
    "open_video",
    "probe",
    "sample_times",
]


def frames_transform(settings: TransformSettings) -> FrameTransform:
    """The resize + crop `frames.transform` describes (the config holds values; the video layer builds)."""
    return FrameTransform(size=settings.size, crop=settings.crop, resample=settings.resample)


def frames_setup(settings: FramesSettings) -> tuple[FrameCache, FrameTransform, float]:
    """(cache, transform, fps) of `frames:`, as the frames and evaluation stages use them."""
    cache = FrameCache(settings.cache, backend=settings.backend)
    return cache, frames_transform(settings.transform), settings.fps
