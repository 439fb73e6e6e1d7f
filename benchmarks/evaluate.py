"""How fast does zero-shot evaluation run end to end, against decoding alone?

    .venv/bin/python benchmarks/evaluate.py [VIDEO...] [--params params.yaml] [--dataset NAME ...]
        [--split test] [--weights DIR] [--space S] [--prompts P] [--repeats 3] [--device auto]
    .venv/bin/python benchmarks/evaluate.py --smoke   # seconds: the smoke world, its smoke-preset datasets

Without VIDEO arguments, the videos are the `--split` videos of every `--dataset` (default: the
study's datasets in params.yaml, i.e. the synthetic world after `hecvl synth`). The model is the
default one (`model:` of params.yaml, seeded fresh) unless --weights names a saved model; a fresh
model costs exactly what a trained one of the same configuration costs.

Timed on the same videos in one run, with interleaved repeats (best time used; other jobs on the
machine only ever add time):
  decode    the 1 fps path of hecvl.video: a FrameCache in a fresh folder decodes every second,
            resizes and crops (the `frames:` transform) and stores the entry;
  cold      the evaluation's path with both caches empty: decode as above, preprocess, embed every
            frame in the evaluated space(s), score against the class prompts, argmax;
  warm      the same evaluation again, served from the caches of the cold run (no decoding, no
            embedding: the second and later evaluations of an ablation).
Fixed costs paid once per evaluation (loading the model, embedding the prompts) are reported apart.
Unit: 1 fps evaluation frames (= seconds of video) per second of wall time. Target: cold >= 0.8 x
decode. The last line of output is one JSON object. --smoke: params.yaml's `smoke` preset on a smoke
world generated in a temporary folder (`hecvl synth --preset smoke`), 1 repeat: a check that the
benchmark works, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hecvl.config import Params, load_params
from hecvl.evaluation.embed import EmbeddingCache, levels_for, pick_device, video_embeddings
from hecvl.evaluation.evaluate import frame_source
from hecvl.evaluation.metrics import argmax_predictions
from hecvl.evaluation.prompts import load_prompts, prompts_for
from hecvl.evaluation.sources import OURS, UNTRAINED, SourceRequest
from hecvl.evaluation.zeroshot import class_embeddings, zero_shot_scores
from hecvl.video import FrameCache, probe

TARGET = 0.8


def dataset_videos(params: Params, datasets: list[str], split: str) -> dict[str, Path]:
    from hecvl.datasets.registry import TargetDataset

    out = {}
    for name in datasets:
        ds = TargetDataset.from_params(name, params)
        out.update({f"{name}/{v}": ds.video_path(v) for v in ds.split(split)})
    return out


def smoke_params(path: Path, world: Path) -> Params:
    """`path` with its smoke preset, every data path under its data.root moved to the generated `world`."""
    params = load_params(path, [{"preset": "smoke"}])
    root = Path(params.data.root)

    def moved(p: str) -> str:
        return str(world / Path(p).relative_to(root)) if Path(p).is_relative_to(root) else p

    targets = {name: {"root": moved(t.root)} for name, t in params.data.targets.items()}
    data = {"root": str(world), "corpus": moved(params.data.corpus), "targets": targets}
    return params.updated({"data": data})


def decode_only(videos: dict[str, Path], transform, root: Path) -> int:
    cache = FrameCache(root)
    return sum(len(cache.get(path, transform, fps=1.0)) for path in videos.values())


def evaluate_videos(
    model,
    videos: dict[str, Path],
    transform,
    roots: tuple[Path, Path],
    class_emb,
    levels,
    settings,
    device,
) -> dict[str, np.ndarray]:
    """The evaluation's own code path (hecvl.evaluation), minus labels and output files."""
    frame_root, emb_root = roots
    frame_cache = FrameCache(frame_root)
    keyed = {name.replace("/", "__"): path for name, path in videos.items()}
    emb = video_embeddings(
        model,
        keyed,
        lambda p: frame_cache.get(p, transform, fps=1.0),
        identify=frame_cache.video_hash,
        cache=EmbeddingCache(emb_root, "bench", "bench", transform.key()),
        levels=levels,
        batch_size=settings.batch_size,
        device=device,
    )
    return {v: argmax_predictions(zero_shot_scores(e, class_emb, levels)) for v, e in emb.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--dataset", action="append", help="target dataset(s) (default: study.datasets)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--weights", type=Path, help="a saved model (default: the configured model, fresh)")
    parser.add_argument("--space", help="embedding space (default: eval.space)")
    parser.add_argument("--prompts", help="prompt style (default: eval.prompts)")
    parser.add_argument("--prompt-dataset", default="cholec80", help="whose prompts score VIDEO arguments")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", help="auto | cpu | cuda (default: eval.device)")
    parser.add_argument("--smoke", action="store_true", help="a check in seconds: the smoke world, 1 repeat")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hecvl-bench-smoke-") as tmp:
        if args.smoke:
            from _smoke import smoke_world, work_dir

            args.repeats = 1
            params = smoke_params(args.params, smoke_world(work_dir(Path(tmp))))
        else:
            params = load_params(args.params)
        return run(args, params, parser)


def run(args: argparse.Namespace, params: Params, parser: argparse.ArgumentParser) -> int:
    """Time decode, cold and warm evaluation of the videos and print the table and the JSON line."""
    changes = {"space": args.space, "prompts": args.prompts, "device": args.device}
    settings = params.eval.replace(**{k: v for k, v in changes.items() if v is not None})
    if args.videos:
        videos = {p.stem: p for p in args.videos}
        prompt_source = args.prompt_dataset
    else:
        datasets = args.dataset or list(params.study.datasets)
        videos = dataset_videos(params, datasets, args.split)
        from hecvl.datasets.registry import TargetDataset

        prompt_source = TargetDataset.from_params(datasets[0], params)
    if not videos:
        parser.error("no videos: give video files or datasets with videos in the split")
    _, transform = frame_source(params)
    device = pick_device(settings.device)
    levels = levels_for(settings.space)
    infos = [probe(p) for p in videos.values()]
    seconds = sum(int(np.ceil(i.num_frames / i.fps)) for i in infos)

    start = time.perf_counter()
    family = OURS if args.weights else UNTRAINED  # a saved model, or the configured one fresh
    model, _key, model_desc = family.build(SourceRequest(params, weights=args.weights)).load(device)
    model_load_s = time.perf_counter() - start
    start = time.perf_counter()
    if isinstance(prompt_source, str):
        prompt_set = load_prompts(prompt_source, settings.prompts)
    else:
        prompt_set = prompts_for(prompt_source, settings.prompts, settings.prompt_file)
    class_emb = class_embeddings(model, prompt_set, levels)
    prompt_s = time.perf_counter() - start

    times: dict[str, list[float]] = {"decode": [], "cold": [], "warm": []}
    predictions: dict[str, dict[str, np.ndarray]] = {}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="hecvl-bench-eval-") as tmp:
            tmp = Path(tmp)
            t0 = time.perf_counter()
            decoded = decode_only(videos, transform, tmp / "decode")
            times["decode"].append(time.perf_counter() - t0)
            for key in ("cold", "warm"):  # warm reuses the caches the cold run filled
                t0 = time.perf_counter()
                predictions[key] = evaluate_videos(
                    model,
                    videos,
                    transform,
                    (tmp / "frames", tmp / "emb"),
                    class_emb,
                    levels,
                    settings,
                    device,
                )
                times[key].append(time.perf_counter() - t0)
    if decoded != seconds:
        raise SystemExit(f"decoded {decoded} frames at 1 fps, expected {seconds}")
    for v in predictions["cold"]:
        if not np.array_equal(predictions["cold"][v], predictions["warm"][v]):
            raise SystemExit(f"{v}: predictions served from the caches differ from the cold run")

    rate = {k: seconds / min(t) for k, t in times.items()}
    print(
        f"{len(videos)} video(s), {seconds} frames at 1 fps, transform {transform.key()}, "
        f"model {model_desc}, space {settings.space} ({'+'.join(levels)}), device {device}, "
        f"{args.repeats} interleaved repeats"
    )
    print(f"{'path':<8}{'best s':>9}{'median s':>10}{'frames/s':>11}")
    for key, t in times.items():
        print(f"{key:<8}{min(t):>9.3f}{statistics.median(t):>10.3f}{rate[key]:>11.1f}")
    print(f"fixed costs, once per evaluation: model load {model_load_s:.2f} s, prompts {prompt_s:.2f} s")
    ratio = rate["cold"] / rate["decode"]
    warm_x = rate["warm"] / rate["cold"]
    # each repeat times decode and evaluation back to back: their ratio within a repeat shares the
    # machine's load at that moment, so the median of those ratios is steadier on a shared machine
    paired = statistics.median(d / c for d, c in zip(times["decode"], times["cold"], strict=True))
    print(
        f"cold / decode = {ratio:.2f} (best times; paired median {paired:.2f}; target >= {TARGET}), "
        f"warm / cold = {warm_x:.1f}"
    )
    result = {
        "benchmark": "evaluate",
        "smoke": args.smoke,
        "unit": "1 fps evaluation frames per second of wall time (best of repeats)",
        "videos": [str(p) for p in videos.values()],
        "frames": seconds,
        "transform": transform.key(),
        "model": model_desc,
        "space": settings.space,
        "device": str(device),
        "torch_threads": __import__("torch").get_num_threads(),
        "repeats": args.repeats,
        "decode_frames_per_s": round(rate["decode"], 2),
        "eval_cold_frames_per_s": round(rate["cold"], 2),
        "eval_warm_frames_per_s": round(rate["warm"], 2),
        "cold_over_decode": round(ratio, 3),
        "cold_over_decode_paired_median": round(paired, 3),
        "warm_over_cold": round(warm_x, 2),
        "target_cold_over_decode": TARGET,
        "meets_target": bool(ratio >= TARGET),
        "model_load_s": round(model_load_s, 3),
        "prompt_embedding_s": round(prompt_s, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
