"""The training frame store: raw packs hold the frame cache's bytes, JPEG packs are close to them, the
grid rule, damaged and mismatched packs refused, the size guard, forked workers, the CLI, skips and
determinism."""

from __future__ import annotations

import fractions
import hashlib
import json
import os
import pickle
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from test_video_reader import frame_ids, make_video

from hecvl import layout
from hecvl.cli import main
from hecvl.config import FrameStoreSettings, coerce_params, validate_section
from hecvl.errors import HecvlError
from hecvl.video import (
    FrameCache,
    FrameTransform,
    Pack,
    SizeGuard,
    StoreSettings,
    build_pack,
    ensure_pack,
    open_video,
    probe,
)
from hecvl.video import store as store_mod
from hecvl.video.store import FORMAT, sidecar_path, verify

SIZE = (48, 80)


def make_textured(path: Path, n: int = 40, fps: float = 25, size: tuple[int, int] = (96, 160)) -> Path:
    """An H.264 MP4 of smooth moving textures (what JPEG meets in real video, unlike flat colours)."""
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fractions.Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18", "g": "12", "bf": "2", "preset": "veryfast"}
        for k in range(n):
            img = np.stack([
                128 + 100 * np.sin(x / 7.0 + k / 5.0) * np.cos(y / 11.0),
                128 + 90 * np.cos((x + y) / 13.0 - k / 7.0),
                128 + 80 * np.sin(np.hypot(x - w / 2, y - h / 2) / 6.0 + k / 3.0),
            ], axis=-1)
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "v25.mp4", n=100, fps=25)  # 4 s, frame k coloured k


@pytest.fixture(scope="module")
def textured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_textured(tmp_path_factory.mktemp("t") / "video.mp4")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def one_line(exc: pytest.ExceptionInfo, path: Path) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"{path}: ")
    return text


# --- what a pack holds ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", "pyav"])
@pytest.mark.parametrize("fps", [0.0, 2.0])
def test_raw_pack_holds_exactly_the_frame_cache_bytes(
    video: Path, tmp_path: Path, backend: str, fps: float
) -> None:
    settings = StoreSettings(fps=fps, size=SIZE, backend=backend)
    pack = tmp_path / "L1.pack"
    meta = build_pack(video, pack, settings)
    rate = fps or 25.0
    cached = FrameCache(tmp_path / "cache", backend=backend).get(video, FrameTransform(size=SIZE), fps=rate)
    assert pack.read_bytes() == np.ascontiguousarray(cached).tobytes()
    assert meta["frames"] == len(cached) == (100 if fps == 0 else 8) and meta["grid_fps"] == rate

    # frames_at: the raw cache's reader rule, row rint(frame_indices(t) * fps / video_fps), clipped
    times = np.random.default_rng(0).uniform(0, 3.99, 50)
    with Pack(pack, settings) as reader:
        got = reader.frames_at(times, FrameTransform(size=SIZE))
        rows = np.minimum(np.rint(np.floor(times * 25 + 0.5) * (rate / 25)).astype(int), len(cached) - 1)
        np.testing.assert_array_equal(got, cached[rows])
        if fps == 0:  # the video's own rate: exactly what the decoder returns for those times
            with open_video(video, backend) as decoder:
                np.testing.assert_array_equal(got, decoder.frames_at(times, FrameTransform(size=SIZE)))


