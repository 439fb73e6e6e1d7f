"""The training frame store: each lecture decoded once into one random-access pack of frames.

Training samples a few frames at random times of many long videos; decoding them from the MP4 costs far
more than the step that uses them (1.4-4.6 frames per CPU-second on 720p lectures). The store decodes
each lecture once, sequentially, on a fixed time grid, at the training decode size, and keeps every frame
of that grid in a pack that a loader worker reads at random:

    ROOT/<key>/<lecture>.pack   the frames one after another: raw uint8 (H, W, 3) bytes, or JPEG files
    ROOT/<key>/<lecture>.json   sidecar, written last: format, settings, source (name, size, SHA-256,
                                VideoInfo), grid rate, frame count and shape, the index (offset, length,
                                crc32 of every frame), the pack's size and SHA-256, the row -> time rule

`key` (`StoreSettings.key()`) names every setting that changes the stored pixels, so stores of other
settings never mix. Two encodings of the same store:
- `raw`: exactly the frames `FrameCache.get(video, FrameTransform(size=size), fps=rate)` holds (the
  same decoder, grid and resize), so the CPU study's numbers do not move; 691 KB per 360x640 frame;
- `jpeg`: libjpeg-turbo (simplejpeg) at `quality`, 4:2:0 chroma (the H.264 source is 4:2:0 already;
  4:4:4 costs 24 % more bytes and decodes 1.4x slower for +1.3 dB), about 47 KB per 360x640 frame of real
  laparoscopic video: the paper's 300 h at 2 fps fit in about 100 GB. Decoded with libjpeg-turbo's fast
  integer IDCT and fast chroma upsampling (`JPEG_DECODE`): 1.4x the accurate decode's rate (1,075 against
  765 frames per CPU-second on a real 360x640 clip) for 1.2 dB (40.7 against 41.9 dB PSNR to the raw
  frame), which keeps one loader worker above the 800 frames per CPU-second a GPU needs from it. Both are
  integer arithmetic: the same library gives the same pixels on every machine.

Grid and reading rule (the raw frame cache's, `CachedReader`): row i is the frame at time i / fps (frame
`round(i * video_fps / fps)`, the `reader` rule); a sample time t reads row
`rint(frame_indices(t) * fps / video_fps)`, clipped to the last row. At the video's own rate (fps 0) that
is exactly the frame the decoder returns for t; a lower rate rounds sample times to its grid.

Decoding: `VideoReader.iter_frames` over the grid, in chunks of at most 32 frames (128 MB), so memory
stays bounded. It asks the backend for the sorted unique frame indices: PyAV seeks forward to a key frame
only when the next wanted frame lies past it (whole GOPs the grid misses are never decoded), converts and
resizes only the wanted frames, and never feeds the decoder an H.264 picture nothing refers to unless it
is wanted (at 2 fps of 25 fps video most B-frames); decord decodes batches of the sorted indices in file
order. Either way each lecture is read once, front to back.

Integrity: a pack shorter or longer than its sidecar says is refused on open ("truncated: N of M bytes");
every frame read is checked against its crc32, so an altered frame is an error naming the pack and the
frame, never wrong pixels; `verify` checks the whole pack's SHA-256. Writes are atomic (a temporary file
renamed into place, the sidecar last; a rebuild first removes the old sidecar), so a killed or refused
build leaves no pack that reads as valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hecvl.errors import HecvlError
from hecvl.io import atomic_path, read_json, sha256_file, write_json
from hecvl.video.reader import BACKENDS, VideoInfo, frame_indices, open_video, probe, sample_times
from hecvl.video.transform import FrameTransform

log = logging.getLogger(__name__)

FORMAT = "hecvl-frame-store/1"
ENCODINGS = ("raw", "jpeg")
JPEG_SUBSAMPLING = "420"  # chroma of the stored JPEGs (part of the recorded settings)
JPEG_DECODE = {"fastdct": True, "fastupsample": True}  # how training reads them (module docstring)
GIB = 2**30
MAX_OPEN = 256  # pack files kept open per process
_MISSING = "frame store pack not found (its sidecar exists): rebuild it with `hecvl store build`"
ROW_TIME = (
    "row i is the frame at time i / grid_fps seconds: frame index round(i * video_fps / grid_fps); "
    "a time t reads row rint(frame_indices(t) * grid_fps / video_fps), at most the last row"
)


@dataclass(frozen=True)
class StoreSettings:
    """What decides a store's pixels: grid rate (0 = the video's own), decode size (H, W), encoding, JPEG
    quality and decoder backend (decord and PyAV resize differently by a fraction of a grey level)."""

    fps: float = 0.0
    size: tuple[int, int] | None = None
    encoding: str = "raw"
    quality: int = 90
    backend: str = "auto"

    def __post_init__(self) -> None:
        fps = float(self.fps)
        if not math.isfinite(fps) or fps < 0:
            raise ValueError(f"store fps must be >= 0 (0 = the video's own rate), got {self.fps!r}")
        object.__setattr__(self, "fps", fps)
        object.__setattr__(self, "size", FrameTransform(size=self.size).size)  # validated (H, W) or None
        if self.encoding not in ENCODINGS:
            raise ValueError(f"store encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if not 1 <= int(self.quality) <= 100:
            raise ValueError(f"JPEG quality must be 1..100, got {self.quality!r}")
        object.__setattr__(self, "quality", int(self.quality))
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")

    @classmethod
    def from_params(cls, params: Any) -> StoreSettings:
        """The training store of a configuration: `train.store`, the training decode size
        (`frames.transform.size`) and the training loader's backend (`pairing.loader.backend`)."""
        from hecvl.config import coerce_params

        params = coerce_params(params)
        store = params.train.store
        return cls(fps=store.fps, size=params.frames.transform.size, encoding=store.encoding,
                   quality=store.quality, backend=params.pairing.loader.backend)

    @property
    def transform(self) -> FrameTransform:
        """The resize every stored frame went through (the training loader's, without its crop)."""
        return FrameTransform(size=self.size)

    def rate(self, info: VideoInfo) -> float:
        """The grid rate for this video: `fps`, or the video's own rate when `fps` is 0."""
        return self.fps or info.fps

    def key(self) -> str:
        """A file-name-safe name of every setting that changes pixels: `360x640-bilinear.fps2.jpeg90.pyav`."""
        fps = f"fps{self.fps:g}" if self.fps else "fpsnative"
        encoding = f"jpeg{self.quality}" if self.encoding == "jpeg" else "raw"
        return f"{self.transform.key()}.{fps}.{encoding}.{self.backend}"

    def to_dict(self) -> dict[str, Any]:
        """The settings as the sidecar records them (quality and chroma only where they matter: jpeg)."""
        out: dict[str, Any] = {"fps": self.fps, "size": list(self.size) if self.size else None,
                               "encoding": self.encoding, "backend": self.backend}
        if self.encoding == "jpeg":
            out.update(quality=self.quality, subsampling=JPEG_SUBSAMPLING)
        return out


