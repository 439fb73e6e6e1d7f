"""`hecvl frames`: decode the 1 fps evaluation frames of videos once, into the frame cache.

    hecvl frames VIDEO... --cache DIR [--size H W] [--crop C] [--fps 1]
    hecvl frames --params params.yaml --dataset cholec80 [--split test|all] [--out manifest.json]

With `--params`, the videos are those of a target dataset's split (`all`: every split) and the
transform, rate, backend and cache folder come from the `frames:` section; options given on the
command line win. `--out` writes a manifest (video -> cache entry), the file the workflow tracks.
It lives in the datasets layer, above hecvl.video, because `--dataset` needs the dataset registry.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hecvl.config import FramesSettings, Params, load_params
from hecvl.datasets.registry import TargetDataset
from hecvl.errors import HecvlError
from hecvl.io import write_json
from hecvl.video import frames_setup
from hecvl.video.cache import FrameCache
from hecvl.video.reader import BACKENDS
from hecvl.video.transform import RESAMPLE_METHODS, FrameTransform


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="*", type=Path, help="video files (or use --params/--dataset)")
    parser.add_argument("--params", type=Path, help="params.yaml: take settings from its `frames:` section")
    parser.add_argument("--variant", help="variant of params.yaml to resolve (default: the main one)")
    parser.add_argument("--dataset", help="target dataset of data.targets whose videos to cache")
    parser.add_argument("--split", default="test", help="split of --dataset, or `all` (default: test)")
    parser.add_argument("--cache", type=Path, help="frame cache folder (default: frames.cache)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="resize to exactly H x W")
    parser.add_argument("--crop", type=int, help="centre crop to C x C after the resize")
    parser.add_argument("--resample", choices=RESAMPLE_METHODS, help="resize method (default: bilinear)")
    parser.add_argument("--fps", type=float, help="frames per second of video (default: 1)")
    parser.add_argument("--backend", choices=BACKENDS, help="decoder (default: frames.backend, else auto)")
    parser.add_argument("--out", type=Path, help="write a JSON manifest of the cache entries here")


def run(args: argparse.Namespace) -> int:
    settings = FramesSettings(backend="auto")  # listed videos: only the command line decides
    videos: dict[str, Path] = {str(v): v for v in args.videos}
    if args.params is not None:
        params = load_params(args.params).variant(args.variant)
        settings = params.frames
        if args.dataset:
            videos.update(dataset_videos(params, args.dataset, args.split))
    elif args.dataset:
        raise HecvlError("--dataset needs --params (the file that defines the dataset)")
    if not videos:
        raise HecvlError("no videos: give video files or --params with --dataset")

    if args.params is None and args.cache is None:
        raise HecvlError("give --cache DIR (or --params with a `frames:` section)")
    cache, transform, fps = frames_setup(settings)
    overrides = {"size": args.size, "crop": args.crop, "resample": args.resample}
    if args.params is None:  # listed videos: the transform is exactly what the command line says
        transform = _transform({"size": None, "crop": None, "resample": "bilinear"} | overrides)
    elif any(v is not None for v in overrides.values()):
        transform = _transform(transform.to_dict() | {k: v for k, v in overrides.items() if v is not None})
    fps = args.fps if args.fps is not None else fps
    root = args.cache if args.cache is not None else cache.root
    cache = FrameCache(root, backend=args.backend or cache.backend)

    entries: dict[str, Any] = {}
    total = 0
    for name, path in tqdm(videos.items(), desc="frames", unit="video", disable=None):
        arr = cache.get(path, transform, fps=fps, progress=True)
        data, sidecar = cache.entry_paths(path, transform, fps)
        entries[name] = {
            "video": str(path),
            "sha256": cache.video_hash(path),
            "frames": str(data),
            "sidecar": str(sidecar),
            "shape": list(arr.shape),
        }
        total += len(arr)
    if args.out is not None:
        write_json(
            args.out,
            {
                "dataset": args.dataset,
                "split": args.split if args.dataset else None,
                "cache": str(root),
                "fps": fps,
                "transform": transform.key(),
                "transform_params": transform.to_dict(),
                "videos": entries,
            },
        )
    print(f"{len(entries)} video(s), {total} frames at {fps:g} fps ({transform.key()}) in {root}")
    return 0


def dataset_videos(params: Params, dataset: str, split: str) -> dict[str, Path]:
    """Video id -> file of one split of a target dataset (`all`: the union of its splits)."""
    ds = TargetDataset.from_params(dataset, params)
    ids = sorted({v for ids in ds.splits().values() for v in ids}) if split == "all" else ds.split(split)
    return {video: ds.video_path(video) for video in ids}


def _transform(cfg: dict[str, Any]) -> FrameTransform:
    try:
        return FrameTransform(size=cfg["size"], crop=cfg["crop"], resample=cfg["resample"] or "bilinear")
    except ValueError as exc:
        raise HecvlError(f"invalid frame transform: {exc}") from None