def test_jpeg_pack_is_close_to_raw_and_follows_the_grid(textured: Path, video: Path, tmp_path: Path) -> None:
    raw, jpeg = (StoreSettings(fps=5, size=SIZE, encoding=e, backend="pyav") for e in ("raw", "jpeg"))
    build_pack(textured, tmp_path / "raw.pack", raw)
    meta = build_pack(textured, tmp_path / "jpeg.pack", jpeg)
    with Pack(tmp_path / "raw.pack", raw) as r, Pack(tmp_path / "jpeg.pack", jpeg) as j:
        assert len(r) == len(j) == 8 and j.fps == 5.0 and j.info == r.info
        rows = np.arange(len(r))
        for a, b in zip(r.rows(rows), j.rows(rows), strict=True):
            assert psnr(a, b) > 30
    assert meta["pack_bytes"] < 0.5 * (tmp_path / "raw.pack").stat().st_size
    assert meta["settings"] == {"fps": 5.0, "size": list(SIZE), "encoding": "jpeg", "backend": "pyav",
                                "quality": 90, "subsampling": "420"}

    grid = StoreSettings(fps=2, size=SIZE, encoding="jpeg")
    build_pack(video, tmp_path / "grid.pack", grid)
    with Pack(tmp_path / "grid.pack", grid) as pack:
        assert frame_ids(pack.rows(np.arange(8))) == [0, 13, 25, 38, 50, 63, 75, 88]  # frame round(k * 12.5)
        # 0.3 s -> frame 8 -> row rint(0.64) = 1; 1.1 s -> frame 28 -> row 2; 3.96 s -> frame 99 -> row 8 -> 7
        assert frame_ids(pack.frames_at([0.3, 1.1, 1.1, 3.96, 0.0])) == [13, 25, 25, 88, 0]
        cropped = pack.frames_at([1.0], FrameTransform(size=SIZE, crop=40))
        np.testing.assert_array_equal(cropped, FrameTransform(crop=40).finish(pack.frames_at([1.0])))
        with pytest.raises(HecvlError, match="resized to 48x80-bilinear, not 50x80-bilinear"):
            pack.frames_at([1.0], FrameTransform(size=(50, 80)))


def test_jpeg_of_real_laparoscopic_video_keeps_its_detail(real_clip: Path, tmp_path: Path) -> None:
    settings = StoreSettings(fps=1, size=(360, 640), encoding="jpeg", backend="pyav")
    meta = build_pack(real_clip, tmp_path / "real.pack", settings)
    raw = FrameCache(tmp_path / "c", backend="pyav").get(real_clip, FrameTransform(size=(360, 640)), fps=1.0)
    with Pack(tmp_path / "real.pack", settings) as pack:
        frames = pack.rows(np.arange(len(pack)))
    assert frames.shape == raw.shape == (10, 360, 640, 3)
    assert min(psnr(a, b) for a, b in zip(frames, raw, strict=True)) > 35
    assert 20_000 < meta["pack_bytes"] / meta["frames"] < 100_000  # vs 691,200 raw


