"""Activation memory of pretraining, and what the chunked step (`train.chunk`) saves of it.

Two figures, both counted as the bytes autograd saves for backward (`hecvl.training.memory`: exact on
CPU and GPU alike, parameters excluded):
- `activation_bytes_per_frame`: the visual encoder at a size and precision (default: the paper's
  ResNet-50 at 336 px, fp32 and bf16 autocast, channels_last), with what the paper's global batches
  (480 / 1,280 / 1,600 frames) would need at that rate;
- one training step of a clip batch that fits this machine (the CPU study's model, BatchNorm in eval mode
  so the two steps are comparable bit for bit): `peak_chunked_over_full`, the chunked step's peak over the
  one-pass step's, and `max_rel_grad_diff` between their parameter gradients (`max_rel_grad_diff`).
The last line of output is one JSON object. --smoke: the tiny encoder at 32 px and a batch of 8 x 2
frames: a check that the benchmark works, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hecvl.config import Params, load_params
from hecvl.models import build_model
from hecvl.models.visual_encoder import VisualEncoder
from hecvl.training.memory import (
    SavedTensorMeter,
    activation_bytes_per_frame,
    max_rel_grad_diff,
    parameter_grads,
)
from hecvl.training.step import ContrastiveStep

PAPER_FRAMES = {"clip": 120 * 4, "phase": 80 * 16, "video": 25 * 64}  # the paper's global batches
DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def encoder_figures(params: Params, preset: str, image_size: int, precision: str) -> dict[str, Any]:
    """Saved bytes per frame of the visual encoder, and the paper's batches at that rate (GB)."""
    cfg = params.model.visual.replace(preset=preset, image_size=image_size, weights=None)
    visual = VisualEncoder(cfg, pretrained=False).to(memory_format=torch.channels_last).train()
    t0 = time.perf_counter()
    per_frame = activation_bytes_per_frame(visual, image_size, DTYPES[precision])
    print(f"{preset} at {image_size} px, {precision}: {per_frame / 1e6:.1f} MB per frame "
          f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return {"preset": preset, "image_size": image_size, "precision": precision,
            "activation_bytes_per_frame": int(per_frame),
            "paper_batch_gb": {lvl: round(n * per_frame / 1e9, 1) for lvl, n in PAPER_FRAMES.items()}}


def step_figures(params: Params, batch: int, frames: int, chunk: int, image_size: int) -> dict[str, Any]:
    """One clip step, one pass and chunked: peak saved bytes of each and their gradients' difference."""
    cfg = params.updated({"model": {"visual": {"image_size": image_size}}}).model
    model = build_model(cfg, seed=params.seed).eval()
    gen = torch.Generator().manual_seed(0)
    batches = {"clip": {"frames": torch.randn(batch, frames, 3, image_size, image_size, generator=gen),
                        "text": [f"narration {i}" for i in range(batch)]}}
    step = ContrastiveStep(model)
    weights = list(model.parameters())
    out: dict[str, Any] = {"batch": batch, "frames_per_sample": frames, "chunk": chunk,
                           "image_size": image_size}
    grads = {}
    for name in ("full", "chunked"):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        with SavedTensorMeter(weights) as meter:
            if name == "full":
                step(batches)["total"].backward()
            else:
                step.chunked_backward(batches, chunk)
        out[f"{name}_s"] = round(time.perf_counter() - t0, 3)
        out[f"{name}_peak_bytes"] = meter.peak
        grads[name] = parameter_grads(model)
    out["peak_chunked_over_full"] = round(out["chunked_peak_bytes"] / out["full_peak_bytes"], 4)
    out["max_rel_grad_diff"] = max_rel_grad_diff(grads["chunked"], grads["full"])
    print(json.dumps(out), file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--preset", default="resnet50", help="visual preset measured per frame")
    parser.add_argument("--image-size", type=int, default=336, help="per-frame figure's crop (px)")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=sorted(DTYPES))
    parser.add_argument("--batch", type=int, default=32, help="clips in the measured step")
    parser.add_argument("--frames", type=int, default=4, help="frames per clip in the measured step")
    parser.add_argument("--chunk", type=int, default=16, help="train.chunk of the chunked step (frames)")
    parser.add_argument("--step-image-size", type=int, default=0,
                        help="crop of the measured step (0 = the params' model.visual.image_size)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--smoke", action="store_true", help="a check in seconds: tiny encoder and batch")
    args = parser.parse_args(argv)
    os.environ.setdefault("HECVL_TRACKING", "off")
    if args.smoke:
        args.preset, args.image_size, args.precision = "tiny", 32, ["fp32"]
        args.batch, args.frames, args.chunk, args.step_image_size = 8, 2, 4, 32
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(args.params)
    report: dict[str, Any] = {"benchmark": "memory", "smoke": args.smoke, "torch": torch.__version__,
                              "threads": torch.get_num_threads()}
    report["encoder"] = [encoder_figures(params, args.preset, args.image_size, p) for p in args.precision]
    report["activation_bytes_per_frame"] = report["encoder"][0]["activation_bytes_per_frame"]
    size = args.step_image_size or params.model.visual.image_size
    report["step"] = step_figures(params, args.batch, args.frames, args.chunk, size)
    report["peak_chunked_over_full"] = report["step"]["peak_chunked_over_full"]
    report["max_rel_grad_diff"] = report["step"]["max_rel_grad_diff"]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
