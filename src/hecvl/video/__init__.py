"""Video decoding and the frame cache: the layer every stage reads frames through.

`probe` / `open_video` decode with decord or PyAV (see `reader` for the time -> frame rule),
`FrameTransform` is the deterministic resize + centre crop, `FrameCache` stores a video's 1 fps
evaluation frames once, keyed by content hash and transform.
"""

from hecvl.video.cache import FrameCache
from hecvl.video.reader import VideoInfo, VideoReader, frame_indices, open_video, probe, sample_times
from hecvl.video.transform import FrameTransform

__all__ = [
    "FrameCache",
    "FrameTransform",
    "VideoInfo",
    "VideoReader",
    "frame_indices",
    "open_video",
    "probe",
    "sample_times",
]
