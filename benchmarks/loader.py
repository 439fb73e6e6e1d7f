"""Clip-level loader throughput against the raw decode rate of the same frames; `--paper`: the training
frame store against train-time MP4 decoding on real-resolution lectures, per CPU-second per worker.

Default mode: clips per second of `PairDataset("clip")` through `make_loader` with 0, 1 and 2 workers, and
of a plain decode loop over the same clips and frame times (one `hecvl.video` reader per video, the
same resize and crop, no Dataset, no DataLoader), in one run. Validation mode is used so both decode
exactly the same frames. The target: the loader with 2 workers within 1.5x of the raw rate
(raw / loader <= 1.5).

`--paper` (issue 23): 3 synthetic lectures of 3-4 min written as real ones are (1280x720, 25 fps, H.264
with libx264's default key-frame interval: `data.synthetic.lecture_video`), generated once into --work,
paired with the default rules (frames per sample: clip 4, phase 16, video 64). At the paper's geometry
(decode size 360x640, random 336 crop, training draws, uint8 tensors) it measures, as frames delivered
per CPU-second of the loading process (`time.process_time()`: all its threads, decoder threads too; what
one loader worker spends):
- `store_frames_per_cpu_s`: samples read from the frame store (`hecvl.video.store`, JPEG q90 on a 2 fps
  grid at 360x640) through the training dataset (`PairDataset` whose reader is the lecture's `Pack`);
- `decode_frames_per_cpu_s`: the same samples (same keys, so the same draws) decoded from the MP4 at
  train time by the default backend (`auto`: decord), and `pyav_decode_frames_per_cpu_s` by PyAV;
- `store_over_decode`; the store's `bytes_per_frame`; `build_over_decode_all`: CPU-seconds to build the
  store of every lecture over CPU-seconds to decode every frame of them (same backend, sequential, native
  size, RGB out);
- `raw_frames_per_cpu_s` and `jpeg_frames_per_cpu_s` at the CPU study's geometry (params.yaml
  `frames.transform.size`, crop `model.visual.image_size`), both stores on the same 2 fps grid: whether the
  raw encoding stays faster there.
The overall rates weigh the levels as one paper step of each does (the frames of its global batch: clip
120 x 4, phase 80 x 16, video 25 x 64); per-level rates are printed too. Goals: store >= 800 frames per
CPU-second, >= 50x the decode path, build <= 1.25x the decode-all floor. The last line printed is one
JSON object.

    .venv/bin/python benchmarks/loader.py                       # generates and pairs the smoke world
    .venv/bin/python benchmarks/loader.py --corpus data/world/corpus --pairs data/pairs --clips 256
    .venv/bin/python benchmarks/loader.py --smoke               # seconds: smoke world at scale 1, 16 clips
    .venv/bin/python benchmarks/loader.py --paper               # minutes the first time (lectures cached)
    .venv/bin/python benchmarks/loader.py --paper --smoke       # seconds: 1 lecture of 20-24 s, few samples
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _prepare(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path]:
    """The corpus and its pair manifests: as given, or the smoke world generated and paired here."""
    from _smoke import pair_corpus, smoke_world, work_dir

    os.environ.setdefault("HECVL_TRACKING", "off")
    corpus, pairs, work = args.corpus, args.pairs, tmp
    if corpus is None:
        work = work_dir(tmp) if args.smoke else tmp  # --smoke may share one generated world
        corpus = smoke_world(work, args.scale) / "corpus"
    if pairs is None or not (pairs / "clip.parquet").is_file():
        pairs = pair_corpus(corpus, pairs or work / f"pairs-{corpus.parent.name}")
    return corpus, pairs


def raw_decode(
    rows: list[dict], corpus: Path, size: tuple[int, int], crop: int | None, backend: str
) -> float:
    """Clips per second of a bare decode loop over the same frames (readers kept open per video)."""
    from hecvl.video import FrameTransform, open_video
    from hecvl.video.transform import centre_crop_origin

    transform = FrameTransform(size=size)
    readers: dict[str, object] = {}
    start = time.perf_counter()
    for row in rows:
        reader = readers.get(row["video"])
        if reader is None:
            reader = readers[row["video"]] = open_video(corpus / row["video"], backend=backend)
        info = reader.info
        times = np.clip(np.asarray(row["frame_times"]), 0.0, (info.num_frames - 1) / info.fps)
        frames = reader.frames_at(times, transform)
        if crop:
            top, left = centre_crop_origin(frames.shape[1], frames.shape[2], crop)
            frames = np.ascontiguousarray(frames[:, top : top + crop, left : left + crop])
    elapsed = time.perf_counter() - start
    for reader in readers.values():
        reader.close()
    return len(rows) / elapsed


def loader_rate(dataset: object, workers: int, batch_size: int) -> float:
    """Clips per second through make_loader, worker start-up included."""
    from hecvl.pairing.datasets import make_loader

    start = time.perf_counter()
    loader = make_loader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False)
    count = sum(len(batch["pair_id"]) for batch in loader)
    return count / (time.perf_counter() - start)


# --- --paper: the frame store against train-time decoding on real-resolution lectures ------------------
# lectures as real uploads are written: 1280x720, 25 fps, H.264 with libx264's default key-frame interval
# (drawn at 1/4 scale and enlarged: data.synthetic.lecture_video)
PAPER_LECTURES: dict[str, Any] = {"size": [720, 1280], "fps": 25, "render_scale": 4, "gop": "x264"}
PAPER_SIZE, PAPER_CROP = (360, 640), 336
PAPER_STEP_FRAMES = {"clip": 120 * 4, "phase": 80 * 16, "video": 25 * 64}  # frames of one global batch
LEVELS = ("clip", "phase", "video")


def _paper_corpus(work: Path, smoke: bool) -> tuple[Path, Path, dict[str, Any]]:
    """(corpus, pairs, world manifest): the lectures generated once into `work` and paired there."""
    from _smoke import pair_corpus

    from hecvl.synth.api import ensure_world

    lectures = {**PAPER_LECTURES, "duration_s": [20, 24] if smoke else [180, 240]}
    world = work / ("world-paper-smoke" if smoke else "world-paper")
    print(f"real-resolution lectures in {world} (generated once)", file=sys.stderr)
    # the smoke preset's world: 3 lectures (1 with --smoke), its small target videos beside them
    manifest = ensure_world(world, preset="smoke", seed=0, scale=1 / 3 if smoke else 1,
                            lecture_video=lectures)
    pairs = pair_corpus(world / "corpus", work / f"pairs-{world.name}")
    return world / "corpus", pairs, manifest


def store_dataset(pairs: Path, level: str, corpus: Path, packs: Path, settings: Any, **kwargs: Any) -> Any:
    """The training dataset served from the frame store: `PairDataset` whose reader is the lecture's
    `Pack` in `packs` (as the training loader reads once the store is wired in); `kwargs` as PairDataset's."""
    from hecvl.pairing.datasets import PairDataset
    from hecvl.video.store import Pack

    class FromStore(PairDataset):
        def reader(self, row: Any) -> Any:
            pack = self._readers.get(row["lecture_id"])
            if pack is None:
                pack = self._readers[row["lecture_id"]] = Pack(packs / f"{row['lecture_id']}.pack", settings)
            return pack

    return FromStore(pairs, level, corpus, **kwargs)


