"""How fast do the 1 fps evaluation frames come out of the project, against the alternatives?

    .venv/bin/python benchmarks/decode.py VIDEO... [--repeats 3] [--size 360 640] [--crop 224] [--fps 1]
    .venv/bin/python benchmarks/decode.py --smoke     # seconds: one tiny generated H.264 clip, 1 repeat

Times, on the same videos in one run:
  (a) this project's evaluation path, cold: FrameCache in a fresh directory -> hash the video,
      decode only the frames at 1 fps, resize 360x640 in the decoder, centre crop 224, write the
      memory-mappable entry; with the backend of params.yaml `frames.backend` (what `hecvl frames`
      uses) unless --backend says otherwise; the other backend is shown for reference;
  (b) the authors' public-code path: the FFmpeg binary of imageio-ffmpeg writes one PNG per second
      (`-vf fps=1`) to a temporary folder, then PIL loads each, resizes to 360x640 (bilinear) and
      centre crops 224;
  (c) the decoder's floor: PyAV decodes every frame of the video (threaded), converting none;
  (d) the second pass: a new FrameCache object on (a)'s directory serves the entry (checksum
      verified, frames read into memory).
Speed unit for all four: source-video frames covered per second of wall time (a 25 fps video
processed in real time scores 25), i.e. the total frame count of the videos / time of the path.
Each path runs --repeats times; the best time is used (other jobs on the machine only ever add
time), the median is shown as well. The last line of output is one JSON object.
--smoke runs the same paths once on a 4 s 96x160 clip written here (when no VIDEO is given): a check
that the benchmark works, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
from PIL import Image

from hecvl.config import load_params
from hecvl.video import FrameCache, FrameTransform, open_video, probe
from hecvl.video.reader import decord_available
from hecvl.video.transform import centre_crop_origin


def project_cold(videos: list[Path], transform: FrameTransform, fps: float, backend: str) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="hecvl-bench-") as root:
        cache = FrameCache(root, backend=backend)
        return [np.array(cache.get(v, transform, fps)) for v in videos]


def project_warm(
    cache_root: Path, videos: list[Path], transform: FrameTransform, fps: float, backend: str
) -> list[np.ndarray]:
    cache = FrameCache(cache_root, backend)  # a new object: nothing memoised in memory, checksum verified
    return [np.array(cache.get(v, transform, fps)) for v in videos]


def png_path(videos: list[Path], size: tuple[int, int], crop: int, fps: float) -> list[np.ndarray]:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    out = []
    for video in videos:
        with tempfile.TemporaryDirectory(prefix="hecvl-png-") as folder:
            subprocess.run(
                [ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(video), "-vf", f"fps={fps:g}",
                 "-start_number", "0", f"{folder}/%08d.png"],
                check=True,
            )
            frames = []
            for png in sorted(Path(folder).glob("*.png")):
                image = Image.open(png).convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
                top, left = centre_crop_origin(size[0], size[1], crop)
                frames.append(np.asarray(image.crop((left, top, left + crop, top + crop))))
            out.append(np.stack(frames))
    return out


def decode_floor(videos: list[Path]) -> int:
    count = 0
    for video in videos:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _frame in container.decode(stream):
                count += 1
    return count


def _ffmpeg_fps_frames(videos: list[Path], transform: FrameTransform, fps: float) -> list[np.ndarray]:
    """The frames FFmpeg's `fps` filter picks (the last before (i + 0.5) / fps), decoded by the project."""
    out = []
    for video in videos:
        with open_video(video) as reader:
            info = reader.info
            count = int(np.floor(info.num_frames / info.fps * fps + 0.5))
            idx = np.ceil((np.arange(count) + 0.5) / fps * info.fps - 1e-9) - 1
            out.append(reader.frames_at(np.clip(idx, 0, info.num_frames - 1) / info.fps, transform))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, help="videos to decode (required without --smoke)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, nargs=2, default=[360, 640], metavar=("H", "W"))
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--backend", help="backend of path (a) (default: frames.backend of params.yaml)")
    parser.add_argument("--smoke", action="store_true", help="1 repeat; without VIDEO a tiny generated clip")
    args = parser.parse_args(argv)
    if args.backend is None:
        args.backend = _configured_backend()
    if not args.videos and not args.smoke:
        parser.error("give at least one VIDEO (or --smoke)")
    if args.smoke:
        args.repeats = 1
    with tempfile.TemporaryDirectory(prefix="hecvl-bench-smoke-") as tmp:
        if not args.videos:
            from _smoke import tiny_clip

            args.videos = [tiny_clip(Path(tmp) / "tiny.mp4")]
        return run(args)


