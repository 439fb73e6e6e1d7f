"""Decode a video's evaluation frames once; every later evaluation and ablation memory-maps them.

An entry is the frames at `fps` (row i = the frame at time i / fps, the rule in `reader`) after a
FrameTransform, keyed by the SHA-256 of the video's bytes (so a renamed or copied video still hits
and a re-encoded one never does), the transform's key, the rate and the configured backend (decord
and PyAV bundle different FFmpeg builds whose resizes differ by a fraction of a grey level; keying
by backend keeps an entry exactly what the current settings would decode):

    ROOT/<sha[:2]>/<sha>/<transform key>.fps<fps>.<backend>.npy   uint8 (T, H, W, 3), NumPy format
    ROOT/<sha[:2]>/<sha>/<transform key>.fps<fps>.<backend>.json  sidecar: shape, source hash,
                                              transform, SHA-256 of the array data; written last
    ROOT/hashes/<sha1 of the video's absolute path>.json   the video's hash, valid while its size
                                              and mtime are unchanged (no rehash of big files)

Both files are written to a temporary name and renamed into place, the sidecar last, so a reader
never sees a half-written entry as valid. An entry whose sidecar is missing, unreadable or
disagrees with the array (size, shape, checksum) is rebuilt with a warning. Two processes building
the same entry both write complete files; the last rename wins and decoding is deterministic, so
either result is the same valid entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hecvl.errors import HecvlError
from hecvl.io import atomic_path, sha256_file, write_json
from hecvl.video.reader import BACKENDS, open_video, sample_times
from hecvl.video.transform import FrameTransform

log = logging.getLogger(__name__)

FORMAT = "hecvl-frame-cache/1"
_HASH_BLOCK = 64 << 20  # bytes of the array hashed per step


class FrameCache:
    """Memory-mapped frame arrays under `root`; `get` decodes on a miss and reuses on a hit.

    `verify=True` checks the array's checksum the first time an entry is used by this object
    (about 1 s per GB); a truncated or altered array is then rebuilt rather than served.
    """

    def __init__(self, root: str | Path, backend: str = "auto", verify: bool = True) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.root = Path(root)
        self.backend = backend
        self.verify = verify
        self._verified: set[tuple[str, int, int]] = set()

    def get(
        self,
        video_path: str | Path,
        transform: FrameTransform | None = None,
        fps: float = 1.0,
        progress: bool = False,
    ) -> np.memmap:
        """uint8 (T, H, W, 3) memmap of the frames at times i / fps, i = 0 .. T-1 (read-only)."""
        transform = transform or FrameTransform()
        data, sidecar = self.entry_paths(video_path, transform, fps)
        source_sha = sidecar.parent.name
        expected = {
            "format": FORMAT,
            "source_sha256": source_sha,
            "transform": transform.key(),
            "fps": fps,
            "backend": self.backend,
        }
        arr, problem = self._load(data, sidecar, expected)
        if arr is not None:
            return arr
        if problem:
            log.warning("%s: rebuilding the frame cache entry (%s)", sidecar, problem)
        return self._build(Path(video_path), transform, fps, data, sidecar, expected, progress)

    def entry_paths(
        self, video_path: str | Path, transform: FrameTransform, fps: float = 1.0
    ) -> tuple[Path, Path]:
        """(array, sidecar) paths of the entry for this video content, transform and rate."""
        sha = self.video_hash(video_path)
        stem = f"{transform.key()}.fps{fps:g}.{self.backend}"
        folder = self.root / sha[:2] / sha
        return folder / f"{stem}.npy", folder / f"{stem}.json"

    def video_hash(self, video_path: str | Path) -> str:
        """SHA-256 of the video's bytes, memoised by (path, size, mtime_ns) in ROOT/hashes/."""
        path = Path(video_path)
        if not path.is_file():
            raise HecvlError("video file not found" if not path.exists() else "not a file", path)
        resolved = str(path.resolve())
        stat = path.stat()
        memo = self.root / "hashes" / f"{hashlib.sha1(resolved.encode()).hexdigest()}.json"
        try:
            known = json.loads(memo.read_text(encoding="utf-8"))
            current = {"path": resolved, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            if all(known[k] == v for k, v in current.items()):
                return str(known["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        sha = sha256_file(path)
        entry = {"path": resolved, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
        write_json(memo, entry)
        return sha

    # -----------------------------------------------------------------------------------------------
    def _load(
        self, data: Path, sidecar: Path, expected: dict[str, Any]
    ) -> tuple[np.memmap | None, str | None]:
        """The entry's array if complete and consistent, else (None, what is wrong; None if absent)."""
        if not sidecar.exists():
            return None, ("array without a sidecar (an interrupted build)" if data.exists() else None)
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            for key, value in expected.items():
                if meta.get(key) != value:
                    return None, f"sidecar has {key}={meta.get(key)!r}, expected {value!r}"
            shape, checksum = tuple(meta["shape"]), meta["data_sha256"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"unreadable sidecar: {exc}"
        if not data.exists():
            return None, "sidecar without its array"
        try:
            arr = np.load(data, mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            return None, f"unreadable array: {exc}"
        if arr.shape != shape or arr.dtype != np.uint8:
            return None, f"array is {arr.dtype}{arr.shape}, sidecar says uint8{shape}"
        if self.verify:
            stat = data.stat()
            token = (str(data), stat.st_size, stat.st_mtime_ns)
            if token not in self._verified:
                if _array_sha256(arr) != checksum:
                    return None, "array checksum does not match the sidecar"
                self._verified.add(token)
        return arr, None

    def _build(
        self,
        video: Path,
        transform: FrameTransform,
        fps: float,
        data: Path,
        sidecar: Path,
        expected: dict[str, Any],
        progress: bool,
    ) -> np.memmap:
        with open_video(video, self.backend) as reader:
            info = reader.info
            times = sample_times(info, fps)
            height, width = reader.output_shape(transform)
            shape = (len(times), height, width, 3)
            digest = hashlib.sha256()
            bar = tqdm(
                total=len(times), desc=video.name, unit="frame", leave=False, disable=not progress or None
            )
            with bar, atomic_path(data) as tmp:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                row = 0
                for chunk in reader.iter_frames(times, transform):
                    out[row : row + len(chunk)] = chunk
                    digest.update(np.ascontiguousarray(chunk).data)
                    row += len(chunk)
                    bar.update(len(chunk))
                out.flush()
                del out
                # Map our own file before the rename: what we return is what we built, whatever
                # a concurrent builder renames over the name afterwards.
                arr = np.load(tmp, mmap_mode="r")
                stat = os.stat(tmp)  # rename keeps size and mtime: this is the entry we verified
            decoded_by = reader.backend
        meta = {
            **expected,
            "shape": list(shape),
            "dtype": "uint8",
            "data_sha256": digest.hexdigest(),
            "transform_params": transform.to_dict(),
            "video": {**info.to_dict(), "size_bytes": os.path.getsize(video)},
            "row_time": "row i is the frame at time i / fps seconds: frame index round(i * video_fps / fps)",
            "decoded_by": decoded_by,
        }
        write_json(sidecar, meta)
        self._verified.add((str(data), stat.st_size, stat.st_mtime_ns))
        return arr


def _array_sha256(arr: np.ndarray) -> str:
    digest = hashlib.sha256()
    flat = arr.reshape(-1)
    for start in range(0, flat.size, _HASH_BLOCK):
        digest.update(np.ascontiguousarray(flat[start : start + _HASH_BLOCK]).data)
    return digest.hexdigest()