@dataclass(frozen=True)
class SizeGuard:
    """Refuses a store over `max_gib` (train.store.max_gib); `built_bytes`: the other packs already built."""

    max_gib: float
    built_bytes: int = 0

    @property
    def limit(self) -> int:
        return int(self.max_gib * GIB)

    def check(self, total: int, what: str, encoding: str, path: str | Path) -> None:
        """HecvlError naming `path` when `total` bytes (described by `what`) exceed the limit."""
        if total <= self.limit:
            return
        remedy = ("lower train.store.fps, use train.store.encoding: jpeg, or raise train.store.max_gib"
                  if encoding == "raw" else
                  "lower train.store.fps or train.store.quality, or raise train.store.max_gib")
        raise HecvlError(f"the frame store would take {gib(total)} ({what}), more than "
                         f"train.store.max_gib = {self.max_gib:g} GiB: {remedy}", path)


def gib(nbytes: float) -> str:
    """Bytes in GiB (2**30), readable at any size: `0.00107 GiB`, `3.42 GiB`, `1510 GiB`."""
    value = nbytes / GIB
    return f"{value:.0f} GiB" if value >= 100 else f"{value:.2f} GiB" if value >= 1 else f"{value:.3g} GiB"


def sidecar_path(pack: str | Path) -> Path:
    """The JSON sidecar beside a pack (`<lecture>.json`)."""
    return Path(pack).with_suffix(".json")


def raw_store_bytes(videos: Iterable[str | Path], settings: StoreSettings) -> int:
    """Exact bytes of the raw packs of `videos` (probed, nothing decoded): frames x H x W x 3."""
    total = 0
    for video in videos:
        info = probe(video)
        h, w = settings.transform.output_shape(info.height, info.width)
        total += len(sample_times(info, settings.rate(info))) * h * w * 3
    return total