def test_sidecar_records_source_settings_index_and_checksums(video: Path, tmp_path: Path) -> None:
    settings = StoreSettings(fps=2, size=SIZE, encoding="jpeg", quality=80, backend="pyav")
    assert settings.key() == "48x80-bilinear.fps2.jpeg80.pyav"
    assert StoreSettings(size=(360, 640)).key() == "360x640-bilinear.fpsnative.raw.auto"
    pack = tmp_path / "L1.pack"
    meta = build_pack(video, pack, settings)
    assert json.loads(sidecar_path(pack).read_text()) == meta and sidecar_path(pack).name == "L1.json"
    blob = pack.read_bytes()
    assert meta["format"] == FORMAT and meta["key"] == settings.key()
    assert meta["source"] == {"file": "v25.mp4", "size_bytes": video.stat().st_size,
                              "sha256": hashlib.sha256(video.read_bytes()).hexdigest(),
                              "info": probe(video).to_dict()}
    assert meta["frames"] == 8 and meta["frame_shape"] == [48, 80, 3] and meta["decoded_by"] == "pyav"
    assert meta["pack_bytes"] == len(blob) and meta["pack_sha256"] == hashlib.sha256(blob).hexdigest()
    index = meta["index"]
    for offset, length, crc in zip(index["offset"], index["length"], index["crc32"], strict=True):
        assert zlib.crc32(blob[offset : offset + length]) == crc and blob[offset : offset + 2] == b"\xff\xd8"
    assert "rint(frame_indices(t) * grid_fps / video_fps)" in meta["row_time"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


# --- damaged, mismatched and missing packs ----------------------------------------------------------


@pytest.mark.parametrize("encoding", ["raw", "jpeg"])
def test_truncated_or_altered_pack_is_named_never_read(video: Path, tmp_path: Path, encoding: str) -> None:
    settings = StoreSettings(fps=2, size=SIZE, encoding=encoding)
    pack = tmp_path / "L1.pack"
    meta = build_pack(video, pack, settings)
    size = meta["pack_bytes"]
    reader = Pack(pack, settings)  # opened intact: damage done afterwards is still caught per frame

    blob = bytearray(pack.read_bytes())
    where = meta["index"]["offset"][5] + meta["index"]["length"][5] // 2
    blob[where] ^= 0x01
    pack.write_bytes(bytes(blob))
    assert frame_ids(reader.frames_at([0.0, 2.0])) == [0, 50]  # the untouched frames still read
    with pytest.raises(HecvlError) as exc:
        reader.frames_at([0.0, 2.5])
    assert "frame 5 of 8 is corrupt (crc32" in one_line(exc, pack)
    with pytest.raises(HecvlError) as exc:
        verify(pack)
    assert "frame 5 of 8 is corrupt" in one_line(exc, pack)
    assert main(["store", "verify", str(pack)]) == 1

    with open(pack, "r+b") as fh:
        fh.truncate(size - 100)
    with pytest.raises(HecvlError) as exc:
        reader.frames_at([3.9])
    assert f"truncated: {size - 100} of {size} bytes" in one_line(exc, pack)
    reader.close()
    with pytest.raises(HecvlError) as exc:
        Pack(pack, settings)
    assert f"truncated: {size - 100} of {size} bytes" in one_line(exc, pack)


def test_pack_of_other_settings_or_without_sidecar_is_refused(video: Path, tmp_path: Path) -> None:
    built = StoreSettings(fps=2, size=SIZE)
    pack = tmp_path / "L1.pack"
    build_pack(video, pack, built)
    for other, differs in [(StoreSettings(fps=1, size=SIZE), "fps=2.0, but this run's store has fps=1.0"),
                           (StoreSettings(fps=2, size=SIZE, encoding="jpeg"), "encoding='raw'"),
                           (StoreSettings(fps=2, size=SIZE, backend="pyav"), "backend='auto'"),
                           (StoreSettings(fps=2, size=(50, 80)), "size=[48, 80]")]:
        with pytest.raises(HecvlError) as exc:
            Pack(pack, other)
        assert differs in one_line(exc, pack)
    assert len(Pack(pack)) == 8  # without expectations it reads what it holds
    sidecar_path(pack).unlink()
    with pytest.raises(HecvlError) as exc:
        Pack(pack)
    assert "no sidecar L1.json (an unfinished build)" in one_line(exc, pack)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="quality"):
        StoreSettings(encoding="jpeg", quality=0)
    with pytest.raises(ValueError, match="encoding"):
        StoreSettings(encoding="png")
    with pytest.raises(ValueError, match="fps"):
        StoreSettings(fps=-1)
    with pytest.raises(HecvlError, match="quality"):
        validate_section(FrameStoreSettings, {"quality": 101}, "train.store", "params.yaml")
    params = coerce_params({"frames": {"transform": {"size": [48, 80], "crop": 40}},
                            "model": {"visual": {"image_size": 40}},
                            "pairing": {"loader": {"backend": "pyav"}},
                            "train": {"store": {"fps": 2, "encoding": "jpeg", "quality": 75}}})
    assert StoreSettings.from_params(params) == StoreSettings(2.0, (48, 80), "jpeg", 75, "pyav")
    assert coerce_params({}).train.store == FrameStoreSettings()
    assert layout.store_pack("k", "L7") == "data/store/k/L7.pack"
    assert layout.store_sidecar("k", "L7") == str(sidecar_path(layout.store_pack("k", "L7")))


# --- the size guard -----------------------------------------------------------------------------------


