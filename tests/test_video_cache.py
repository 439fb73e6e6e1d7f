"""The frame cache: hits and misses, its keys, corrupt entries rebuilt, concurrent builders, bad videos."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_video_reader import frame_ids, make_video

from hecvl.config import FramesSettings, validate_section
from hecvl.errors import HecvlError
from hecvl.video import FrameCache, FrameTransform, frames_setup, open_video
from hecvl.video import cache as cache_mod

T = FrameTransform(size=(48, 80), crop=40)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "v25.mp4", n=100, fps=25)  # 4 s


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache decoded a video it should have served")

    monkeypatch.setattr(cache_mod, "open_video", fail)


def test_miss_builds_the_1fps_frames_and_a_hit_serves_them(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arr = FrameCache(tmp_path).get(video, T)
    assert isinstance(arr, np.memmap) and arr.shape == (4, 40, 40, 3) and arr.dtype == np.uint8
    assert frame_ids(arr) == [0, 25, 50, 75]  # row i = the frame at second i
    with open_video(video) as r:
        np.testing.assert_array_equal(arr, r.sample(fps=1.0, transform=T)[1])
    _no_decoding(monkeypatch)
    again = FrameCache(tmp_path).get(video, T)  # a new object: served from disk, checksum verified
    np.testing.assert_array_equal(again, arr)
    with pytest.raises(ValueError):
        again[0, 0, 0, 0] = 1  # read-only: no consumer can damage the cache


def test_sidecar_describes_the_entry(video: Path, tmp_path: Path) -> None:
    cache = FrameCache(tmp_path)
    arr = cache.get(video, T, fps=2.0)
    data, sidecar = cache.entry_paths(video, T, fps=2.0)
    meta = json.loads(sidecar.read_text())
    video_sha = hashlib.sha256(video.read_bytes()).hexdigest()
    assert data.name == "48x80-bilinear-c40.fps2.auto.npy" and data.parent.name == video_sha
    assert meta["source_sha256"] == video_sha and meta["transform"] == T.key() and meta["fps"] == 2.0
    assert meta["shape"] == [8, 40, 40, 3] and meta["dtype"] == "uint8"
    assert meta["backend"] == "auto" and meta["decoded_by"] in {"decord", "pyav"}
    assert meta["data_sha256"] == hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
    assert meta["video"]["num_frames"] == 100 and meta["video"]["fps"] == 25.0
    assert frame_ids(arr) == [0, 13, 25, 38, 50, 63, 75, 88]  # frame round(k * 12.5), halves up
    assert not list(data.parent.glob(".*")), "temporary files left behind"


def test_key_is_content_transform_and_rate(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FrameCache(tmp_path / "cache")
    cache.get(video, T)
    other = FrameTransform(size=(48, 80), crop=40, resample="pil")
    assert cache.entry_paths(video, other)[0] != cache.entry_paths(video, T)[0]
    assert cache.entry_paths(video, T, fps=0.5)[0] != cache.entry_paths(video, T)[0]
    assert FrameCache(cache.root, backend="pyav").entry_paths(video, T)[0] != cache.entry_paths(video, T)[0]
    copy = tmp_path / "renamed copy.mp4"
    shutil.copy(video, copy)
    _no_decoding(monkeypatch)
    assert frame_ids(cache.get(copy, T)) == [0, 25, 50, 75]  # same bytes, another name: a hit


def test_video_hash_is_memoised_until_the_file_changes(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "v.mp4"
    shutil.copy(video, mine)
    cache = FrameCache(tmp_path / "cache")
    first = cache.video_hash(mine)
    calls = []
    monkeypatch.setattr(cache_mod, "sha256_file", lambda p: calls.append(p) or "f" * 64)
    assert FrameCache(tmp_path / "cache").video_hash(mine) == first and calls == []
    os.utime(mine, ns=(1, 1))  # touched: hashed again
    assert cache.video_hash(mine) == "f" * 64 and calls == [mine]


def _corrupt_array_tail(data: Path, sidecar: Path) -> None:
    with open(data, "r+b") as fh:
        fh.seek(-10, os.SEEK_END)
        fh.write(b"\xff" * 10)


def _truncate_array(data: Path, sidecar: Path) -> None:
    data.write_bytes(data.read_bytes()[:-1000])


def _remove_sidecar(data: Path, sidecar: Path) -> None:
    sidecar.unlink()


def _garble_sidecar(data: Path, sidecar: Path) -> None:
    sidecar.write_text("{not json")


def _sidecar_for_other_shape(data: Path, sidecar: Path) -> None:
    meta = json.loads(sidecar.read_text())
    meta["shape"][0] += 1
    sidecar.write_text(json.dumps(meta))


def _remove_array(data: Path, sidecar: Path) -> None:
    data.unlink()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_corrupt_array_tail, "checksum does not match"),
        (_truncate_array, "unreadable array"),
        (_remove_sidecar, "array without a sidecar"),
        (_garble_sidecar, "unreadable sidecar"),
        (_sidecar_for_other_shape, "sidecar says"),
        (_remove_array, "sidecar without its array"),
    ],
)
def test_a_damaged_entry_is_detected_and_rebuilt(
    damage, reason: str, video: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = FrameCache(tmp_path)
    good = np.array(cache.get(video, T))
    data, sidecar = cache.entry_paths(video, T)
    damage(data, sidecar)
    rebuilt = FrameCache(tmp_path).get(video, T)
    assert reason in caplog.text and "rebuilding" in caplog.text
    np.testing.assert_array_equal(rebuilt, good)
    caplog.clear()
    np.testing.assert_array_equal(FrameCache(tmp_path).get(video, T), good)  # and it stays good
    assert "rebuilding" not in caplog.text


def test_verification_is_once_per_cache_object(video: Path, tmp_path: Path) -> None:
    cache = FrameCache(tmp_path)
    cache.get(video, T)
    data, _ = cache.entry_paths(video, T)
    stat = data.stat()
    _corrupt_array_tail(data, _)
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: not re-verified
    assert cache.get(video, T).shape == (4, 40, 40, 3)
    unverified = FrameCache(tmp_path, verify=False).get(video, T)
    assert unverified.reshape(-1)[-1] == 0xFF  # verify=False trusts the entry as found
    assert FrameCache(tmp_path).get(video, T).reshape(-1)[-1] != 0xFF  # a new object checks, rebuilds


def _build(args: tuple[str, str]) -> str:
    root, video = args
    arr = FrameCache(root).get(video, T)
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def test_two_processes_building_the_same_entry_both_succeed(video: Path, tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(2) as pool:  # spawn: safe whatever the parent runs
        digests = pool.map(_build, [(str(tmp_path), str(video))] * 2)
    assert digests[0] == digests[1]
    cache = FrameCache(tmp_path)
    assert _build((str(tmp_path), str(video))) == digests[0]
    data, sidecar = cache.entry_paths(video, T)
    assert sorted(p.name for p in data.parent.iterdir()) == [sidecar.name, data.name]


def test_bad_videos_are_errors_and_leave_no_entry(video: Path, tmp_path: Path) -> None:
    cache = FrameCache(tmp_path / "cache")
    with pytest.raises(HecvlError, match="video file not found"):
        cache.get(tmp_path / "missing.mp4", T)
    faststart = make_video(tmp_path / "fs.mp4", n=100, faststart=True).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(faststart[: len(faststart) // 2])
    with pytest.raises(HecvlError, match="truncated") as err:
        cache.get(cut, T)
    assert err.value.path == cut
    folder = cache.entry_paths(cut, T)[0].parent
    assert not folder.exists() or not list(folder.iterdir())


def test_real_clip_entry(real_clip: Path, tmp_path: Path) -> None:
    t = FrameTransform(size=(360, 640), crop=224)
    arr = FrameCache(tmp_path).get(real_clip, t)
    assert arr.shape == (10, 224, 224, 3)
    with open_video(real_clip, "pyav") as r:
        ref = r.sample(fps=1.0, transform=t)[1]
    assert np.abs(arr.astype(int) - ref).mean() < 1.0


def test_frame_settings_build_the_cache_and_transform() -> None:
    frames = validate_section(FramesSettings, {"transform": {"size": [36, 64], "crop": 32}, "cache": "x"},
                              "frames")
    cache, transform, fps = frames_setup(frames)
    assert transform == FrameTransform((36, 64), 32) and fps == 1.0 and cache.root == Path("x")
    assert cache.backend == "pyav"  # the default, stated once in hecvl.config.frames
    with pytest.raises(HecvlError, match=r"params.yaml: frames.transform: crop 100 is larger"):
        validate_section(FramesSettings, {"transform": {"size": [36, 64], "crop": 100}}, "frames")
    with pytest.raises(HecvlError, match=r"frames.backend must be one of"):
        validate_section(FramesSettings, {"backend": "opencv"}, "frames")
