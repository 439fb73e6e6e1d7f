"""Pretraining: one variant of the study, trained for a fixed number of optimizer steps.

    result = pretrain(params, pairs_dir, out_dir, variant="hecvl")

What a run guarantees:
- Determinism: model initialisation, batch order and every sample's random draws are functions of
  `seed` (params) and the step; Python, NumPy and torch generators are seeded and checkpointed too.
  On CPU, a run killed at any point and resumed ends with bit-identical weights.
- Resumability: every `train.checkpoint_every` steps (and at the end) the main rank writes an atomic,
  checksummed checkpoint (model, optimizer, scheduler, RNG states, data position, losses so far).
  A new run in the same output folder resumes from the newest checkpoint that verifies; corrupt ones
  are reported and skipped (`checkpoint.latest_valid`); with none valid the run starts from step 0
  with a warning. A checkpoint written with other settings is refused (use another --out).
- Outputs (main rank only, all written atomically), in `out_dir`: `model.safetensors` + `config.json`
  (`save_pretrained`: `load_pretrained(out_dir)` reads them), `train_config.json` (resolved params,
  training settings, schedule, effective batch sizes; deterministic), `losses.csv` (one row per
  step: lr, every loss term, gradient norm; deterministic), `validation.csv` (zero-shot accuracy
  and F1 on the targets' validation split at step 0, every `train.validation.every` steps and at the
  end, per dataset and trained space; deterministic, checkpointed with the losses), `summary.json`
  (timing, throughput), `checkpoints/`.
- Tracking: one MLflow run per invocation (hecvl.tracking), with params, per-step metrics, system
  metrics and the outputs above as artifacts.
- Memory: `train.chunk` runs each step in two passes of at most that many frames (the gradient cache,
  `ContrastiveStep.chunked_backward`): the paper's global batches, negatives and all, on one GPU.
- Devices: CUDA when available (bf16 autocast), else CPU (fp32). Under torchrun: DDP with global
  batch sizes (see `distributed`).
- Data: one loader per run, its batches in schedule order (`hecvl.training.data.make_loader`); frames
  arrive as uint8 (pinned on CUDA) and are normalised on the device (`hecvl.training.data.normalise`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from hecvl import layout
from hecvl.config import Params, TrainSettings, coerce_params, run_key
from hecvl.config.identity import validation_datasets
from hecvl.errors import HecvlError
from hecvl.evaluation.validation import COLUMNS as VALIDATION_COLUMNS
from hecvl.evaluation.validation import Validation
from hecvl.io import sha256_file, write_csv, write_json
from hecvl.models import build_model, save_pretrained
from hecvl.pairing.positives import positive_rule
from hecvl.training import checkpoint as ckpt
from hecvl.training.data import FrameStore, LevelData, build_level_data, make_loader, normalise
from hecvl.training.distributed import (
    DistEnv,
    average_gradients,
    broadcast_object,
    init_distributed,
    shutdown,
    sync_batchnorm,
)
from hecvl.training.optim import build_optimizer
from hecvl.training.schedules import Schedule, build_schedule, steps_for_epochs
from hecvl.training.step import STATISTICS, ContrastiveStep

log = logging.getLogger(__name__)



@dataclass
class PretrainResult:
    out_dir: Path
    model_dir: Path
    steps: int
    start_step: int  # 0 for a fresh run, else the checkpoint step it resumed from
    seconds: float
    losses: pd.DataFrame = field(repr=False)
    is_main: bool = True  # False on the other ranks of a torchrun job (which write nothing)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def config_fingerprint(params: Params, pairs_dir: Path) -> str:
    """The run's identity (`hecvl.config.run_key`) with the bytes of its pair manifests: a checkpoint
    resumes only a run with the same fingerprint; evaluation settings, study lists and the like may
    change in between."""
    manifests = {p.name: sha256_file(p) for p in sorted(Path(pairs_dir).glob("*.parquet"))}
    return run_key(params, manifests)


class Trainer:
    """Builds everything a run needs; `train()` runs it. Also used by the benchmark to time steps."""

    def __init__(
        self,
        params: Params | Mapping[str, Any],
        pairs_dir: str | Path,
        out_dir: str | Path | None,
        *,
        corpus_root: str | Path | None = None,
        variant: str = "main",
        steps: int | None = None,
        env: DistEnv | None = None,
    ) -> None:
        self.params: Params = coerce_params(params)
        if steps is not None:
            self.params = self.params.updated({"train": {"steps": steps, "epochs": None}})
        self.settings: TrainSettings = self.params.train
        self.variant = variant
        self.seed = self.params.seed
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.pairs_dir = Path(pairs_dir)
        corpus = corpus_root or self.params.data.corpus
        if not corpus:
            raise HecvlError("no corpus folder: pass --corpus or set data.corpus in the parameters")
        self.corpus_root = Path(corpus)
        self.env = env or init_distributed(self.settings.device)
        self.device = self.env.device
        self.autocast = self._autocast_dtype()

        seed_everything(self.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        self.model = build_model(self.params.model, seed=self.seed)
        if self.env.distributed:
            sync_batchnorm(self.model, self.device)
        self.model.to(self.device)
        if self.settings.channels_last:  # NHWC kernels: ~1.3x faster on CPU, preferred by tensor cores
            self.model.to(memory_format=torch.channels_last)
        vis = self.model.config.visual
        # the visual encoder's input normalisation, applied on the device to the loader's uint8 frames
        self.mean = torch.tensor(vis.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(vis.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

        s = self.settings
        candidate = s.trained_levels
        self.data: dict[str, LevelData] = build_level_data(
            self.pairs_dir, self.corpus_root, self.params, candidate, s.batch_size, self.env,
            vis.image_size, FrameStore.from_params(self.params), positive_rule(s),
        )
        per_epoch = {lvl: max(1, d.per_epoch // s.grad_accum) for lvl, d in self.data.items()}
        if s.epochs is not None:  # the run's length in passes over the data: its steps follow from the corpus
            steps = steps_for_epochs(s, per_epoch)
            if self.env.is_main:
                log.info("train.epochs %d: %d optimizer steps (%s batches per epoch)", s.epochs, steps,
                         ", ".join(f"{lvl} {n}" for lvl, n in per_epoch.items()))
            self.params = self.params.updated({"train": {"steps": steps}})
            self.settings = s = self.params.train
        self.schedule: Schedule = build_schedule(s, s.steps, per_epoch)
        self.data = {lvl: d for lvl, d in self.data.items() if lvl in self.schedule.levels}
        rule = positive_rule(s)
        self.step_module = ContrastiveStep(self.model, self.schedule.weights,
                                           max_texts=rule.max_texts if rule is not None else None)
        self.optimizer, self.scheduler = build_optimizer(self.model, s, s.steps)
        self.fingerprint = config_fingerprint(self.params, self.pairs_dir)
        self.validation: Validation | None = None  # built by the main rank when training starts
        self.val_rows: list[dict[str, Any]] = []

    # --- setup helpers ---------------------------------------------------------------------------
    def _cache_root(self) -> Path:
        """Where the caches shared by every run of the study live: frames.cache."""
        return Path(self.params.frames.cache)

    def _autocast_dtype(self) -> torch.dtype | None:
        precision = self.settings.precision
        if precision == "bf16" and self.device.type != "cuda":
            raise HecvlError("train.precision bf16 needs CUDA (bf16 autocast is used on CUDA only)")
        if precision == "fp32" or self.device.type != "cuda":
            return None
        return torch.bfloat16

    def _cast(self) -> contextlib.AbstractContextManager:
        """The step's autocast region (bf16 on CUDA unless fp32), or none."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def warm_text_cache(self, progress: bool | None = None) -> int:
        """Encode every distinct text the run will use once, before training (frozen text encoder only).

        The frozen encoder caches features by text; filling the cache up front in large batches is
        far cheaper on CPU than encoding each batch's misses as they come. With train.text_cache the
        features are kept on disk too, so the study's other runs read them (encoding the default
        corpus costs each run about 7 CPU-s). Returns the number of texts.
        """
        text = self.model.text
        if not getattr(text, "caching", False):
            return 0
        texts: dict[str, None] = {}
        for d in self.data.values():
            for row in d.dataset.rows:
                texts[row["text"]] = None
            for children in d.dataset.child_texts:
                texts.update(dict.fromkeys(children))
            if d.dataset.neighbours is not None:  # MIL-NCE bags: narrations outside the dataset's rows
                texts.update(dict.fromkeys(d.dataset.neighbours.texts()))
        # every rank reads or encodes by itself: the store is written atomically, the bits are the same
        store = self._cache_root() / "text" if self.settings.text_cache else None
        read = text.warm(list(texts), store, progress=bool(progress) and self.env.is_main)
        log.info("text features of %d texts %s", len(texts), "read from the store" if read else "encoded")
        return len(texts)

    def _wrapped(self) -> nn.Module:
        if not self.env.distributed:
            return self.step_module
        ids = [self.device.index] if self.device.type == "cuda" else None
        # levels change from step to step, so some heads are unused in a given step
        return nn.parallel.DistributedDataParallel(
            self.step_module, device_ids=ids, find_unused_parameters=True
        )

    def loader(self, start_step: int) -> Iterator[dict[str, Any]]:
        """This rank's batches from `start_step` to the end of the run, in the order `train_step`
        takes them (per step, micro-batch, level), each with its `level`; uint8 frames."""
        s = self.settings
        return iter(make_loader(self.data, self.schedule, self.seed, start_step, s.grad_accum, self.env,
                                s.num_workers, pin_memory=self.device.type == "cuda"))

    # --- state ------------------------------------------------------------------------------------
    def state(self, step: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything a resume needs, as tensors and plain values (loads with weights_only=True)."""
        frozen = self._frozen_keys()
        return {
            "model": {k: v for k, v in self.model.state_dict().items() if k not in frozen},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": ckpt.rng_state(),
            "data_position": {k: int(v) for k, v in self.schedule.batches_before(step).items()},
            "fingerprint": self.fingerprint,
            "losses": {c: [r.get(c) for r in rows] for c in _columns(rows)},
            "validation": {c: [r[c] for r in self.val_rows] for c in VALIDATION_COLUMNS},
        }

    def restore(self, state: Mapping[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        """Load a checkpoint's state; returns its step and the loss rows so far. Refuses one written
        with other settings (different fingerprint)."""
        if state.get("fingerprint") != self.fingerprint:
            raise HecvlError(
                "the checkpoints here were written with other settings (model, pairing, train, seed, "
                "--steps or pair manifests); "
                "use another --out or pass --no-resume"
            )
        step = int(state["step"])
        missing, unexpected = self.model.load_state_dict(state["model"], strict=False)
        lacking = sorted(set(missing) - self._frozen_keys())
        if unexpected or lacking:
            raise ckpt.CorruptCheckpoint(
                f"model state does not fit the model (missing {lacking[:3]}, "
                f"unexpected {sorted(unexpected)[:3]})"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        cols = state.get("losses") or {}
        n = len(next(iter(cols.values()))) if cols else 0
        rows = [{c: cols[c][i] for c in cols if cols[c][i] is not None} for i in range(n)]
        val = state.get("validation") or {}
        m = len(next(iter(val.values()))) if val else 0
        self.val_rows = [{c: val[c][i] for c in VALIDATION_COLUMNS} for i in range(m)]
        return step, rows

    def _frozen_keys(self) -> set[str]:
        """Parameters that never train (the frozen text encoder): rebuilt from their source on resume,
        so checkpoints stay small (the MiniLM alone is 90 MB)."""
        return {name for name, p in self.model.named_parameters() if not p.requires_grad}

    def resume_state(self, resume: bool, restart_if_changed: bool = False) -> dict[str, Any] | None:
        """The newest valid checkpoint (found by the main rank, then loaded by every rank), or None.

        `resume=False` deletes the checkpoints of an earlier run in the output folder, so a later
        restart of this run can never pick one of them up. `restart_if_changed`: checkpoints written
        with other settings are deleted instead of refused (the workflow reruns a job because its
        settings changed; an interrupted run with the same settings still resumes).
        """
        folder = self.out_dir / "checkpoints" if self.out_dir is not None else None
        found = None
        if folder is not None and self.env.is_main:
            if resume:
                found = ckpt.latest_valid(folder)
                if found is not None and restart_if_changed and found.get("fingerprint") != self.fingerprint:
                    log.warning("%s: written with other settings: deleted, training from step 0", folder)
                    shutil.rmtree(folder)
                    found = None
            elif folder.is_dir():
                log.warning("%s: --no-resume: deleting the checkpoints of the earlier run", folder)
                shutil.rmtree(folder)
        if not self.env.distributed:
            return found
        record = broadcast_object(None if found is None else str(ckpt.checkpoint_path(folder, found["step"])))
        if record is None:
            return None
        return found if self.env.is_main else ckpt.load_checkpoint(Path(record).with_suffix(".json"))

    # --- the loop ---------------------------------------------------------------------------------
    def train_step(
        self, step: int, wrapped: nn.Module, batches: Iterator[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """One optimizer step: `grad_accum` micro-batches of the step's levels, clip, update.

        `batches` is `loader(start)` read from `step` on: it yields each micro-batch's levels in turn."""
        s = self.settings
        levels = self.schedule.levels_at(step)
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        samples = 0
        wait = 0.0
        for micro in range(s.grad_accum):
            t0 = time.perf_counter()
            raw = {lvl: self._next_batch(batches, step, lvl) for lvl in levels}
            wait += time.perf_counter() - t0
            inputs = {lvl: _to_device(b, self.device, self.mean, self.std) for lvl, b in raw.items()}
            samples += sum(len(b["text"]) for b in inputs.values())
            if s.chunk is not None:  # two passes outside DDP's forward; gradients averaged below
                terms = self.step_module.chunked_backward(inputs, s.chunk, s.grad_accum, self._cast)
            else:
                sync = contextlib.nullcontext()
                if micro < s.grad_accum - 1 and isinstance(wrapped, nn.parallel.DistributedDataParallel):
                    sync = wrapped.no_sync()
                with sync, self._cast():
                    terms = wrapped(inputs)
                    loss = terms["total"] / s.grad_accum
                loss.backward()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / s.grad_accum
        params = [p for p in self.model.parameters() if p.requires_grad]
        if s.chunk is not None:
            average_gradients(params)
        norm = torch.nn.utils.clip_grad_norm_(params, s.grad_clip if s.grad_clip > 0 else float("inf"))
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        row = {"step": step + 1, "levels": "+".join(levels), "lr": lr, "loss": sums.pop("total"),
               "grad_norm": float(norm), **sums}
        row["_samples"] = samples * self.env.world_size
        row["_data_wait_s"] = wait
        return row

    def _next_batch(self, batches: Iterator[Mapping[str, Any]], step: int, level: str) -> Mapping[str, Any]:
        """The loader's next batch, which must be of `level` (the schedule's order is the loader's)."""
        batch = next(batches, None)
        if batch is None:
            raise HecvlError(f"step {step + 1}: the training loader has no {level} batch left")
        if batch["level"] != level:
            raise HecvlError(
                f"step {step + 1} trains the {level} level but the loader gave a {batch['level']} batch: "
                "the batches are not in schedule order (read them from loader(start) from that step on)"
            )
        return batch

    def train(self, resume: bool = True, progress: bool | None = None, track: bool = True,
              restart_if_changed: bool = False) -> PretrainResult:
        """Run (or finish) the training; the main rank writes the outputs and tracks the run."""
        threads = torch.get_num_threads()
        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)
        try:
            return self._train(resume, progress, track, restart_if_changed)
        finally:
            torch.set_num_threads(threads)

    def _train(self, resume: bool, progress: bool | None, track: bool, restart_if_changed: bool = False
               ) -> PretrainResult:
        s, env = self.settings, self.env
        state = self.resume_state(resume, restart_if_changed)
        start, rows = (0, []) if state is None else self.restore(state)
        if start:
            log.info("resuming from step %d of %d", start, s.steps)
        n_texts = self.warm_text_cache(progress)
        wrapped = self._wrapped()
        self.model.train()
        batches = self.loader(start)
        tracker = _tracker(self, start) if (track and env.is_main) else contextlib.nullcontext(None)
        t_start = time.perf_counter()
        timing: dict[str, Any] = {"samples": {}, "seconds": {}, "wait": 0.0}
        with tracker as run:
            bar = tqdm(total=s.steps, initial=start, desc=f"pretrain {self.variant}", unit="step",
                       disable=True if not env.is_main else (None if progress is None else not progress))
            metrics = _MetricBuffer(run)
            if env.is_main:
                self.validation = self._build_validation()
                if start == 0:
                    self._validate(0, metrics)
            for step in range(start, s.steps):
                t0 = time.perf_counter()
                row = self.train_step(step, wrapped, batches)
                seconds = time.perf_counter() - t0
                samples, wait = row.pop("_samples"), row.pop("_data_wait_s")
                _account(timing, row["levels"], samples, seconds, wait)
                rows.append(row)
                if not all(math.isfinite(v) for v in (row["loss"], row["grad_norm"])):
                    raise HecvlError(f"non-finite loss or gradient at step {step + 1}: {row}")
                if env.is_main:
                    self._after_step(row, rows, samples / max(seconds, 1e-9), seconds, bar, metrics)
            bar.close()
            metrics.flush()
            seconds = time.perf_counter() - t_start
            losses = pd.DataFrame(rows, columns=_columns(rows))
            if env.is_main and self.out_dir is not None:
                self.write_outputs(losses, timing, seconds, start, n_texts)
                _log_outputs(run, self.out_dir, (s.steps - start) / max(seconds, 1e-9), seconds)
        model_dir = self.out_dir if self.out_dir is not None else Path()
        return PretrainResult(self.out_dir or Path(), model_dir, s.steps, start, seconds, losses, env.is_main)

    def _after_step(
        self, row: dict[str, Any], rows: list[dict[str, Any]], rate: float, seconds: float,
        bar: tqdm, metrics: _MetricBuffer,
    ) -> None:
        """Main rank: progress bar (or a log line every tenth of the run), metrics, checkpoint."""
        s, done = self.settings, row["step"]
        post = _postfix(row, rate)
        bar.update(1)
        bar.set_postfix(post, refresh=False)
        if bar.disable and done % max(1, s.steps // 10) == 0:
            log.info("step %d/%d: %s", done, s.steps, ", ".join(f"{k} {v}" for k, v in post.items()))
        if done % s.log_every == 0:
            metrics.add(_metrics(row, rate, seconds), step=done)
        every = s.validation.every
        if every and (done % every == 0 or done == s.steps):
            self._validate(done, metrics)
        due = done == s.steps or (s.checkpoint_every and done % s.checkpoint_every == 0)
        if self.out_dir is not None and due:
            state = self.state(done, rows)
            ckpt.save_checkpoint(self.out_dir / "checkpoints", done, state, keep=s.keep_checkpoints)

    def _build_validation(self) -> Validation | None:
        """The validation frames of `train.validation` (None when it is off or names no dataset)."""
        datasets = validation_datasets(self.params)
        if not self.settings.validation.every or not datasets:
            return None
        return Validation(self.params, datasets, self.schedule.levels)

    def _validate(self, step: int, metrics: _MetricBuffer) -> None:
        """Score the model as it is now on the validation split; rows kept (and checkpointed), logged."""
        if self.validation is None:
            return
        rows = self.validation(self.model, step, self.device)
        self.val_rows.extend(rows)
        metrics.add({f"val_{m}/{r['dataset']}/{r['space']}": r[m] for r in rows for m in ("accuracy", "f1")},
                    step=step)
        spaces = self.validation.spaces
        mean = {sp: np.mean([r["accuracy"] for r in rows if r["space"] == sp]) for sp in spaces}
        log.info("step %d validation accuracy (mean over datasets): %s", step,
                 ", ".join(f"{sp} {v:.1f}" for sp, v in mean.items()))

    def write_outputs(
        self, losses: pd.DataFrame, timing: Mapping[str, Any], seconds: float, start: int, n_texts: int
    ) -> None:
        assert self.out_dir is not None
        save_pretrained(self.model, self.run_config(), self.out_dir)
        write_json(self.out_dir / layout.TRAIN_CONFIG, self.resolved_config())
        write_csv(self.out_dir / layout.LOSSES, losses)
        # always written (only a header when train.validation is off): a fixed set of outputs per run
        write_csv(self.out_dir / layout.VALIDATION, pd.DataFrame(self.val_rows, columns=VALIDATION_COLUMNS))
        per_level = {  # keyed by the step's levels ("clip", or "clip+phase+video" for joint steps)
            key: {
                "samples": n,
                "seconds": round(timing["seconds"][key], 3),
                "samples_per_s": round(n / max(timing["seconds"][key], 1e-9), 2),
            }
            for key, n in timing["samples"].items()
        }
        write_json(self.out_dir / layout.SUMMARY, {
            "seconds": round(seconds, 3),
            "steps_run": self.settings.steps - start,
            "resumed_from_step": start,
            "steps_per_s": round((self.settings.steps - start) / max(seconds, 1e-9), 3),
            "data_wait_s": round(timing["wait"], 3),
            "per_level": per_level,
            "distinct_texts_encoded": n_texts,
            "device": str(self.device),
            "world_size": self.env.world_size,
            "final": {k: v for k, v in (losses.iloc[-1].to_dict() if len(losses) else {}).items()
                      if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))},
        })

    def run_config(self) -> dict[str, Any]:
        """The resolved params of this run, without the study's lists of variants, ablations, presets."""
        study_lists = ("variants", "ablations", "presets")
        return {k: v for k, v in self.params.to_dict().items() if k not in study_lists}

    def resolved_config(self) -> dict[str, Any]:
        """The run's full configuration: resolved params, settings, schedule, effective batches."""
        return {
            "variant": self.variant,
            "seed": self.seed,
            "params": self.run_config(),
            "train": self.settings.to_dict(),
            "schedule": {"name": self.schedule.name, "levels": list(self.schedule.levels),
                         "batches": self.schedule.counts()},
            "batch_size": {lvl: d.batch_size for lvl, d in self.data.items()},
            "pairs": {lvl: len(d.dataset) for lvl, d in self.data.items()},
            "world_size": self.env.world_size,
            "fingerprint": self.fingerprint,
        }