def test_guard_refuses_in_gib_and_leaves_no_partial_pack(video: Path, tmp_path: Path) -> None:
    raw = StoreSettings(size=SIZE)  # 100 frames x 11,520 bytes
    pack = tmp_path / "store" / "L1.pack"
    with pytest.raises(HecvlError) as exc:
        build_pack(video, pack, raw, guard=SizeGuard(1e-3, built_bytes=int(2**30 * 0.9e-3)))
    text = one_line(exc, pack.parent)
    assert "would take 0.00197 GiB (0.0009 GiB built + 100 frames of v25.mp4)" in text
    assert "more than train.store.max_gib = 0.001 GiB" in text
    assert "use train.store.encoding: jpeg" in text

    jpeg = StoreSettings(size=SIZE, encoding="jpeg")  # about 1 KB a frame: passes 20 KB mid-way
    with pytest.raises(HecvlError) as exc:
        build_pack(video, pack, jpeg, guard=SizeGuard(20_000 / 2**30))
    assert "lower train.store.fps or train.store.quality" in one_line(exc, pack.parent)
    assert list(pack.parent.iterdir()) == [], "a refused build left files behind"
    assert build_pack(video, pack, jpeg, guard=SizeGuard(1.0))["frames"] == 100


# --- DataLoader workers -------------------------------------------------------------------------------


class _PackFrames(torch.utils.data.Dataset):
    def __init__(self, pack: Pack) -> None:
        self.pack = pack

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.pack.frames_at([i * 0.5]))


def test_pack_serves_forked_dataloader_workers(video: Path, tmp_path: Path) -> None:
    settings = StoreSettings(fps=2, size=SIZE, encoding="jpeg")
    build_pack(video, tmp_path / "L1.pack", settings)
    pack = Pack(tmp_path / "L1.pack", settings)
    expected = pack.rows(np.arange(8))  # the parent's descriptor is open before the workers start
    loader = torch.utils.data.DataLoader(_PackFrames(pack), batch_size=None, num_workers=2,
                                         multiprocessing_context="fork")
    got = np.concatenate([t.numpy() for t in loader])
    np.testing.assert_array_equal(got, expected)
    assert frame_ids(pack.frames_at([1.0])) == [25]  # the parent's reads still work
    clone = pickle.loads(pickle.dumps(pack))
    assert clone._fd is None and frame_ids(clone.frames_at([2.0])) == [50]
    pack.close()
    clone.close()


