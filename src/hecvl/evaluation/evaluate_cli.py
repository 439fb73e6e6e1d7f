"""`hecvl evaluate`: zero-shot phase recognition of one model on one target dataset split.

Pipeline (docs/protocol.md §5-7): the split's videos at 1 fps from the frame cache (decoded once,
with the evaluation transform), frame embeddings from the model (cached per model, dataset,
transform and level), one prompt per class (or a template ensemble averaged), score = 100 x cosine,
argmax (ties: lowest class id), then the protocol's metrics against the 1 fps labels.

Reference points through the same metrics:
- `--untrained`: the same pipeline with a freshly initialised model (seeded): chance level;
- `--linear-probe`: logistic regression on the frozen frame embeddings of the train split.

The authors' released SurgVLP / HecVL / PeskaVLP checkpoints go through the same pipeline with
`--format surgvlp --weights FILE.pth --bert-dir DIR` (released_eval.py: their own frame transform and
forward pass; everything else as for our models).

Outputs in --out: predictions.parquet (one row per second of every video: `video, frame_sec,
phase_id` (predicted), `gt_phase_id` (null where unlabelled), `score_<id>`), metrics.json,
confusion.png, prompts.json (zero-shot), and one MLflow run with all of them.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from hecvl.errors import HecvlError
from hecvl.evaluation.confusion_plot import plot_confusion
from hecvl.evaluation.embed import (
    EmbeddingCache,
    levels_for,
    model_key,
    pick_device,
    video_embeddings,
)
from hecvl.evaluation.metrics import align, argmax_predictions, score_predictions
from hecvl.evaluation.probe import features, fit_probe, probe_scores
from hecvl.evaluation.prompts import STYLES, prompts_for, truncated_prompts
from hecvl.evaluation.settings import EvalSettings
from hecvl.evaluation.zeroshot import class_embeddings, zero_shot_scores
from hecvl.io import write_json, write_parquet
from hecvl.params import load_params, resolve_variant
from hecvl.study import RELEASED_SPACE

if TYPE_CHECKING:
    from hecvl.evaluation.released_eval import ReleasedSource

log = logging.getLogger(__name__)

FORMATS = ("hecvl", "surgvlp")  # hecvl: a folder saved by `hecvl pretrain`; surgvlp: the authors' .pth


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the study's params.yaml")
    parser.add_argument("--variant", help="variant of params.yaml whose settings apply (default: main)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--weights",
        type=Path,
        help="folder of a saved model (model.safetensors + config.json), or with --format surgvlp the "
        "authors' released SurgVLP/HecVL/PeskaVLP .pth file",
    )
    who.add_argument(
        "--untrained", action="store_true", help="a freshly initialised model (seeded): chance level"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="hecvl",
        help="format of --weights: hecvl (ours, default) | surgvlp (the authors' released checkpoints)",
    )
    parser.add_argument(
        "--bert-dir",
        type=Path,
        help="--format surgvlp: local Bio_ClinicalBERT folder with vocab.txt (default: released.bert_dir)",
    )
    parser.add_argument(
        "--name",
        help="--format surgvlp: short name of the model in run names (default: the file name, lower-cased)",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of the untrained model and the probe (default: params seed)"
    )
    parser.add_argument("--dataset", required=True, help="target dataset name under data.targets")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--space",
        choices=("clip", "phase", "video", "ensemble"),
        help="embedding space that answers (default: eval.space)",
    )
    parser.add_argument("--prompts", choices=STYLES, help="prompt style (default: eval.prompts)")
    parser.add_argument(
        "--linear-probe", action="store_true", help="logistic regression on frozen embeddings (train split)"
    )
    parser.add_argument("--device", help="auto | cpu | cuda (default: eval.device)")


def run(args: argparse.Namespace) -> int:
    check_format_arguments(args)
    params = resolve_variant(load_params(args.params), args.variant)
    settings = EvalSettings.from_params(params, space=args.space, prompts=args.prompts, device=args.device)
    released = None
    if args.format == "surgvlp":
        from hecvl.evaluation.released_eval import released_source

        released = released_source(params, args.weights, args.bert_dir, args.name)
    metrics = evaluate(
        params,
        dataset=args.dataset,
        split=args.split,
        out=args.out,
        settings=settings,
        weights=args.weights,
        seed=args.seed,
        linear_probe=args.linear_probe,
        variant=args.variant,
        released=released,
    )
    print(
        f"{metrics['run']['method']} {args.dataset}/{args.split}: {metrics['num_videos']} videos, "
        f"accuracy {metrics['accuracy_mean']:.2f} ± {metrics['accuracy_std']:.2f}, "
        f"F1 {metrics['f1_mean']:.2f} ± {metrics['f1_std']:.2f} (%) -> {args.out}"
    )
    return 0


def check_format_arguments(args: argparse.Namespace) -> None:
    """Refuse option combinations that mean nothing for the chosen --format, before anything is read."""
    if args.format == "surgvlp":
        if args.untrained:
            raise HecvlError("--untrained builds our model; it cannot be combined with --format surgvlp")
        if args.space is not None:
            raise HecvlError(
                "--space does not apply to --format surgvlp: the released models have one embedding "
                f"space for every level of text (recorded as {RELEASED_SPACE!r})"
            )
        if args.linear_probe:
            raise HecvlError("--linear-probe is not offered for --format surgvlp")
        return
    if args.bert_dir is not None or args.name is not None:
        raise HecvlError("--bert-dir and --name apply to --format surgvlp only")
    if args.weights is not None and args.weights.is_file():
        raise HecvlError(
            "--weights is a file: a released SurgVLP/HecVL/PeskaVLP checkpoint needs --format surgvlp "
            "(and --bert-dir); --format hecvl takes the folder saved by `hecvl pretrain`",
            args.weights,
        )


def frame_source(params: dict[str, Any]):  # -> tuple[FrameCache, FrameTransform]
    """The frame cache and the evaluation transform of the `frames:` section (what `hecvl frames` filled).

    The rate must be 1 fps: the labels are 1 fps and row i of a cached array is second i.
    """
    from hecvl.video.cache import frame_settings

    cache, transform, fps = frame_settings(params.get("frames"))
    if fps != 1.0:
        raise HecvlError(f"evaluation runs at 1 fps (protocol.md §5), but frames.fps is {fps:g}")
    return cache, transform


def load_model(
    params: dict[str, Any], weights: Path | None, seed: int, device: torch.device
) -> tuple[Any, str, str]:
    """(model in eval mode, cache key, description) of saved weights or of a seeded fresh model.

    The fresh model is the configured one before pretraining (pretrained text encoder, heads at
    random), which is what "untrained" means for the reference point.
    """
    from hecvl.models import build_model, load_pretrained

    if weights is not None:
        model, _cfg = load_pretrained(weights, device=device)
        return model.eval(), model_key(model), str(weights)
    model = build_model(params["model"], seed=seed).to(device).eval()
    return model, model_key(model), f"untrained (seed {seed})"


def evaluate(
    params: dict[str, Any],
    dataset: str,
    split: str,
    out: Path,
    settings: EvalSettings,
    weights: Path | None = None,
    seed: int | None = None,
    linear_probe: bool = False,
    variant: str | None = None,
    released: ReleasedSource | None = None,
) -> dict[str, Any]:
    """Run one evaluation and write its outputs; returns the metrics dict written to metrics.json.

    `released` (a released_eval.ReleasedSource) evaluates the authors' released weights instead of
    `weights`: its model, frame transform and single embedding space replace ours.
    """
    from hecvl.datasets.registry import TargetDataset

    seed = int(params.get("seed", 0) if seed is None else seed)
    ds = TargetDataset.from_params(dataset, params)
    videos = ds.split(split)
    if not videos:
        raise HecvlError(f"split {split!r} of {dataset} has no videos")
    labels = ds.labels(split)
    frame_cache, transform = frame_source(params)
    device = pick_device(settings.device)
    space = settings.space
    if released is not None:
        model, key, model_desc = released.load(device)
        transform, space, levels = released.transform, released.space, [released.space]
    else:
        model, key, model_desc = load_model(params, weights, seed, device)
        levels = levels_for(space)
    emb_cache = EmbeddingCache(Path(settings.cache), key, dataset, transform.key())

    def embed(ids: list[str]) -> dict[str, dict[str, np.ndarray]]:
        paths = {v: ds.video_path(v) for v in ids}
        return video_embeddings(
            model,
            paths,
            lambda p: frame_cache.get(p, transform, fps=1.0),
            identify=frame_cache.video_hash,
            cache=emb_cache,
            levels=levels,
            batch_size=settings.batch_size,
            device=device,
        )

    test_emb = embed(videos)
    k = len(ds.classes)
    run_info: dict[str, Any] = {
        "dataset": dataset,
        "split": split,
        "space": space,
        "model": model_desc,
        "model_key": key,
        "variant": released.variant if released is not None else (variant or "main"),
        "seed": seed,
        "transform": transform.key(),
        "videos": videos,
    }
    if released is not None:
        run_info.update(format="surgvlp", weights=str(released.weights), bert_dir=str(released.bert_dir))
    prompts_used = None
    if linear_probe:
        run_info["method"] = "linear_probe"
        run_info["probe"] = asdict(settings.probe)
        scorer = _probe_scorer(ds, embed, levels, k, settings, seed)
        run_info["train_videos"] = ds.split("train")
    else:
        run_info["method"] = "untrained" if weights is None and released is None else "zeroshot"
        prompt_set = prompts_for(ds, settings.prompts, settings.prompt_file)
        truncated = _truncated(model, prompt_set.flat())
        class_emb = class_embeddings(model, prompt_set, levels)
        run_info.update(
            prompts=settings.prompts,
            prompt_file=str(prompt_set.source),
            prompt_sha256=prompt_set.sha256,
            prompt_version=prompt_set.version,
            truncated_prompts=len(truncated),
        )
        prompts_used = {
            "style": prompt_set.style,
            "file": str(prompt_set.source),
            "sha256": prompt_set.sha256,
            "classes": {name: texts for name, texts in zip(ds.classes, prompt_set.texts, strict=True)},
        }

        def scorer(emb: dict[str, np.ndarray]) -> np.ndarray:
            return zero_shot_scores(emb, class_emb, levels)

    predictions = prediction_table(test_emb, scorer, labels, k)
    frames, info = align(labels, predictions, pred_source="predictions")
    metrics = score_predictions(frames, class_names=ds.classes)
    metrics.update(info)
    metrics["run"] = run_info
    write_outputs(Path(out), predictions, metrics, prompts_used, ds.classes)
    _track(params, Path(out), metrics)
    return metrics


def _probe_scorer(
    ds: Any,
    embed: Callable[[list[str]], dict[str, dict[str, np.ndarray]]],
    levels: list[str],
    k: int,
    settings: EvalSettings,
    seed: int,
) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Fit the probe on the train split's labelled seconds; return a scorer for embeddings."""
    train_labels = ds.labels("train")
    train_emb = embed(ds.split("train"))
    xs, ys = [], []
    for video, g in train_labels.groupby("video", sort=True):
        x = features(train_emb[video], levels)
        secs = g["frame_sec"].to_numpy()
        if secs.max() >= len(x):
            raise HecvlError(f"labels of {video} run to second {secs.max()}, its frames to {len(x) - 1}")
        xs.append(x[secs])
        ys.append(g["phase_id"].to_numpy())
    clf = fit_probe(np.concatenate(xs), np.concatenate(ys), settings.probe, seed)

    def scorer(emb: dict[str, np.ndarray]) -> np.ndarray:
        return probe_scores(clf, features(emb, levels), k)

    return scorer