def pretrain(
    params: Params | Mapping[str, Any],
    pairs_dir: str | Path,
    out_dir: str | Path,
    *,
    corpus_root: str | Path | None = None,
    variant: str = "main",
    steps: int | None = None,
    resume: bool = True,
    progress: bool | None = None,
    track: bool = True,
    restart_if_changed: bool = False,
) -> PretrainResult:
    """Train one variant (params already resolved) and write its outputs to `out_dir`."""
    trainer = Trainer(params, pairs_dir, out_dir, corpus_root=corpus_root, variant=variant, steps=steps)
    try:
        return trainer.train(resume=resume, progress=progress, track=track,
                             restart_if_changed=restart_if_changed)
    finally:
        shutdown()


# --- small helpers -------------------------------------------------------------------------------
def _to_device(
    batch: Mapping[str, Any], device: torch.device, mean: torch.Tensor, std: torch.Tensor
) -> dict[str, Any]:
    """The batch with its uint8 frames copied to `device` and normalised there (float32)."""
    out = dict(batch)
    out["frames"] = normalise(batch["frames"], mean, std, device)
    return out


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Fixed columns first, then every loss term ever seen, sorted (stable across resumes)."""
    head = ["step", "levels", "lr", "loss", "grad_norm"]
    terms = sorted({k for r in rows for k in r} - set(head))
    return head + terms


def _account(timing: dict[str, Any], levels: str, samples: int, seconds: float, wait: float) -> None:
    timing["samples"][levels] = timing["samples"].get(levels, 0) + samples
    timing["seconds"][levels] = timing["seconds"].get(levels, 0.0) + seconds
    timing["wait"] += wait


class _MetricBuffer:
    """Per-step metrics handed to the run's background sender (hecvl.tracking.Run.queue_metrics): a step
    never waits on the tracking store, which gets them in batches, or the spool if it fails."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def add(self, values: Mapping[str, float], step: int) -> None:
        if self.run is None or not self.run.active:
            return
        self.run.queue_metrics({k: float(v) for k, v in values.items() if math.isfinite(float(v))}, step=step)

    def flush(self) -> None:
        if self.run is not None:
            self.run.flush()