def test_a_process_keeps_at_most_max_open_packs_open(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = StoreSettings(fps=2, size=SIZE)
    build_pack(video, tmp_path / "L1.pack", settings)
    monkeypatch.setattr(store_mod, "MAX_OPEN", 3)
    packs = [Pack(tmp_path / "L1.pack", settings) for _ in range(5)]  # one per lecture of a big corpus
    assert all(p._fd is None for p in packs)  # nothing is opened before it is read
    for p in packs:
        assert frame_ids(p.frames_at([1.0])) == [25]
    assert [p._fd is not None for p in packs] == [False, False, True, True, True]
    assert frame_ids(packs[0].frames_at([2.0])) == [50]  # reopened; the least recently read closed
    assert [p._fd is not None for p in packs] == [True, False, False, True, True]
    for p in packs:
        p.close()


# --- building: skip, rebuild, determinism, the CLI ----------------------------------------------------


@pytest.mark.parametrize("encoding", ["raw", "jpeg"])
def test_building_twice_gives_identical_bytes(textured: Path, tmp_path: Path, encoding: str) -> None:
    settings = StoreSettings(fps=5, size=SIZE, encoding=encoding)
    first = build_pack(textured, tmp_path / "a" / "L.pack", settings)
    second = build_pack(textured, tmp_path / "b" / "L.pack", settings)
    assert first == second
    assert (tmp_path / "a" / "L.pack").read_bytes() == (tmp_path / "b" / "L.pack").read_bytes()
    assert (tmp_path / "a" / "L.json").read_bytes() == (tmp_path / "b" / "L.json").read_bytes()


def test_up_to_date_pack_is_skipped_and_a_stale_one_rebuilt(video: Path, tmp_path: Path) -> None:
    settings = StoreSettings(fps=2, size=SIZE, encoding="jpeg")
    source = tmp_path / "video.mp4"
    source.write_bytes(video.read_bytes())
    pack = tmp_path / "store" / "L1.pack"
    meta, built = ensure_pack(source, pack, settings)
    assert built
    stamp = pack.stat().st_mtime_ns, sidecar_path(pack).stat().st_mtime_ns
    again, built = ensure_pack(source, pack, settings)
    assert not built and again == meta
    assert (pack.stat().st_mtime_ns, sidecar_path(pack).stat().st_mtime_ns) == stamp

    make_video(source, n=60, fps=25)  # the lecture's video changed: rebuilt from it
    meta, built = ensure_pack(source, pack, settings)
    assert built and meta["frames"] == 5
    assert meta["source"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    blob = bytearray(pack.read_bytes())
    blob[-10] ^= 0xFF  # a damaged pack is rebuilt, not kept
    pack.write_bytes(bytes(blob))
    assert ensure_pack(source, pack, settings)[1]
    verify(pack)


@pytest.fixture
def corpus(tmp_path: Path, video: Path, textured: Path) -> Path:
    root = tmp_path / "corpus"
    for name, src in (("L1", video), ("L2", textured)):
        (root / name).mkdir(parents=True)
        (root / name / "video.mp4").write_bytes(src.read_bytes())
    return root


def write_params(path: Path, corpus: Path, **store: object) -> Path:
    params = {"data": {"corpus": str(corpus)}, "frames": {"transform": {"size": list(SIZE), "crop": 40}},
              "model": {"visual": {"image_size": 40}}, "train": {"store": dict(store)}}
    path.write_text(yaml.safe_dump(params))
    return path


def test_cli_builds_one_lecture_or_all_and_verifies(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "store"
    params = write_params(tmp_path / "params.yaml", corpus, fps=2, encoding="jpeg", root=str(root))
    folder = root / "48x80-bilinear.fps2.jpeg90.auto"
    assert main(["store", "build", "--params", str(params), "--lecture", "L1"]) == 0
    assert f"{folder / 'L1.pack'}: built, 8 frames at 2 fps" in capsys.readouterr().out
    assert main(["store", "build", "--params", str(params), "--all"]) == 0
    assert "2 lecture(s): 1 built, 1 up to date; 12 frames" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == ["L1.json", "L1.pack", "L2.json", "L2.pack"]
    assert main(["store", "verify", str(folder)]) == 0
    assert "2 of 2 pack(s) intact" in capsys.readouterr().out

    out = tmp_path / "elsewhere" / "one.pack"
    assert main(["store", "build", "--params", str(params), "--lecture", "L2", "--out", str(out)]) == 0
    assert out.read_bytes() == (folder / "L2.pack").read_bytes()
    blob = bytearray(out.read_bytes())
    blob[100] ^= 0xFF
    out.write_bytes(bytes(blob))
    capsys.readouterr()
    assert main(["store", "verify", str(folder / "L1.pack"), str(out)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{out}: frame 0 of 4 is corrupt") and lines[1] == "1 of 2 pack(s) intact"

    assert main(["store", "build", "--params", str(params), "--lecture", "L9"]) == 2
    assert "no lecture 'L9' in the corpus" in capsys.readouterr().err


def test_cli_refuses_a_raw_store_over_max_gib_before_decoding(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    params = write_params(tmp_path / "params.yaml", corpus, max_gib=1e-3, root=str(tmp_path / "store"))
    assert main(["store", "build", "--params", str(params), "--lecture", "L1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "would take 0.0015 GiB (2 lectures at 48x80-bilinear.fpsnative.raw.auto)" in err
    assert "train.store.max_gib = 0.001 GiB" in err and "\n" not in err
    assert not (tmp_path / "store").exists() or not any(os.scandir(tmp_path / "store"))