def prediction_table(
    embeddings: dict[str, dict[str, np.ndarray]],
    scorer: Callable[[dict[str, np.ndarray]], np.ndarray],
    labels: pd.DataFrame,
    num_classes: int,
) -> pd.DataFrame:
    """One row per second of every video: prediction, ground truth (nullable) and every class score."""
    parts = []
    for video, emb in embeddings.items():
        scores = scorer(emb)
        t = len(scores)
        part = pd.DataFrame({"video": video, "frame_sec": np.arange(t, dtype=np.int64)})
        part["phase_id"] = argmax_predictions(scores) if t else np.zeros(0, np.int64)
        for c in range(num_classes):
            part[f"score_{c}"] = scores[:, c].astype(np.float32)
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    gt = labels[["video", "frame_sec", "phase_id"]].rename(columns={"phase_id": "gt_phase_id"})
    table = table.merge(gt, on=["video", "frame_sec"], how="left")
    table["gt_phase_id"] = table["gt_phase_id"].astype("Int64")
    cols = ["video", "frame_sec", "phase_id", "gt_phase_id"] + [f"score_{c}" for c in range(num_classes)]
    return table[cols]


def write_outputs(
    out: Path, predictions: pd.DataFrame, metrics: dict, prompts_used: dict | None, classes: list[str]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / "predictions.parquet", predictions)
    if prompts_used is not None:
        write_json(out / "prompts.json", prompts_used)
    run = metrics["run"]
    title = (
        f"{run['dataset']}/{run['split']} {run['method']} ({run['space']}"
        f"{', ' + run['prompts'] if 'prompts' in run else ''}): "
        f"acc {metrics['accuracy_mean']:.1f}, F1 {metrics['f1_mean']:.1f}"
    )
    plot_confusion(np.array(metrics["confusion_matrix"]), classes, title, out / "confusion.png")
    write_json(out / "metrics.json", metrics)  # last: its presence means the evaluation is complete