def run(args: argparse.Namespace) -> int:
    """Time the four paths on args.videos and print the table and the JSON line."""
    videos = args.videos
    infos = [probe(v) for v in videos]
    source_frames = sum(i.num_frames for i in infos)
    transform = FrameTransform(size=tuple(args.size), crop=args.crop)
    r = args.repeats

    other = "decord" if args.backend == "pyav" else "pyav"  # the other backend, for reference
    rows = {
        "a": f"project, cold cache ({args.backend})",
        "a_alt": f"project, cold cache ({other}, for reference)",
        "b": "ffmpeg -> PNG at 1 fps -> PIL resize + crop",
        "c": "PyAV decode every frame, no conversion",
        "d": "project, second pass from the frame cache",
    }
    if other == "decord" and not decord_available():
        del rows["a_alt"]
    times: dict[str, list[float]] = {key: [] for key in rows}
    cpu: dict[str, list[float]] = {key: [] for key in rows}
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="hecvl-bench-") as root:
        cache = FrameCache(root, backend=args.backend)
        for v in videos:
            cache.get(v, transform, args.fps)
        paths: dict[str, Callable[[], object]] = {
            "a": lambda: project_cold(videos, transform, args.fps, args.backend),
            "a_alt": lambda: project_cold(videos, transform, args.fps, other),
            "b": lambda: png_path(videos, tuple(args.size), args.crop, args.fps),
            "c": lambda: decode_floor(videos),
            "d": lambda: project_warm(Path(root), videos, transform, args.fps, args.backend),
        }
        # Interleaved rounds: a load spike from other jobs hits every path, not just one.
        for _ in range(r):
            for key in rows:
                cpu_start, start = _cpu_seconds(), time.perf_counter()
                results[key] = paths[key]()
                times[key].append(time.perf_counter() - start)
                cpu[key].append(_cpu_seconds() - cpu_start)

    assert results["c"] == source_frames, f"decoded {results['c']} frames, headers say {source_frames}"
    frames_a = results["a"]
    sampled = sum(len(f) for f in frames_a)
    diffs = {
        "a_vs_b": _mean_abs_diff(_ffmpeg_fps_frames(videos, transform, args.fps), results["b"]),
        "a_vs_d": _mean_abs_diff(frames_a, results["d"]),
    }
    if "a_alt" in results:
        diffs["a_vs_a_alt"] = _mean_abs_diff(frames_a, results["a_alt"])
    speed = {key: source_frames / min(times[key]) for key in rows}

    print(f"{len(videos)} video(s), {source_frames} source frames, {sampled} frames sampled at "
          f"{args.fps:g} fps, transform {transform.key()}, {r} interleaved repeats")
    print(f"{'path':<8}{'what':<46}{'best s':>9}{'median s':>10}{'cpu s':>8}{'frames/s':>12}")
    for key, what in rows.items():
        t = times[key]
        print(f"{key:<8}{what:<46}{min(t):>9.3f}{statistics.median(t):>10.3f}{min(cpu[key]):>8.3f}"
              f"{speed[key]:>12.1f}")
    print("frames/s = source-video frames covered per second of wall time, from the best of the repeats;\n"
          "cpu s = CPU time of this process and its children (FFmpeg), all threads, best of the repeats")
    print("mean |difference| of the frames (grey levels): "
          + ", ".join(f"{k} {v:.2f}" for k, v in diffs.items()))
    print("(b's FFmpeg fps filter takes the last frame before i + 0.5 s, not the frame at i s as\n"
          " method.md §5 does; a_vs_b compares b with the project's decoding of those same frames)")
    result = {
        "benchmark": "decode",
        "smoke": args.smoke,
        "unit": "source-video frames covered per second (best of repeats)",
        "videos": [str(v) for v in videos],
        "source_frames": source_frames,
        "sampled_frames": sampled,
        "repeats": r,
        "backend": args.backend,
        **{f"{k}_frames_per_s": round(v, 2) for k, v in speed.items()},
        "cpu_s": {k: round(min(v), 4) for k, v in cpu.items()},
        "a_over_b": round(speed["a"] / speed["b"], 2),
        "a_over_c": round(speed["a"] / speed["c"], 2),
        "d_over_a": round(speed["d"] / speed["a"], 2),
        "mean_abs_diff": {k: round(v, 3) for k, v in diffs.items()},
    }
    print(json.dumps(result))
    return 0


def _configured_backend() -> str:
    """The backend the project's `frames` stage uses: params.yaml beside this folder, else auto."""
    params = Path(__file__).resolve().parents[1] / "params.yaml"
    if not params.is_file():
        return "auto"
    return load_params(params).frames.backend


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _mean_abs_diff(xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
    total, count = 0.0, 0
    for x, y in zip(xs, ys, strict=True):
        n = min(len(x), len(y))  # ffmpeg's fps filter may emit one frame more or less at the end
        total += float(np.abs(x[:n].astype(np.int16) - y[:n]).sum())
        count += x[:n].size
    return total / max(count, 1)


if __name__ == "__main__":
    sys.exit(main())