def _postfix(row: Mapping[str, Any], rate: float) -> dict[str, str]:
    out = {"lvl": row["levels"], "loss": f"{row['loss']:.3f}"}
    out.update({k.split("/")[0][:1] + "/" + k.split("/")[1][:2]: f"{v:.3f}" for k, v in row.items()
                if "/" in k and not k.endswith("/total")})
    out["samples/s"] = f"{rate:.1f}"
    return out


def _metrics(row: Mapping[str, Any], rate: float, seconds: float) -> dict[str, float]:
    out = {f"{'batch' if k.split('/')[-1] in STATISTICS else 'loss'}/{k}": float(v)
           for k, v in row.items() if "/" in k}
    out.update({"loss/total": row["loss"], "lr": row["lr"], "grad_norm": row["grad_norm"],
                "throughput/samples_per_s": rate, "throughput/step_s": seconds})
    return out


def _log_outputs(run: Any, out_dir: Path, steps_per_s: float, seconds: float) -> None:
    """The run's totals and outputs (weights, config, curves, summary) into its MLflow run."""
    if run is None:
        return
    run.log_metrics({"train/seconds": seconds, "train/steps_per_s": steps_per_s})
    for name in (layout.WEIGHTS, layout.MODEL_CONFIG):  # the exported model, loadable by load_pretrained
        run.log_artifact(out_dir / name, artifact_path="model")
    for name in (layout.TRAIN_CONFIG, layout.LOSSES, layout.SUMMARY):
        run.log_artifact(out_dir / name)


def _tracker(trainer: Trainer, start: int) -> contextlib.AbstractContextManager:
    from hecvl.tracking import experiment_name, mlflow_run

    tags = {"stage": "pretrain", "rule": "pretrain", "variant": trainer.variant, "seed": trainer.seed,
            "schedule": trainer.schedule.name, "world_size": trainer.env.world_size,
            "device": str(trainer.device), "resumed_from_step": start}
    return mlflow_run(
        experiment=experiment_name(trainer.params),
        run_name=f"pretrain/{trainer.variant}/seed{trainer.seed}",
        tags=tags,
        params=trainer.run_config(),
        system_metrics=True,
    )