def build_pack(
    video: str | Path,
    pack: str | Path,
    settings: StoreSettings,
    *,
    progress: bool = False,
    guard: SizeGuard | None = None,
    source_sha256: str | None = None,
) -> dict[str, Any]:
    """Decode `video` once on the grid into `pack` and its sidecar; returns the sidecar.

    `guard`: refuse (HecvlError, nothing left behind) when the store would exceed its limit: raw before
    decoding (its size is exact), jpeg as soon as the bytes written pass it. `source_sha256`: the video's
    hash when the caller has it already.
    """
    import simplejpeg

    video, pack = Path(video), Path(pack)
    sidecar = sidecar_path(pack)
    if pack.suffix != ".pack":
        raise HecvlError("a frame store pack must be named <lecture>.pack", pack)
    transform = settings.transform
    with open_video(video, settings.backend) as reader:
        info = reader.info
        source_sha = source_sha256 or sha256_file(video)
        rate = settings.rate(info)
        times = sample_times(info, rate)
        height, width = reader.output_shape(transform)
        frame_bytes = height * width * 3
        limit = None if guard is None else guard.limit - guard.built_bytes
        if guard is not None and settings.encoding == "raw":
            guard.check(guard.built_bytes + len(times) * frame_bytes,
                        f"{gib(guard.built_bytes)} built + {len(times)} frames of {video.name}",
                        "raw", pack.parent)
        offsets: list[int] = []
        lengths: list[int] = []
        crcs: list[int] = []
        digest = hashlib.sha256()
        pos = 0
        bar = tqdm(total=len(times), desc=video.name, unit="frame", leave=False, disable=not progress or None)
        with bar, atomic_path(pack) as tmp, open(tmp, "wb") as fh:
            for chunk in reader.iter_frames(times, transform):
                for frame in chunk:
                    if settings.encoding == "raw":
                        data = memoryview(np.ascontiguousarray(frame)).cast("B")
                    else:
                        data = simplejpeg.encode_jpeg(frame, settings.quality, colorspace="RGB",
                                                      colorsubsampling=JPEG_SUBSAMPLING)
                    if limit is not None and pos + len(data) > limit:
                        assert guard is not None
                        guard.check(guard.built_bytes + pos + len(data),
                                    f"at least: {gib(guard.built_bytes)} built + {video.name} "
                                    f"passing it at frame {len(offsets)} of {len(times)}",
                                    settings.encoding, pack.parent)
                    fh.write(data)
                    digest.update(data)
                    offsets.append(pos)
                    lengths.append(len(data))
                    crcs.append(zlib.crc32(data))
                    pos += len(data)
                bar.update(len(chunk))
            if len(offsets) != len(times):  # the reader checks this too: never index a short pack
                raise HecvlError(f"decoded {len(offsets)} of {len(times)} grid frames", video)
            fh.flush()
            os.fsync(fh.fileno())
            sidecar.unlink(missing_ok=True)  # an old sidecar must never describe the new pack
        decoded_by = reader.backend
    meta = {
        "format": FORMAT,
        "key": settings.key(),
        "settings": settings.to_dict(),
        "transform": transform.to_dict(),
        "source": {"file": video.name, "size_bytes": video.stat().st_size, "sha256": source_sha,
                   "info": info.to_dict()},
        "decoded_by": decoded_by,
        "grid_fps": rate,
        "frames": len(offsets),
        "frame_shape": [height, width, 3],
        "dtype": "uint8",
        "index": {"offset": offsets, "length": lengths, "crc32": crcs},
        "pack_bytes": pos,
        "pack_sha256": digest.hexdigest(),
        "row_time": ROW_TIME,
    }
    write_json(sidecar, meta)
    return meta


def pack_is_current(
    pack: str | Path, settings: StoreSettings, source_sha256: str, *, checksum: bool = True
) -> tuple[dict[str, Any] | None, str | None]:
    """(sidecar, None) when `pack` is complete, built from this source with these settings and, with
    `checksum`, intact (its SHA-256; without it, the size its sidecar says, every frame read being checked
    against its crc32 besides: what a training run checks at its start); else (None, why), why None when
    there is no pack at all."""
    pack = Path(pack)
    if not pack.exists() and not sidecar_path(pack).exists():
        return None, None
    try:
        meta = Pack(pack, settings).meta
        if meta["source"]["sha256"] != source_sha256:
            return None, "its video has changed"
        if checksum:
            verify(pack)
    except HecvlError as exc:
        return None, exc.message
    return meta, None