def _build_store(corpus: Path, lectures: list[str], root: Path, settings: Any) -> tuple[float, int, int]:
    """(CPU-seconds, frames, bytes) to build the packs of `lectures` afresh (timed every run)."""
    from hecvl.video.store import build_pack

    cpu, frames, nbytes = 0.0, 0, 0
    for lecture in lectures:
        start = time.process_time()
        meta = build_pack(corpus / lecture / "video.mp4", root / settings.key() / f"{lecture}.pack", settings)
        cpu += time.process_time() - start
        frames += int(meta["frames"])
        nbytes += int(meta["pack_bytes"])
    return cpu, frames, nbytes


def _decode_all(corpus: Path, lectures: list[str], backend: str) -> tuple[float, int]:
    """(CPU-seconds, frames) to decode every frame of every lecture, in order, native size, RGB out."""
    from hecvl.video import open_video
    from hecvl.video.reader import sample_times

    cpu, frames = 0.0, 0
    for lecture in lectures:
        start = time.process_time()
        with open_video(corpus / lecture / "video.mp4", backend=backend) as reader:
            for chunk in reader.iter_frames(sample_times(reader.info, reader.info.fps)):
                frames += len(chunk)
        cpu += time.process_time() - start
    return cpu, frames


def _keys(size: int, count: int) -> list[tuple[int, int]]:
    """`count` training keys (epoch, index): a seeded shuffle, a new epoch (new draws) when it runs out."""
    order = np.random.default_rng(0).permutation(size)
    return [(k // size, int(order[k % size])) for k in range(count)]


def _frames_per_cpu_s(dataset: Any, keys: list[tuple[int, int]]) -> tuple[float, int, float]:
    """(frames per CPU-second, frames, CPU-seconds) of `dataset[key]` over `keys` in this process, each
    lecture's reader opened first (a persistent worker opens it once)."""
    import torch

    for row in {r["lecture_id"]: r for r in dataset.rows}.values():
        dataset.reader(row)
    frames = 0
    start = time.process_time()
    for key in keys:
        sample = dataset[key]
        assert sample["frames"].dtype == torch.uint8  # what crosses the worker boundary
        frames += int(sample["frames"].shape[0])
    cpu = time.process_time() - start
    dataset.close()
    return frames / cpu, frames, cpu


def _schedule_rate(by_level: dict[str, float]) -> float:
    """Frames per CPU-second over one paper step of each level (each level's frames its batch's share)."""
    total = sum(PAPER_STEP_FRAMES.values())
    return total / sum(PAPER_STEP_FRAMES[lvl] / by_level[lvl] for lvl in LEVELS)


def _counts(clip_samples: int) -> dict[str, int]:
    """Samples per level for about the same frames at every level (4, 16, 64 frames per sample)."""
    return {"clip": clip_samples, "phase": max(1, clip_samples // 4), "video": max(1, clip_samples // 16)}


def _level_rates(make: Any, counts: dict[str, int], label: str) -> dict[str, dict[str, float]]:
    out = {}
    for level in LEVELS:
        dataset = make(level)
        rate, frames, cpu = _frames_per_cpu_s(dataset, _keys(len(dataset), counts[level]))
        out[level] = {"frames_per_cpu_s": round(rate, 2), "frames": frames, "cpu_s": round(cpu, 3)}
        print(f"{label:<28}{level:<7}{frames:>6} frames {cpu:>8.2f} CPU-s {rate:>10.1f} frames/CPU-s",
              file=sys.stderr)
    return out


def paper_main(args: argparse.Namespace) -> int:
    """`--paper`: see the module docstring."""
    from hecvl.config import load_params
    from hecvl.pairing.manifest import read_manifest
    from hecvl.video import probe
    from hecvl.video.store import StoreSettings

    os.environ.setdefault("HECVL_TRACKING", "off")
    smoke = args.smoke
    store_samples = args.samples or (16 if smoke else 256)
    decode_samples = args.decode_samples or (4 if smoke else 16)
    with tempfile.TemporaryDirectory(prefix="hecvl-loader-paper-") as tmp:
        from _smoke import work_dir

        work = args.work or (work_dir(Path(tmp)) if smoke else ROOT / "benchmarks" / "out" / "loader")
        work.mkdir(parents=True, exist_ok=True)
        corpus, pairs, manifest = _paper_corpus(work, smoke)
        lectures = list(manifest["corpus"]["lectures"])
        infos = [probe(corpus / lid / "video.mp4") for lid in lectures]
        frames_per = {lvl: sorted({int(r["frames"]) for r in read_manifest(pairs, lvl).to_pylist()})
                      for lvl in LEVELS}
        stores = Path(tmp) / "store"  # built afresh every run: the build is one of the figures
        backend = args.backend
        paper = StoreSettings(fps=2.0, size=PAPER_SIZE, encoding="jpeg", quality=90, backend=backend)
        print(f"building the store {paper.key()} of {len(lectures)} lectures", file=sys.stderr)
        build_cpu, stored, nbytes = _build_store(corpus, lectures, stores, paper)
        all_cpu, all_frames = _decode_all(corpus, lectures, backend)
        print(f"store build {build_cpu:.2f} CPU-s ({stored} frames, {nbytes / stored / 1e3:.1f} KB each); "
              f"decoding all {all_frames} frames {all_cpu:.2f} CPU-s ({backend})", file=sys.stderr)

        common = {"train": True, "seed": 0, "dtype": "uint8", "max_open_videos": 4}

        def from_store(settings: StoreSettings, crop: int) -> Any:
            return lambda level: store_dataset(pairs, level, corpus, stores / settings.key(), settings,
                                               size=settings.size, crop=crop, **common)

        def from_mp4(decoder: str) -> Any:
            from hecvl.pairing.datasets import PairDataset

            return lambda level: PairDataset(pairs, level, corpus, size=PAPER_SIZE, crop=PAPER_CROP,
                                             backend=decoder, **common)

        store = _level_rates(from_store(paper, PAPER_CROP), _counts(store_samples), "store jpeg 360x640")
        decode = _level_rates(from_mp4(backend), _counts(decode_samples), f"mp4 decode ({backend})")
        pyav = _level_rates(from_mp4("pyav"), _counts(decode_samples), "mp4 decode (pyav)")

        # the CPU study's geometry: raw against jpeg, both on the 2 fps grid
        study = load_params(ROOT / "params.yaml")
        size, crop = tuple(study.frames.transform.size), int(study.model.visual.image_size)
        small: dict[str, Any] = {"size": list(size), "crop": crop}
        for encoding in ("raw", "jpeg"):
            settings = StoreSettings(fps=2.0, size=size, encoding=encoding, quality=90, backend=backend)
            _cpu, count, stored_bytes = _build_store(corpus, lectures, stores, settings)
            rates = _level_rates(from_store(settings, crop), _counts(store_samples), f"store {encoding} "
                                 f"{size[0]}x{size[1]}")
            small[f"{encoding}_frames_per_cpu_s"] = round(_schedule_rate(
                {lvl: r["frames_per_cpu_s"] for lvl, r in rates.items()}), 1)
            small[f"{encoding}_bytes_per_frame"] = round(stored_bytes / count)
            small[f"{encoding}_by_level"] = rates
        small["raw_over_jpeg"] = round(small["raw_frames_per_cpu_s"] / small["jpeg_frames_per_cpu_s"], 3)

    def overall(rates: dict[str, dict[str, float]]) -> float:
        return _schedule_rate({lvl: r["frames_per_cpu_s"] for lvl, r in rates.items()})

    store_rate, decode_rate, pyav_rate = overall(store), overall(decode), overall(pyav)
    ratio, build_ratio = store_rate / decode_rate, build_cpu / all_cpu
    goals = {"store_frames_per_cpu_s": 800, "store_over_decode": 50, "build_over_decode_all": 1.25}
    result = {
        "benchmark": "loader",
        "mode": "paper",
        "smoke": smoke,
        "cpus": os.cpu_count(),
        "lectures": {"count": len(lectures), "size": [infos[0].height, infos[0].width], "fps": infos[0].fps,
                     "codec": infos[0].codec, "key_frames": "libx264 default (keyint 250, scene cuts)",
                     "duration_s": round(sum(i.duration_s for i in infos), 1),
                     "frames": sum(i.num_frames for i in infos)},
        "geometry": {"size": list(PAPER_SIZE), "crop": PAPER_CROP, "frames_per_sample": frames_per,
                     "step_frames": PAPER_STEP_FRAMES},
        "store": {"key": paper.key(), "frames": stored, "bytes": nbytes},
        "backend": backend,
        "store_frames_per_cpu_s": round(store_rate, 1),
        "decode_frames_per_cpu_s": round(decode_rate, 2),
        "pyav_decode_frames_per_cpu_s": round(pyav_rate, 2),
        "store_over_decode": round(ratio, 1),
        "store_over_pyav_decode": round(store_rate / pyav_rate, 1),
        "bytes_per_frame": round(nbytes / stored),
        "build_cpu_s": round(build_cpu, 2),
        "decode_all_cpu_s": round(all_cpu, 2),
        "decode_all_frames": all_frames,
        "build_over_decode_all": round(build_ratio, 3),
        "by_level": {"store": store, "decode": decode, "pyav_decode": pyav},
        "raw_frames_per_cpu_s": small["raw_frames_per_cpu_s"],
        "cpu_default": small,
        "goals": goals,
        "pass": {"store_frames_per_cpu_s": bool(store_rate >= 800), "store_over_decode": bool(ratio >= 50),
                 "build_over_decode_all": bool(build_ratio <= 1.25)},
    }
    print(json.dumps(result, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="lecture corpus (default: generate the smoke world)")
    parser.add_argument("--pairs", type=Path, help="pair manifests of the corpus (default: pair it here)")
    parser.add_argument("--scale", type=float, default=8.0, help="--scale of the generated smoke world")
    parser.add_argument("--clips", type=int, default=256, help="clips measured (the first N of the manifest)")
    parser.add_argument("--size", type=int, nargs=2, default=[72, 96], metavar=("H", "W"))
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--backend", default="auto", choices=["auto", "decord", "pyav"])
    parser.add_argument("--repeats", type=int, default=2, help="best of N timings per setting")
    parser.add_argument("--smoke", action="store_true", help="a check in seconds: 16 clips, 1 repeat")
    parser.add_argument("--paper", action="store_true",
                        help="the frame store against train-time decoding on 720p25 lectures (docstring)")
    parser.add_argument("--work", type=Path, help="--paper: where the lectures are kept between runs "
                        "(default: benchmarks/out/loader; --smoke: $HECVL_BENCH_SMOKE_DIR or a temp dir)")
    parser.add_argument("--samples", type=int, help="--paper: store samples at the clip level (a quarter "
                        "at the phase level, a sixteenth at the video level; default 256, --smoke 16)")
    parser.add_argument("--decode-samples", type=int,
                        help="--paper: the same for the MP4 decode paths (default 16, --smoke 4)")
    args = parser.parse_args(argv)
    if args.paper:
        return paper_main(args)
    if args.smoke:
        args.scale, args.clips, args.repeats = 1.0, min(args.clips, 16), 1

    from hecvl.pairing.datasets import PairDataset
    from hecvl.pairing.manifest import read_manifest

    with tempfile.TemporaryDirectory(prefix="hecvl-loader-bench-") as tmp:
        corpus, pairs = _prepare(args, Path(tmp))
        rows = read_manifest(pairs, "clip").to_pylist()[: args.clips]
        size, crop = tuple(args.size), args.crop
        dataset = PairDataset(
            pairs,
            "clip",
            corpus,
            size=size,
            crop=crop,
            backend=args.backend,
            pair_ids={r["pair_id"] for r in rows},
        )
        raw = max(raw_decode(rows, corpus, size, crop, args.backend) for _ in range(args.repeats))
        print(f"raw decode: {raw:.1f} clips/s", file=sys.stderr)
        rates = {}
        for workers in (0, 1, 2):
            rates[str(workers)] = max(
                loader_rate(dataset, workers, args.batch_size) for _ in range(args.repeats)
            )
            print(f"loader, {workers} workers: {rates[str(workers)]:.1f} clips/s", file=sys.stderr)
    ratio = raw / rates["2"]
    result = {
        "benchmark": "loader",
        "smoke": args.smoke,
        "clips": len(rows),
        "frames_per_clip": int(rows[0]["frames"]) if rows else 0,
        "videos": len({r["video"] for r in rows}),
        "size": list(size),
        "crop": crop,
        "backend": args.backend,
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "raw_clips_per_s": round(raw, 2),
        "loader_clips_per_s": {k: round(v, 2) for k, v in rates.items()},
        "raw_over_loader_2_workers": round(ratio, 3),
        "target": 1.5,
        "pass": bool(ratio <= 1.5),
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
