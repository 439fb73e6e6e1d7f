"""Decode the frames a stage needs, and only those, through decord or PyAV.

Time -> frame rule (the one the 1 fps labels of method.md §5 use): the frame shown at time `t`
seconds is frame index `floor(t * fps + 0.5)` (round half up) of the video's frames in display
order, clamped to the last frame, where `fps` is the stream's average frame rate as stored in the
file. So second `i` is frame `round(i * fps)`: frame `25 * i` of a 25 fps Cholec80 video, the frame
labelled by row `i + 1` of an AutoLaparo file, the frame at `1000 * i` ms of MultiBypass140.
`sample(fps=f)` returns times `start_s + k / f` for every k whose time lies before the end of the
video, `duration_s = num_frames / fps`; at 1 fps that is seconds `0 .. ceil(num_frames / fps) - 1`.

Backends: `auto` is decord, falling back to PyAV for AV1, on platforms without decord (aarch64)
and for any file decord cannot open or decode. Both seek to the key frame before a wanted frame
only when that skips work, decode forward, convert only the wanted frames and resize them inside
swscale while still in YUV. PyAV also never feeds the decoder an H.264 picture that no other
picture refers to (nal_ref_idc 0) unless it is wanted: at 1 fps that skips most B-frames, which
makes it ~1.5x faster than decord there (benchmarks/decode.py), hence `frames.backend: pyav`.
The two give the same frames within rounding (their bundled FFmpeg builds resize differently by
under 0.1 grey level on average). Frame count, rate and size come from the file via PyAV (header,
or counted packets where the container stores no count), so both agree on what index means what.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from hecvl.errors import HecvlError, Issue
from hecvl.video.transform import FrameTransform

log = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi", ".mov")  # a video file's name ends so
CHUNK = 32  # frames converted per batch, at most CHUNK_BYTES of decoded frames: bounds memory
CHUNK_BYTES = 128 << 20
_DECORD_UNSUPPORTED = {"av1"}  # codecs decord's bundled FFmpeg cannot decode


@dataclass(frozen=True)
class VideoInfo:
    """What the file says about its video stream; `duration_s` = num_frames / fps by the time rule."""

    path: Path
    fps: float
    num_frames: int
    width: int
    height: int
    duration_s: float
    codec: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def frame_indices(times_s: Sequence[float] | np.ndarray, info: VideoInfo) -> np.ndarray:
    """Frame index shown at each time (the module's rule); times outside [0, duration) are an error."""
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    bad = (times < 0) | (times >= info.duration_s) | ~np.isfinite(times)
    if bad.any():
        raise ValueError(
            f"time {times[bad][0]!r} s is outside the video ({info.duration_s:.3f} s): {info.path}"
        )
    idx = np.floor(times * info.fps + 0.5).astype(np.int64)
    return np.minimum(idx, info.num_frames - 1)


def sample_times(
    info: VideoInfo, fps: float = 1.0, start_s: float = 0.0, end_s: float | None = None
) -> np.ndarray:
    """Times `start_s + k / fps` before min(end_s, duration); at 1 fps from 0: one per second with a frame."""
    if fps <= 0:
        raise ValueError(f"sampling rate must be positive, got {fps}")
    end = info.duration_s if end_s is None else min(float(end_s), info.duration_s)
    if end <= start_s:
        return np.zeros(0, dtype=np.float64)
    count = math.ceil((end - start_s) * fps - 1e-9)
    return start_s + np.arange(count, dtype=np.float64) / fps


class VideoReader:
    """One open video. Use `open_video`; close it (or use `with`) to free the decoder."""

    backend = "base"

    def __init__(self, info: VideoInfo) -> None:
        self.info = info
        self.path = info.path

    # -- public API -------------------------------------------------------------------------------
    def frames_at(
        self, times_s: Sequence[float] | np.ndarray, transform: FrameTransform | None = None
    ) -> np.ndarray:
        """RGB uint8 (N, H, W, 3) frames at the given times, in the order given."""
        transform = transform or FrameTransform()
        idx = frame_indices(times_s, self.info)
        unique, inverse = np.unique(idx, return_inverse=True)
        chunks = list(self._decode_checked(unique, transform))
        frames = np.concatenate(chunks) if chunks else self._empty(transform)
        inverse = inverse.reshape(-1)
        return frames if np.array_equal(inverse, np.arange(len(idx))) else frames[inverse]

    def sample(
        self,
        fps: float = 1.0,
        start_s: float = 0.0,
        end_s: float | None = None,
        transform: FrameTransform | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(times, frames) sampled at `fps` between `start_s` and `end_s` (default: the whole video)."""
        times = sample_times(self.info, fps, start_s, end_s)
        return times, self.frames_at(times, transform)

    def iter_frames(
        self, times_s: Sequence[float] | np.ndarray, transform: FrameTransform | None = None
    ) -> Iterator[np.ndarray]:
        """The frames at non-decreasing `times_s`, yielded in chunks, so long videos never sit in memory."""
        transform = transform or FrameTransform()
        idx = frame_indices(times_s, self.info)
        if np.any(np.diff(idx) < 0):
            raise ValueError("iter_frames needs non-decreasing times; use frames_at for any order")
        unique, counts = np.unique(idx, return_counts=True)
        pos = 0
        for chunk in self._decode_checked(unique, transform):
            n = len(chunk)
            yield chunk if np.all(counts[pos : pos + n] == 1) else np.repeat(chunk, counts[pos : pos + n], 0)
            pos += n

    def output_shape(self, transform: FrameTransform | None) -> tuple[int, int]:
        return (transform or FrameTransform()).output_shape(self.info.height, self.info.width)

    def close(self) -> None:
        """Free the decoder; the reader cannot be used afterwards."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- backend hooks ----------------------------------------------------------------------------
    def _decode(self, indices: np.ndarray, transform: FrameTransform) -> Iterator[np.ndarray]:
        """Yield the frames at sorted unique `indices`, transformed, in order, in chunks."""
        raise NotImplementedError

    def _decode_checked(self, indices: np.ndarray, transform: FrameTransform) -> Iterator[np.ndarray]:
        shape = self.output_shape(transform)  # validates the crop against the frame size first
        if len(indices) == 0:
            return
        done = 0
        for chunk in self._decode(indices, transform):
            if chunk.shape[1:] != (*shape, 3) or chunk.dtype != np.uint8:
                raise HecvlError(f"{self.backend} returned frames of shape {chunk.shape[1:]}", self.path)
            done += len(chunk)
            yield chunk
        if done != len(indices):
            problem = f"video is truncated or corrupt: decoded only {done} of {len(indices)} frames asked for"
            raise HecvlError(problem, self.path)

    def _chunk_len(self, transform: FrameTransform) -> int:
        h, w = transform.decoder_size or (self.info.height, self.info.width)
        return max(1, min(CHUNK, CHUNK_BYTES // (h * w * 3)))

    def _empty(self, transform: FrameTransform) -> np.ndarray:
        return np.zeros((0, *self.output_shape(transform), 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------
# PyAV


class PyAVReader(VideoReader):
    """FFmpeg through PyAV: any codec FFmpeg knows, on any platform with a PyAV wheel."""

    backend = "pyav"

    def __init__(self, info: VideoInfo) -> None:
        super().__init__(info)
        self._container = _open_container(info.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # frame + slice threads
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._index: _PacketIndex | None = None
        self._droppable = _h264_nonref_test(self._stream)
        self._wanted: set[int] = set()

    def close(self) -> None:
        self._container.close()

    def _decode(self, indices: np.ndarray, transform: FrameTransform) -> Iterator[np.ndarray]:
        try:
            yield from self._decode_frames(indices, transform)
        except av.error.FFmpegError as exc:
            raise HecvlError(f"cannot decode video (corrupt or truncated?): {exc}", self.path) from None

    def _decode_frames(self, indices: np.ndarray, transform: FrameTransform) -> Iterator[np.ndarray]:
        index = self._packet_index()
        if index.pts is None:  # no usable timestamps: decode from the start, counting frames
            yield from self._decode_sequential(indices, transform)
            return
        if indices[-1] >= len(index.pts):
            raise HecvlError(
                f"video is truncated or corrupt: the header promises {self.info.num_frames} frames "
                f"but only {len(index.pts)} can be read",
                self.path,
            )
        self._wanted = {index.pts[i] for i in indices}
        chunk_len = self._chunk_len(transform)
        buf: list[np.ndarray] = []
        frames = None  # the decoder's output since the last seek
        last_pts = None  # pts of the last frame taken from it
        for i in indices:
            target = index.pts[i]
            key = index.keyframe_before(target)
            if frames is None or last_pts is None or key > last_pts:
                frames = self._frames_from(key)  # seeking skips decoding everything in between
            for frame in frames:
                if frame.pts is None or frame.pts < target:
                    continue  # decoded (needed as a reference) but not converted
                last_pts = frame.pts
                buf.append(self._convert(frame, transform))
                break
            else:
                raise HecvlError(
                    f"video is truncated or corrupt: frame {i} (of {self.info.num_frames}) cannot be decoded",
                    self.path,
                )
            if len(buf) == chunk_len:
                yield transform.finish(np.stack(buf))
                buf = []
        if buf:
            yield transform.finish(np.stack(buf))

    def _frames_from(self, key_pts: int) -> Iterator[av.VideoFrame]:
        self._container.seek(key_pts, stream=self._stream, backward=True, any_frame=False)
        droppable, wanted = self._droppable, self._wanted
        for packet in self._container.demux(self._stream):
            if droppable and packet.size and packet.pts not in wanted and droppable(memoryview(packet)):
                continue  # a picture nothing refers to and nobody asked for: never decoded
            yield from packet.decode()

    def _decode_sequential(self, indices: np.ndarray, transform: FrameTransform) -> Iterator[np.ndarray]:
        self._reopen()  # streams without timestamps often cannot seek either: start afresh
        wanted = iter(indices.tolist())
        want = next(wanted)
        chunk_len = self._chunk_len(transform)
        buf: list[np.ndarray] = []
        for n, frame in enumerate(self._container.decode(self._stream)):
            if n != want:
                continue
            buf.append(self._convert(frame, transform))
            if len(buf) == chunk_len:
                yield transform.finish(np.stack(buf))
                buf = []
            want = next(wanted, None)
            if want is None:
                break
        if buf:
            yield transform.finish(np.stack(buf))

    def _reopen(self) -> None:
        self._container.close()
        self._container = _open_container(self.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"

    def _convert(self, frame: av.VideoFrame, transform: FrameTransform) -> np.ndarray:
        size = transform.decoder_size
        h, w = size if size else (None, None)
        return self._reformatter.reformat(
            frame, width=w, height=h, format="rgb24", interpolation="BILINEAR"
        ).to_ndarray()

    def _packet_index(self) -> _PacketIndex:
        if self._index is None:
            self._index = _PacketIndex.build(self._container, self._stream)
        return self._index


def _h264_nonref_test(stream: av.video.VideoStream) -> Any:
    """For H.264 in MP4/MKV (length-prefixed NAL units), a test for packets no other frame refers to.

    A picture whose slices all have nal_ref_idc 0 is never used for prediction, so skipping it
    changes no other frame; at 1 fps that spares most B-frames. Other codecs get None (decode all).
    """
    extradata = stream.codec_context.extradata
    if stream.codec_context.codec.canonical_name != "h264" or not extradata or extradata[0] != 1:
        return None
    if len(extradata) < 5:
        return None
    width = (extradata[4] & 3) + 1  # bytes of each NAL unit's length prefix

    def is_nonref(data: memoryview) -> bool:
        pos, end, slices = 0, len(data), 0
        while pos + width < end:
            header = data[pos + width]
            if header & 0x1F in (1, 5):  # a coded slice (5: IDR)
                if header & 0x60:
                    return False
                slices += 1
            pos += width + int.from_bytes(data[pos : pos + width], "big")
        return slices > 0

    return is_nonref


@dataclass
class _PacketIndex:
    """Display-order timestamps of every frame and the key frames, read without decoding anything."""

    pts: list[int] | None  # sorted; None when the container gives packets without timestamps
    keyframes: list[int]

    @classmethod
    def build(cls, container: av.container.InputContainer, stream: av.video.VideoStream) -> _PacketIndex:
        pts: list[int] = []
        keys: list[int] = []
        usable = True
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    usable = False
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except av.error.FFmpegError as exc:  # a truncated file: index what can be read
            log.debug("indexing stopped early: %s", exc)
        if not usable or not keys:
            return cls(pts=None, keyframes=[])
        return cls(pts=sorted(pts), keyframes=sorted(keys))

    def keyframe_before(self, pts: int) -> int:
        i = bisect.bisect_right(self.keyframes, pts) - 1
        return self.keyframes[max(i, 0)]


# ---------------------------------------------------------------------------------------------------
# decord


class DecordReader(VideoReader):
    """decord: batch decoding with decode-time resize. With `fallback`, errors hand over to PyAV."""

    backend = "decord"

    def __init__(self, info: VideoInfo, fallback: bool = False) -> None:
        super().__init__(info)
        self._fallback = fallback
        self._readers: dict[tuple[int, int] | None, Any] = {}
        self._pyav: PyAVReader | None = None

    def close(self) -> None:
        self._readers.clear()
        if self._pyav is not None:
            self._pyav.close()

    def _decode(self, indices: np.ndarray, transform: FrameTransform) -> Iterator[np.ndarray]:
        from decord import DECORDError

        pos, chunk_len = 0, self._chunk_len(transform)
        while pos < len(indices):
            if self._pyav is not None:
                yield from self._pyav._decode(indices[pos:], transform)
                return
            chunk = indices[pos : pos + chunk_len]
            try:
                reader = self._reader(transform.decoder_size)
                frames = reader.get_batch(chunk.tolist()).asnumpy()
            except (DECORDError, RuntimeError) as exc:
                self._give_up(exc)
                continue
            pos += len(chunk)
            yield transform.finish(frames)

    def _reader(self, size: tuple[int, int] | None) -> Any:
        if size not in self._readers:
            import decord

            kwargs = {"width": size[1], "height": size[0]} if size else {}
            reader = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=0, **kwargs)
            if len(reader) != self.info.num_frames:
                raise RuntimeError(f"decord counts {len(reader)} frames, the header {self.info.num_frames}")
            self._readers[size] = reader
        return self._readers[size]

    def _give_up(self, exc: Exception) -> None:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        message = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", lines[-1])  # drop decord's "[time] file:line: "
        if not self._fallback:
            problem = f"decord cannot read this video (corrupt, truncated or unsupported): {message}"
            raise HecvlError(problem, self.path) from None
        log.warning("%s: decord failed (%s); decoding with PyAV instead", self.path, message)
        self._readers.clear()
        self._pyav = PyAVReader(self.info)
        self.backend = "pyav"  # what decodes from now on (recorded in cache sidecars)


# ---------------------------------------------------------------------------------------------------


def probe(path: str | Path) -> VideoInfo:
    """Frame rate, frame count and size of the first video stream, from the file itself."""
    path = Path(path)
    container = _open_container(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise HecvlError("cannot determine the frame rate of the video stream", path)
        count = stream.frames or _count_packets(container, stream, path)
        if count <= 0:
            raise HecvlError("the video stream has no frames", path)
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise HecvlError("the video stream has no frame size", path)
        fps = float(rate)
        return VideoInfo(
            path=path,
            fps=fps,
            num_frames=int(count),
            width=int(width),
            height=int(height),
            duration_s=count / fps,
            codec=stream.codec_context.codec.canonical_name,
        )
    finally:
        container.close()



def probe_video(path: str | Path) -> tuple[VideoInfo | None, list[Issue]]:
    """The video's probe info, or None and the one issue that says why it cannot be read (for checkers
    that list every problem of a corpus or dataset instead of stopping at the first)."""
    try:
        return probe(path), []
    except Exception as exc:  # any decoder failure is one reportable problem, not a crash
        reason = exc.message if isinstance(exc, HecvlError) else f"{type(exc).__name__}: {exc}"
        return None, [("error", f"cannot read the video: {reason}")]

def open_video(path: str | Path, backend: str = "auto") -> VideoReader:
    """Open a video for decoding. `auto`: decord where it can read the file, otherwise PyAV."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    info = probe(path)
    if backend == "pyav":
        return PyAVReader(info)
    if backend == "decord":
        if not decord_available():
            raise HecvlError("the decord backend is not installed on this platform (use pyav)", path)
        return DecordReader(info)
    if decord_available() and info.codec not in _DECORD_UNSUPPORTED:
        return DecordReader(info, fallback=True)
    return PyAVReader(info)


def decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def _open_container(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise HecvlError("video file not found", path)
    if not path.is_file():
        raise HecvlError("not a file (expected a video)", path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        problem = f"not a readable video (corrupt, truncated or not a video): {reason}"
        raise HecvlError(problem, path) from None
    if not container.streams.video:
        container.close()
        raise HecvlError("the file has no video stream", path)
    return container


def _count_packets(container: av.container.InputContainer, stream: av.video.VideoStream, path: Path) -> int:
    """Frame count for containers that do not store it (WebM, MKV): one packet per frame."""
    try:
        count = sum(1 for packet in container.demux(stream) if packet.size and not packet.is_discard)
    except av.error.FFmpegError as exc:
        raise HecvlError(f"cannot read the video stream: {exc}", path) from None
    return count