def _truncated(model: Any, texts: list[str]) -> list[tuple[str, int]]:
    """Prompts the model's tokenizer cuts (warned here; the model's text encoder warns as well)."""
    own = getattr(model, "truncated_prompts", None)
    if callable(own):  # the released models: their own tokenizer and limit
        return own(texts)
    text = getattr(model, "text", None)
    tokenizer = getattr(text, "tokenizer", None)
    if tokenizer is None:
        return []
    return truncated_prompts(texts, tokenizer, int(model.config.text.max_length))


def _track(params: dict[str, Any], out: Path, metrics: dict[str, Any]) -> None:
    """One MLflow run with the run's settings, headline and per-phase metrics, and all outputs."""
    from hecvl.tracking import experiment_name, mlflow_run

    run = metrics["run"]
    label = run["method"] if run["method"] != "zeroshot" else run["variant"]
    experiment = experiment_name(params)
    tags = {k: run[k] for k in ("dataset", "split", "method", "space", "variant", "model_key") if k in run}
    tags["stage"] = tags["rule"] = "evaluate"
    logged = {k: v for k, v in run.items() if k not in ("videos", "train_videos")}
    with mlflow_run(
        experiment=experiment,
        run_name=f"evaluate/{run['dataset']}/{label}",
        tags=tags,
        params={"eval": logged},
    ) as mlrun:
        mlrun.log_metrics({k: metrics[k] for k in ("accuracy_mean", "accuracy_std", "f1_mean", "f1_std")})
        per_phase = {}
        for entry in metrics["per_phase"].values():
            for m in ("f1", "jaccard", "precision", "recall"):
                value = entry["pooled"][m]
                if value is not None:
                    per_phase[f"phase_{m}/{entry['name']}"] = value
        mlrun.log_metrics(per_phase)
        for name in ("metrics.json", "predictions.parquet", "confusion.png", "prompts.json"):
            mlrun.log_artifact(out / name)
