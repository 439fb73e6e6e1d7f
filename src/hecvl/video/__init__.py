"""Video decoding and the frame cache: the layer every stage reads frames through.

`probe` / `open_video` decode with decord or PyAV (see `reader` for the time -> frame rule),
`FrameTransform` is the deterministic resize + centre crop, `FrameCache` stores a video's 1 fps
evaluation frames once, keyed by content hash and transform; the training frame store (`store`) keeps
each lecture's frames on a time grid in one `Pack` (raw or JPEG) that loader workers read at random.
"""

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
    "open_video",
    "probe",
    "sample_times",
]