def ensure_pack(
    video: str | Path,
    pack: str | Path,
    settings: StoreSettings,
    *,
    progress: bool = False,
    guard: SizeGuard | None = None,
    source_sha256: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """(sidecar, built): build `pack` unless it is current (`pack_is_current`), in which case it stays.
    `source_sha256`: the video's hash when the caller has it (a stat-cached hash of a big corpus)."""
    source_sha = source_sha256 or (sha256_file(video) if Path(video).is_file() else None)
    if source_sha is not None:
        current, why = pack_is_current(pack, settings, source_sha)
        if current is not None:
            return read_json(sidecar_path(pack), "frame store sidecar"), False
        if why:
            log.warning("%s: rebuilding the pack (%s)", pack, why)
    return build_pack(video, pack, settings, progress=progress, guard=guard, source_sha256=source_sha), True


class _OpenPacks(OrderedDict):
    """The packs this process has open, least recently read first (`pid`: whose they are)."""

    pid: int | None = None


_OPEN = _OpenPacks()


class Pack:
    """One lecture's pack, read at random: the reader interface `PairDataset.reader` serves (`info`,
    `fps`, `frames_at`, `close`).

    `expected`: refuse a pack built with other settings. Picklable: the file is opened lazily in each
    process (a forked DataLoader worker opens its own), and reopened after `close`.
    """

    def __init__(self, path: str | Path, expected: StoreSettings | None = None) -> None:
        self.path = Path(path)
        self.meta = _read_sidecar(self.path)
        if expected is not None:
            _check_settings(self.path, self.meta, expected)
        try:
            info = self.meta["source"]["info"]
            self.info = VideoInfo(**{**info, "path": Path(info["path"])})
            self.fps = float(self.meta["grid_fps"])
            self.encoding = str(self.meta["settings"]["encoding"])
            size = self.meta["settings"]["size"]
            self.size: tuple[int, int] | None = tuple(size) if size else None
            self.shape = tuple(int(v) for v in self.meta["frame_shape"])
            self.count = int(self.meta["frames"])
            self.nbytes = int(self.meta["pack_bytes"])
            index = self.meta["index"]
            self._offsets = np.asarray(index["offset"], dtype=np.int64)
            self._lengths = np.asarray(index["length"], dtype=np.int64)
            self._crcs = np.asarray(index["crc32"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise HecvlError(f"malformed frame store sidecar ({type(exc).__name__}: {exc})",
                             sidecar_path(self.path)) from None
        if self.encoding not in ENCODINGS or len(self.shape) != 3 or self.shape[2] != 3 or self.count < 1:
            raise HecvlError("malformed frame store sidecar (encoding, frame shape or count)",
                             sidecar_path(self.path))
        if not (len(self._offsets) == len(self._lengths) == len(self._crcs) == self.count) or (
            self.count and int(self._offsets[-1] + self._lengths[-1]) != self.nbytes
        ):
            raise HecvlError("malformed frame store sidecar: its index does not cover the pack",
                             sidecar_path(self.path))
        self.meta.pop("index")  # kept once, as arrays (a dataset holds a Pack per lecture)
        self._fd: int | None = None
        self._pid: int | None = None
        try:  # a missing or truncated pack fails here, not in the middle of training
            self._check_size(os.stat(self.path).st_size)
        except FileNotFoundError:
            raise HecvlError(_MISSING, self.path) from None

    # -- the reader interface ------------------------------------------------------------------------
    def frames_at(self, times_s: Any, transform: FrameTransform | None = None) -> np.ndarray:
        """uint8 (N, H, W, 3) frames at the given times, by the grid rule (module docstring).

        `transform` must ask for the stored resize (its crop, if any, is applied); None: as stored.
        """
        idx = frame_indices(times_s, self.info)  # the decoder's time -> frame rule
        rows = np.rint(idx * (self.fps / self.info.fps)).astype(np.int64)
        frames = self.rows(np.minimum(rows, self.count - 1))
        if transform is None:
            return frames
        if transform.size != self.size or (self.size is not None and transform.resample != "bilinear"):
            raise HecvlError(f"holds frames resized to {FrameTransform(size=self.size).key()}, not "
                             f"{transform.key()}: build the store with these settings", self.path)
        return transform.finish(frames) if transform.crop else frames

    def rows(self, rows: Any) -> np.ndarray:
        """uint8 (N, H, W, 3) frames of grid rows `rows` (each distinct row read and checked once)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.count):
            raise HecvlError(f"row {int(rows.max() if rows.max() >= self.count else rows.min())} is outside "
                             f"the pack's {self.count} frames", self.path)
        unique, inverse = np.unique(rows, return_inverse=True)
        out = np.empty((len(unique), *self.shape), dtype=np.uint8)
        fd = self._fd_now()
        for j, row in enumerate(unique.tolist()):
            self._read_into(fd, row, out[j])
        inverse = inverse.reshape(-1)
        return out if np.array_equal(inverse, np.arange(len(rows))) else out[inverse]

    def close(self) -> None:
        """Close this process's file (a later read opens it again)."""
        if self._fd is not None and self._pid == os.getpid():
            _OPEN.pop(id(self), None)
            os.close(self._fd)
        self._fd = self._pid = None

    def __len__(self) -> int:
        return self.count

    def __enter__(self) -> Pack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: nothing to report to
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fd"] = state["_pid"] = None  # a descriptor never travels to another process
        return state

    # -- internals -----------------------------------------------------------------------------------
    def _fd_now(self) -> int:
        """This process's descriptor of the pack, opened (and its size checked) on first use.

        At most MAX_OPEN packs stay open per process (least recently read closed first): a worker that
        samples a corpus of thousands of lectures never runs out of file descriptors."""
        pid = os.getpid()
        if self._fd is not None and self._pid == pid:
            _OPEN.move_to_end(id(self))
            return self._fd
        self._fd = self._pid = None  # a forked child's inherited descriptor is left to the parent
        if _OPEN.pid != pid:  # a new process: the packs open in the parent are not ours to close
            _OPEN.clear()
            _OPEN.pid = pid
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise HecvlError(_MISSING, self.path) from None
        try:
            self._check_size(os.fstat(fd).st_size)
        except HecvlError:
            os.close(fd)
            raise
        self._fd, self._pid = fd, pid
        _OPEN[id(self)] = weakref.ref(self)
        while len(_OPEN) > MAX_OPEN:
            oldest = _OPEN.popitem(last=False)[1]()
            if oldest is not None:
                oldest.close()
        return fd

    def _check_size(self, size: int) -> None:
        if size != self.nbytes:
            problem = (f"truncated: {size} of {self.nbytes} bytes" if size < self.nbytes else
                       f"{size} bytes, its sidecar says {self.nbytes}")
            raise HecvlError(f"{problem} (rebuild it with `hecvl store build`)", self.path)

    def _read_into(self, fd: int, row: int, out: np.ndarray) -> None:
        offset, length = int(self._offsets[row]), int(self._lengths[row])
        if self.encoding == "raw":
            if length != out.nbytes:
                raise HecvlError(f"frame {row}: {length} bytes in the index, a frame is {out.nbytes}",
                                 self.path)
            got = os.preadv(fd, [memoryview(out).cast("B")], offset)
            data: Any = out
        else:
            data = os.pread(fd, length, offset)
            got = len(data)
        if got != length:
            size = os.fstat(fd).st_size
            raise HecvlError(f"truncated: {size} of {self.nbytes} bytes (frame {row} cut short)", self.path)
        if zlib.crc32(data) != int(self._crcs[row]):
            raise HecvlError(f"frame {row} of {self.count} is corrupt (crc32 differs from the sidecar): "
                             "rebuild it with `hecvl store build`", self.path)
        if self.encoding == "jpeg":
            import simplejpeg

            try:
                simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out, **JPEG_DECODE)
            except ValueError as exc:
                raise HecvlError(f"frame {row}: not a {self.shape[1]}x{self.shape[0]} JPEG ({exc})",
                                 self.path) from None


def verify(path: str | Path, expected: StoreSettings | None = None) -> None:
    """Check a pack against its sidecar: complete, and every byte as built (SHA-256, then crc32 per frame
    to name the first altered frame). HecvlError naming the pack otherwise."""
    pack = Pack(path, expected)
    try:
        if sha256_file(pack.path) == pack.meta["pack_sha256"]:
            return
        for row in range(pack.count):
            pack.rows([row])  # raises on the first frame whose crc32 differs
        raise HecvlError("SHA-256 differs from the sidecar (altered bytes outside every frame's crc32)",
                         pack.path)
    finally:
        pack.close()


def _read_sidecar(pack: Path) -> dict[str, Any]:
    sidecar = sidecar_path(pack)
    if not sidecar.is_file():
        what = "an unfinished build" if pack.exists() else "not built"
        raise HecvlError(f"frame store pack has no sidecar {sidecar.name} ({what}): build it with "
                         "`hecvl store build`", pack)
    meta = read_json(sidecar, "frame store sidecar")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise HecvlError(f"not a frame store sidecar: format {found!r}, expected {FORMAT!r}", sidecar)
    return meta


def _check_settings(pack: Path, meta: Mapping[str, Any], expected: StoreSettings) -> None:
    have, want = meta.get("settings") or {}, expected.to_dict()
    differ = [k for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k)]
    if differ:
        found = ", ".join(f"{k}={have.get(k)!r}" for k in differ)
        wanted = ", ".join(f"{k}={want.get(k)!r}" for k in differ)
        raise HecvlError(f"built with {found}, but this run's store has {wanted}: rebuild it with "
                         "`hecvl store build`", pack)
