"""How fast does pretraining run, level by level, on the CPU default (and the paper preset on a GPU)?

    .venv/bin/python benchmarks/pretrain.py --pairs DIR --corpus DIR [--params params.yaml]
        [--steps 5] [--warmup 1] [--threads 0] [--paper]
    .venv/bin/python benchmarks/pretrain.py --smoke   # seconds: the smoke world, paired here, 1 + 1 steps

It first measures the machine's single-precision matrix-multiply rate (a 1024^3 matmul, same threads)
and the visual encoder's FLOPs per frame (torch's FLOP counter on one forward pass at the model's
image size); each level's row then says the GFLOP/s the visual step achieved (3x the forward FLOPs:
forward + backward) and its share of that peak, which is where CPU time can be won (FLOPs) and where
not (already near the peak). For each level (clip, phase, video) it builds the real trainer
(`hecvl.training.Trainer`) restricted to that level, warms the text-feature cache, runs --warmup
untimed optimizer steps and then --steps timed ones, and reports: steps/s, pairs/s ("clips/s": samples of
that level per second), frames/s,
the share of the step spent waiting for data (the loader's workers reading the frame store), and the process
CPU time per step (on a shared machine wall time inflates, CPU time much less). With --paper and CUDA it
repeats the measurement for params.yaml's `paper` preset on ONE GPU: the paper's GLOBAL batches (120 / 80 /
25 samples of 4 / 16 / 64 frames) trained exactly with the preset's chunked step (`train.chunk`), ResNet-50
at 336 px (random init) and a trainable text encoder (the local MiniLM with the paper's pooling: no
Bio_ClinicalBERT download), bf16 autocast, frames read from a JPEG frame store at 2 fps and 360x640 (built
here, in the benchmark's folder) by the preset's loader workers; per level: peak GPU memory and its share
of the card (goal <= 90 %), mean GPU utilisation (nvidia-ml-py; goal >= 85 %) and the data-wait share
(goal <= 5 %). The corpus needs at least 25 lectures for the video batch: the default synthetic world
(`hecvl synth --preset default`, 60 lectures, paired) serves; its 160x90 pictures are resized to 360x640
when the store is built, so the loader decodes and crops exactly the paper's geometry.
The last line of output is one JSON object. --smoke: without --pairs/--corpus, the smoke world
(`hecvl synth --preset smoke`) paired in a temporary folder, frame store there too, one warm-up and one
timed step per level: a check that the benchmark works, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from hecvl.config import LEVELS, Params, TextConfig, deep_merge, load_params
from hecvl.training.trainer import Trainer

# the paper preset on one GPU: its global batches and chunked step, random init, a trainable local text
# encoder (the step's cost is ResNet-50 at 336 px; no checkpoint files needed), workers reading the store
PAPER_TEXT = {**TextConfig().to_dict(), "pooling": "sum_last4", "freeze": False}
PAPER_RUN: dict[str, Any] = {"train": {"device": "cuda", "checkpoint_every": 0, "validation": {"every": 0},
                                       "num_workers": max(1, min(8, (os.cpu_count() or 2) - 1))},
                             "model": {"visual": {"weights": None}, "text": PAPER_TEXT}}


def matmul_peak_gflops(threads: int, n: int = 1024, repeats: int = 5) -> float:
    """The best single-precision matmul rate of this CPU at `threads` threads (GFLOP/s): the baseline."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def visual_flops_per_frame(model: torch.nn.Module, image_size: int) -> int:
    """Forward FLOPs of the visual encoder on one frame (torch's FLOP counter: convolutions, matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    visual = getattr(model, "module", model).visual
    frame = torch.zeros(1, 3, image_size, image_size, device=next(visual.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        visual(frame)
    return int(counter.get_total_flops())


class GpuSampler:
    """Mean GPU utilisation over a block, sampled every 0.2 s with nvidia-ml-py (None without it)."""

    def __init__(self, index: int = 0) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:  # no nvidia-ml-py or no driver: utilisation is simply not reported
            self.nvml = None
        self.samples: list[float] = []
        self._stop = threading.Event()

    def __enter__(self) -> GpuSampler:
        if self.nvml is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(float(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu))
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.nvml is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def bench_level(params: dict[str, Any], level: str, args: argparse.Namespace,
                peak_gflops: float | None = None) -> dict[str, Any]:
    """Time `args.steps` optimizer steps of one level with the real trainer."""
    steps = args.warmup + args.steps
    run = {k: v for k, v in params.items() if k not in ("study", "variants", "ablations")}  # a run
    cfg = deep_merge(run, {"train": {"schedule": "fine_to_coarse", "levels": [level], "steps": steps,
                                     "warmup_steps": 0}})
    trainer = Trainer(cfg, args.pairs, None, corpus_root=args.corpus, variant=f"bench-{level}")
    threads = args.threads or trainer.settings.threads
    if threads:
        torch.set_num_threads(threads)
    trainer.warm_text_cache()
    trainer.model.train()
    batches = trainer.loader(0)
    cuda = trainer.device.type == "cuda"
    for step in range(args.warmup):
        trainer.train_step(step, trainer.step_module, batches)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    wait = 0.0
    samples = 0
    t0, c0 = time.perf_counter(), time.process_time()
    with GpuSampler(trainer.device.index or 0) if cuda else _Null() as gpu:
        for step in range(args.warmup, steps):
            row = trainer.train_step(step, trainer.step_module, batches)
            wait += row["_data_wait_s"]
            samples += row["_samples"]
        if cuda:
            torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    frames = int(trainer.data[level].dataset.rows[0]["frames"])  # as planned in the manifest
    flops = visual_flops_per_frame(trainer.model, trainer.model.config.visual.image_size)
    work = 3 * flops * samples * frames / 1e9  # GFLOP: forward + backward (2x) of every frame
    achieved = work / wall
    out = {
        "level": level,
        "batch": trainer.data[level].batch_size,
        "frames_per_sample": frames,
        "steps_per_s": round(args.steps / wall, 3),
        "pairs_per_s": round(samples / wall, 2),
        "frames_per_s": round(samples * frames / wall, 1),
        "data_wait_share": round(wait / wall, 3),
        "cpu_s_per_step": round(cpu / args.steps, 3),
        "wall_s_per_step": round(wall / args.steps, 3),
        "visual_mflops_per_frame": round(flops / 1e6, 1),
        "visual_gflops_per_s": round(achieved, 2),
        "visual_share_of_matmul_peak": round(achieved / peak_gflops, 3) if peak_gflops else None,
        # per CPU-second: steadier than wall time on a shared machine
        "visual_gflops_per_cpu_s": round(work / cpu, 2),
        "threads": torch.get_num_threads(),
        "device": str(trainer.device),
    }
    if cuda:
        peak_bytes = torch.cuda.max_memory_reserved()
        total = torch.cuda.get_device_properties(trainer.device).total_memory
        out.update(chunk=trainer.settings.chunk, workers=trainer.settings.num_workers,
                   gpu_peak_memory_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2),
                   gpu_peak_reserved_gib=round(peak_bytes / 2**30, 2),
                   gpu_peak_share_of_card=round(peak_bytes / total, 3),
                   gpu_utilisation_percent=gpu.mean)
    return out


class _Null:
    mean = None

    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def estimate_run(params: Params, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Seconds of a whole `fine_to_coarse` run of train.steps from the per-level step times."""
    from hecvl.training.schedules import build_schedule

    train = params.train
    counts = build_schedule(train, train.steps).counts()
    est = {key: sum(counts[lvl] * results[lvl][key] for lvl in counts if counts[lvl])
           for key in ("wall_s_per_step", "cpu_s_per_step")}
    return {"steps": train.steps, "batches": counts, "wall_s": round(est["wall_s_per_step"], 1),
            "cpu_s": round(est["cpu_s_per_step"], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--pairs", type=Path, help="pair manifests (hecvl pair; required without --smoke)")
    parser.add_argument("--corpus", type=Path, help="the lecture corpus of the manifests (same)")
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per level")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (allocations, caches)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = train.threads / default)")
    parser.add_argument("--store-root", default=None,
                        help="where the frame store's packs go (default: as params.yaml)")
    parser.add_argument("--levels", nargs="+", default=list(LEVELS), choices=LEVELS)
    parser.add_argument("--paper", action="store_true",
                        help="also the paper preset's global batches on one GPU (needs CUDA)")
    parser.add_argument("--smoke", action="store_true", help="a check in seconds: smoke world, 1 + 1 steps")
    args = parser.parse_args(argv)
    os.environ.setdefault("HECVL_TRACKING", "off")
    if not args.smoke and (args.pairs is None or args.corpus is None):
        parser.error("--pairs and --corpus are required (or --smoke)")
    with tempfile.TemporaryDirectory(prefix="hecvl-bench-smoke-") as tmp:
        if args.smoke:
            _smoke_inputs(args, Path(tmp))
        return run(args)


def _smoke_inputs(args: argparse.Namespace, tmp: Path) -> None:
    """--smoke: one step of each kind, the smoke world paired unless given, the frame store in `tmp`."""
    from _smoke import pair_corpus, smoke_world, work_dir

    args.steps, args.warmup = 1, 1
    args.store_root = args.store_root or str(tmp / "store")
    if args.corpus is None:
        work = work_dir(tmp)
        args.corpus = smoke_world(work) / "corpus"
        args.pairs = args.pairs or work / f"pairs-{args.corpus.parent.name}"
    if args.pairs is None or not (args.pairs / "clip.parquet").is_file():
        args.pairs = pair_corpus(args.corpus, args.pairs or tmp / "pairs")


def run(args: argparse.Namespace) -> int:
    """Measure the levels (and the paper preset with --paper) and print the JSON line."""
    overrides = [{"train": {"store": {"root": args.store_root}}}] if args.store_root else []
    params = load_params(args.params, overrides)
    threads = args.threads or params.train.threads or torch.get_num_threads()
    peak = matmul_peak_gflops(threads)
    report: dict[str, Any] = {"benchmark": "pretrain", "smoke": args.smoke,
                              "cpu_default": {}, "torch": torch.__version__, "cpus": os.cpu_count(),
                              "matmul_peak_gflops": round(peak, 1), "matmul_threads": threads}
    print(f"matmul peak: {peak:.1f} GFLOP/s at {threads} thread(s)", file=sys.stderr)
    cpu_params = params.updated({"train": {"device": "cpu"}})
    for level in args.levels:
        res = bench_level(cpu_params.to_dict(), level, args, peak)
        report["cpu_default"][level] = res
        print(json.dumps(res), file=sys.stderr)
    if set(args.levels) == set(LEVELS):
        report["cpu_default_run_estimate"] = estimate_run(cpu_params, report["cpu_default"])
    if args.paper:
        if not torch.cuda.is_available():
            report["paper"] = "skipped: CUDA not available"
        else:
            paper = load_params(args.params, [{"preset": "paper"}, *overrides, PAPER_RUN]).to_dict()
            report["paper"] = {"global_batch": paper["train"]["batch_size"], "chunk": paper["train"]["chunk"],
                               "gpu": torch.cuda.get_device_name(0)}
            for level in args.levels:
                res = bench_level(paper, level, args)
                report["paper"][level] = res
                print(json.dumps(res), file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
