"""Video decoding: which frame lands at which second, both backends, real clip, bad input.

Test videos are real H.264 files written with PyAV whose frame k is a solid colour that encodes k,
so a decoded frame (after any resize or crop) tells which frame of the file it is. Other video test
files import `make_video` and `frame_ids` from here.
"""

from __future__ import annotations

import fractions
import os
from pathlib import Path

import av
import numpy as np
import pytest

from hecvl.errors import HecvlError
from hecvl.video import FrameTransform, open_video, probe, sample_times
from hecvl.video import reader as reader_mod
from hecvl.video.reader import decord_available

BACKENDS = ["pyav", *(["decord"] if decord_available() else [])]
needs_decord = pytest.mark.skipif(not decord_available(), reason="decord is not installed here")


def colour(k: int) -> np.ndarray:
    """Frame k's colour: its base-6 digits as levels 0, 51, ..., 255 of R, G, B (216 distinct frames)."""
    return np.array([k % 6, (k // 6) % 6, (k // 36) % 6], dtype=np.uint8) * 51


def frame_ids(frames: np.ndarray) -> list[int]:
    """The frame index each decoded (N, H, W, 3) frame shows."""
    levels = np.rint(frames.reshape(len(frames), -1, 3).mean(axis=1) / 51).astype(int)
    return [int(r + 6 * g + 36 * b) for r, g, b in levels]


def make_video(
    path: Path,
    n: int = 60,
    fps: float = 25,
    size: tuple[int, int] = (64, 96),
    codec: str = "libx264",
    gop: int = 12,
    faststart: bool = False,
) -> Path:
    """An MP4 of `n` frames (B-frames, a key frame every `gop`), frame k coloured `colour(k)`."""
    h, w = size
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        stream = out.add_stream(codec, rate=fractions.Fraction(fps).limit_denominator(100000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "10", "g": str(gop), "bf": "3", "preset": "veryfast"}
        for k in range(n):
            img = np.empty((h, w, 3), np.uint8)
            img[:] = colour(k)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def video25(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "v25.mp4", n=60, fps=25)


@pytest.fixture(scope="module")
def video_ntsc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "ntsc.mp4", n=100, fps=30000 / 1001)


# --- probe and the time rule -----------------------------------------------------------------------


def test_probe_reads_rate_count_and_size_from_the_file(video25: Path, video_ntsc: Path) -> None:
    info = probe(video25)
    assert (info.fps, info.num_frames, info.width, info.height, info.codec) == (25.0, 60, 96, 64, "h264")
    assert info.duration_s == pytest.approx(2.4)
    ntsc = probe(video_ntsc)
    assert ntsc.fps == pytest.approx(30000 / 1001) and ntsc.num_frames == 100


def test_probe_real_clip(real_clip: Path) -> None:
    info = probe(real_clip)  # has an audio stream too: the video stream is the one probed
    assert (info.fps, info.num_frames, info.width, info.height) == (25.0, 250, 1920, 1080)
    assert info.duration_s == pytest.approx(10.0)


def test_sample_times_cover_every_second_with_a_frame(video25: Path, video_ntsc: Path) -> None:
    assert sample_times(probe(video25), 1.0).tolist() == [0.0, 1.0, 2.0]  # 2.4 s: seconds 0, 1, 2
    assert sample_times(probe(video_ntsc), 1.0).tolist() == [0.0, 1.0, 2.0, 3.0]  # 3.34 s
    assert sample_times(probe(video25), 2.0, start_s=0.5, end_s=2.0).tolist() == [0.5, 1.0, 1.5]
    assert len(sample_times(probe(video25), 25.0)) == 60


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_i_is_frame_round_i_times_fps(backend: str, video25: Path, video_ntsc: Path) -> None:
    with open_video(video25, backend) as r:
        times, frames = r.sample(fps=1.0)
        assert times.tolist() == [0.0, 1.0, 2.0]
        assert frame_ids(frames) == [0, 25, 50]
        # half-up rounding, any order, duplicates, and the clamp to the last frame
        assert frame_ids(r.frames_at([2.38, 0.5, 0.02, 0.06, 0.5])) == [59, 13, 1, 2, 13]
        assert frame_ids(r.frames_at([2.0, 0.0, 1.0])) == [50, 0, 25]
        with pytest.raises(ValueError, match="outside the video"):
            r.frames_at([2.4])
    with open_video(video_ntsc, backend) as r:
        assert frame_ids(r.sample(fps=1.0)[1]) == [0, 30, 60, 90]  # round(i * 29.97)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_frame_and_random_access_match_the_file(backend: str, video25: Path) -> None:
    with open_video(video25, backend) as r:
        assert frame_ids(r.sample(fps=25.0)[1]) == list(range(60))
        rng = np.random.default_rng(0)
        idx = rng.integers(0, 60, size=25)
        assert frame_ids(r.frames_at(idx / 25.0)) == idx.tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunked_iteration_across_chunk_boundaries(
    backend: str, video25: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_mod, "CHUNK", 4)
    times = np.repeat(np.arange(0, 60, 3) / 25.0, 2)  # 20 frames, each asked twice
    with open_video(video25, backend) as r:
        chunks = list(r.iter_frames(times, FrameTransform(size=(32, 40))))
    assert len(chunks) == 5 and all(c.shape[1:] == (32, 40, 3) for c in chunks)
    assert frame_ids(np.concatenate(chunks)) == np.repeat(np.arange(0, 60, 3), 2).tolist()


def test_pyav_never_decodes_unwanted_non_reference_frames(video25: Path) -> None:
    with open_video(video25, "pyav") as r:
        test = r._droppable
        assert test is not None  # H.264 in MP4
        dropped = []
        r._droppable = lambda data: dropped.append(test(data)) or dropped[-1]
        assert frame_ids(r.sample(fps=1.0)[1]) == [0, 25, 50]
    assert sum(dropped) >= 3  # B-frames between a key frame and a wanted frame: skipped, not decoded


@needs_decord
def test_backends_agree_pixel_for_pixel_within_rounding(video25: Path) -> None:
    t = FrameTransform(size=(48, 80), crop=40)
    with open_video(video25, "decord") as a, open_video(video25, "pyav") as b:
        fa, fb = a.sample(fps=5.0, transform=t)[1], b.sample(fps=5.0, transform=t)[1]
    assert fa.shape == fb.shape == (12, 40, 40, 3)
    assert np.abs(fa.astype(int) - fb).mean() < 1.0


def test_real_clip_decodes_at_1fps_with_the_paper_transform(real_clip: Path) -> None:
    t = FrameTransform(size=(360, 640), crop=224)
    frames = {}
    for backend in BACKENDS:
        with open_video(real_clip, backend) as r:
            times, frames[backend] = r.sample(fps=1.0, transform=t)
        assert times.tolist() == list(range(10))
        assert frames[backend].shape == (10, 224, 224, 3) and frames[backend].dtype == np.uint8
        assert frames[backend].std() > 10  # real content, not a blank frame
    if "decord" in frames:
        assert np.abs(frames["decord"].astype(int) - frames["pyav"]).mean() < 1.0
    # consecutive seconds of a surgical video differ; the same second decoded twice does not
    with open_video(real_clip, "pyav") as r:
        again = r.frames_at([3.0, 3.0], t)
    np.testing.assert_array_equal(again[0], frames["pyav"][3])
    assert np.abs(frames["pyav"][3].astype(int) - frames["pyav"][4]).mean() > 1.0


def test_pil_resample_is_close_to_the_decoder_resize(real_clip: Path) -> None:
    fast, pil = FrameTransform((360, 640), 224), FrameTransform((360, 640), 224, resample="pil")
    with open_video(real_clip, "pyav") as r:
        a, b = r.frames_at([2.0], fast), r.frames_at([2.0], pil)
    assert a.shape == b.shape == (1, 224, 224, 3)
    assert 0 < np.abs(a.astype(int) - b).mean() < 3.0  # a different method, the same picture


def test_containers_without_frame_count_or_timestamps(video25: Path, tmp_path: Path) -> None:
    mkv = make_video(tmp_path / "v.mkv", n=60)  # Matroska stores no frame count: packets are counted
    raw = tmp_path / "v.h264"  # an elementary stream: no container, no timestamps, no seeking
    with av.open(str(video25)) as src, av.open(str(raw), "w", format="h264") as out:
        stream = src.streams.video[0]
        target = out.add_stream_from_template(stream)
        annexb = av.BitStreamFilterContext("h264_mp4toannexb", stream)
        for packet in src.demux(stream):
            for converted in annexb.filter(packet if packet.size else None):
                converted.stream = target
                out.mux(converted)
    for path in (mkv, raw):
        info = probe(path)
        assert (info.num_frames, info.fps) == (60, 25.0), path
        for backend in ["auto", "pyav"]:
            with open_video(path, backend) as r:
                assert frame_ids(r.sample(fps=5.0)[1]) == list(range(0, 60, 5)), (path, backend)
                assert frame_ids(r.frames_at([2.0, 0.0, 1.0])) == [50, 0, 25]


# --- the transform -----------------------------------------------------------------------------------


def test_transform_key_and_shapes() -> None:
    t = FrameTransform(size=[360, 640], crop=224)
    assert t.key() == "360x640-bilinear-c224" and t.size == (360, 640)
    assert t == FrameTransform((360, 640), 224) and hash(t) == hash(FrameTransform((360, 640), 224))
    assert FrameTransform((360, 640), 224, resample="pil").key() == "360x640-pil-c224"
    assert FrameTransform().key() == "orig" and FrameTransform(crop=100).key() == "orig-c100"
    assert t.output_shape(1080, 1920) == (224, 224)
    assert FrameTransform().output_shape(1080, 1920) == (1080, 1920)
    for bad in ({"size": (0, 10)}, {"crop": 0}, {"size": (100, 200), "crop": 101}, {"resample": "cubic"}):
        with pytest.raises(ValueError):
            FrameTransform(**bad)


def test_crop_is_centred_like_torchvision() -> None:
    from hecvl.video.transform import centre_crop_origin

    assert centre_crop_origin(360, 640, 224) == (68, 208)
    assert centre_crop_origin(361, 640, 224) == (68, 208)  # round(68.5) -> 68, as int(round(x))
    assert centre_crop_origin(363, 641, 224) == (70, 208)  # round(69.5) -> 70, round(208.5) -> 208
    frames = np.arange(1 * 6 * 8 * 3, dtype=np.uint8).reshape(1, 6, 8, 3)
    np.testing.assert_array_equal(FrameTransform(crop=4).finish(frames), frames[:, 1:5, 2:6])


# --- backends and bad input --------------------------------------------------------------------------


@needs_decord
def test_auto_falls_back_to_pyav_for_av1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        av.codec.Codec("libsvtav1", "w")
    except Exception:
        pytest.skip("no AV1 encoder in this PyAV build")
    monkeypatch.setenv("SVT_LOG", "1")
    path = make_video(tmp_path / "av1.mp4", n=30, codec="libsvtav1")
    with open_video(path, "auto") as r:
        assert r.backend == "pyav" and r.info.codec == "av1"
        assert frame_ids(r.sample(fps=5.0)[1]) == [0, 5, 10, 15, 20, 25]
    with pytest.raises(HecvlError, match="decord cannot read"), open_video(path, "decord") as r:
        r.frames_at([0.0])


@needs_decord
def test_auto_hands_over_to_pyav_when_decord_fails(
    video25: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import decord

    real = decord.VideoReader

    class FailsOnSecondBatch:
        """decord that decodes one batch, then fails (as on a damaged stretch of a file)."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            self._reader, self._calls = real(*args, **kwargs), 0

        def __len__(self) -> int:
            return len(self._reader)

        def get_batch(self, indices: list[int]) -> object:
            self._calls += 1
            if self._calls > 1:
                raise decord.DECORDError("simulated decoder failure")
            return self._reader.get_batch(indices)

    monkeypatch.setattr(reader_mod, "CHUNK", 2)
    monkeypatch.setattr(decord, "VideoReader", FailsOnSecondBatch)
    with open_video(video25, "auto") as r:
        assert frame_ids(r.sample(fps=5.0)[1]) == list(range(0, 60, 5))
    assert "decoding with PyAV instead" in caplog.text
    with pytest.raises(HecvlError, match="simulated decoder failure"), open_video(video25, "decord") as r:
        r.sample(fps=5.0)


def _bad_inputs(tmp_path: Path, video: Path) -> dict[str, tuple[Path, str]]:
    data = video.read_bytes()
    truncated = tmp_path / "truncated.mp4"  # index (moov) at the end: cut off
    truncated.write_bytes(data[: len(data) // 2])
    faststart = make_video(tmp_path / "fs.mp4", n=60, faststart=True).read_bytes()
    cut = tmp_path / "truncated_faststart.mp4"  # index intact, the frames it promises missing
    cut.write_bytes(faststart[: len(faststart) * 2 // 3])
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    garbled = tmp_path / "garbled.mp4"
    garbled.write_bytes(bytes(64) + data[64:])
    audio = tmp_path / "audio.m4a"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return {
        "missing": (tmp_path / "missing.mp4", "video file not found"),
        "folder": (tmp_path, "not a file"),
        "truncated": (truncated, "not a readable video"),
        "truncated_faststart": (cut, "truncated"),
        "text": (text, "not a readable video"),
        "garbled": (garbled, "not a readable video"),
        "audio_only": (audio, "no video stream"),
    }


@pytest.mark.parametrize("backend", ["auto", *BACKENDS])
def test_bad_input_is_a_clear_error_naming_the_file(backend: str, video25: Path, tmp_path: Path) -> None:
    for case, (path, problem) in _bad_inputs(tmp_path, video25).items():
        with pytest.raises(HecvlError) as err, open_video(path, backend) as r:
            r.sample(fps=1.0)
        assert err.value.path == path, case
        assert problem in str(err.value) and str(path) in str(err.value), (case, str(err.value))


def test_probe_of_bad_input(tmp_path: Path) -> None:
    with pytest.raises(HecvlError, match="video file not found"):
        probe(tmp_path / "nope.mp4")
    (tmp_path / "x.mp4").write_bytes(os.urandom(2048))
    with pytest.raises(HecvlError, match="not a readable video"):
        probe(tmp_path / "x.mp4")
