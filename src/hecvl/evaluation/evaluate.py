"""Zero-shot phase recognition of one model on target dataset splits: the evaluation engine.

Pipeline (docs/method.md §5-7): the split's videos at 1 fps from the frame cache (decoded once,
with the evaluation transform), frame embeddings from the model (cached per model, dataset,
transform and level), one prompt per class (or a template ensemble averaged), score = 100 x cosine,
argmax (ties: lowest class id), then the protocol's metrics against the 1 fps labels.

Reference points through the same metrics: an untrained (seeded, freshly initialised) model, and a
linear probe (logistic regression on the frozen frame embeddings of the train split). Any model reaches
the scorer the same way, through a model source (sources.py; other groups' in `hecvl.released`: their
own frame transform and forward pass), under a protocol resolved once (protocols.ResolvedProtocol).
`evaluate_many` runs every (dataset, setting) of one model with the model loaded and each frame
embedded once. Outputs per evaluation folder: predictions.parquet, metrics.json,
confusion.png, prompts.json, and one MLflow run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hecvl import layout
from hecvl.config import EvalSettings, Params
from hecvl.datasets.registry import TargetDataset
from hecvl.errors import HecvlError
from hecvl.evaluation.confusion_plot import plot_confusion
from hecvl.evaluation.embed import (
    EmbeddingCache,
    Renormalised,
    pick_device,
    video_embeddings,
    with_normalisation,
)
from hecvl.evaluation.metrics import align, argmax_predictions, score_predictions
from hecvl.evaluation.probe import features, fit_probe, probe_scores
from hecvl.evaluation.prompts import prompts_for
from hecvl.evaluation.protocols import ResolvedProtocol
from hecvl.evaluation.sources import Loaded, ModelSource, ScoredModel
from hecvl.evaluation.windows import embed_windows, pool_windows
from hecvl.evaluation.zeroshot import class_embeddings, zero_shot_scores
from hecvl.io import write_json, write_parquet
from hecvl.video import frames_setup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a batch: a dataset, its settings and the folder its outputs go to."""

    dataset: str
    settings: EvalSettings
    out: Path


@dataclass(frozen=True)
class Options:
    """How a batch runs besides its model, protocol and plan: the seed (the probe's, and the record's), the
    linear probe instead of prompts, and `light` (protocol sweeps: no confusion figure, no MLflow run)."""

    seed: int
    linear_probe: bool = False
    light: bool = False


def frame_source(params: Params):  # -> tuple[FrameCache, FrameTransform]
    """The frame cache and the evaluation transform of the `frames:` section (what `hecvl frames` filled).

    The rate must be 1 fps: the labels are 1 fps and row i of a cached array is second i.
    """
    cache, transform, fps = frames_setup(params.frames)
    if fps != 1.0:
        raise HecvlError(f"evaluation runs at 1 fps (method.md §5), but frames.fps is {fps:g}")
    return cache, transform


def embedding_key(transform: Any, settings: EvalSettings, model: ScoredModel) -> str:
    """The embedding cache's name for what, besides the model, decides a frame's embedding: the frame
    transform, a protocol's normalisation where it is not the model's own and, for a temporal model, the
    window it encodes."""
    key = transform.key()
    if isinstance(model, Renormalised):
        key += f"-n{model.normalise}"
    return f"{key}-{settings.window.key()}" if model.temporal else key


def evaluate_many(
    source: ModelSource,
    protocol: ResolvedProtocol,
    plan: Sequence[Evaluation],
    options: Options,
    loaded: Loaded | None = None,
) -> list[dict[str, Any]]:
    """Run every evaluation of `plan` with one model, in order; returns their metrics dicts.

    Per dataset: its split's frames (decoded once), embedded once in every level its settings need (cached),
    then each setting scored and written (atomically, with its MLflow run) as soon as it is done, so a
    failure later in the plan loses nothing already done. `loaded` is the model `source.load` already gave
    (a sweep loads it once for all its protocols). The plan's settings decide the window, normalisation and
    prompts; every metrics file records the protocol they make up.
    """
    from tqdm.auto import tqdm

    if not plan:
        return []
    first = _shared_settings(plan)
    frame_cache, _ = frame_source(protocol.params)
    transform = protocol.transform(source.transform)
    device = pick_device(first.device)
    loaded = loaded or source.load(device)
    model = with_normalisation(loaded.model, first.normalise)
    results: list[dict[str, Any]] = []
    progress = tqdm(total=len(plan), desc="evaluate", unit="eval", disable=None)
    for dataset in dict.fromkeys(item.dataset for item in plan):
        items = [item for item in plan if item.dataset == dataset]
        ds = TargetDataset.from_params(dataset, protocol.params)
        split = protocol.split(dataset)
        videos = ds.split(split)
        if not videos:
            raise HecvlError(f"split {split!r} of {dataset} has no videos")
        levels = list(dict.fromkeys(lv for item in items for lv in source.levels(item.settings.space)[1]))
        cache = EmbeddingCache(Path(first.cache), loaded.key, dataset, embedding_key(transform, first, model))
        embed = partial(_embed, model, ds, lambda p: frame_cache.get(p, transform, fps=1.0),
                        frame_cache.video_hash, cache, levels, first, device)
        test_emb, labels = embed(videos), ds.labels(split)
        for item in items:
            space, space_levels = source.levels(item.settings.space)
            run_info: dict[str, Any] = {
                "dataset": dataset, "split": split, "space": space, "levels": space_levels,
                "protocol": protocol.record(item.settings, dataset, transform),
                "model": loaded.description, "model_key": loaded.key, "variant": source.variant,
                "seed": options.seed, "transform": transform.key(), "videos": videos,
                "ignored_classes": [ds.classes[i] for i in ds.ignored], **source.record(),
            }  # fmt: skip
            scorer, prompts_used = _scorer(model, ds, embed, space_levels, item.settings, options,
                                           source.method, run_info)
            metrics = _metrics(ds, test_emb, scorer, labels, run_info)
            write_outputs(item.out, metrics.pop("predictions"), metrics, prompts_used, ds.classes,
                          confusion=not options.light)
            if not options.light:
                _track(protocol.params, item.out, metrics)
            results.append(metrics)
            progress.update()
    progress.close()
    return results


def _shared_settings(plan: Sequence[Evaluation]) -> EvalSettings:
    """The settings of a batch's first evaluation, checked to share its window and normalisation with all."""
    first = plan[0].settings
    for item in plan[1:]:
        if (item.settings.window, item.settings.normalise) != (first.window, first.normalise):
            raise HecvlError(
                "one evaluation batch must share its window and normalisation (one embedding pass)")
    return first


def _embed(
    model: ScoredModel,
    ds: TargetDataset,
    load_frames: Callable[[Path], np.ndarray],
    identify: Callable[[Path], str],
    cache: EmbeddingCache,
    levels: list[str],
    settings: EvalSettings,
    device: torch.device,
    ids: list[str],
) -> dict[str, dict[str, np.ndarray]]:
    """{video: {level: (T, E)}}: each second's window, encoded by a temporal model or pooled from the
    (cached) frame embeddings of any other."""
    per_video = video_embeddings(
        model, {v: ds.video_path(v) for v in ids}, load_frames, identify=identify, cache=cache, levels=levels,
        batch_size=settings.batch_size, device=device,
        embed_video_frames=partial(embed_windows, window=settings.window) if model.temporal else None,
    )  # fmt: skip
    if model.temporal:  # the model encoded each second's window itself
        return per_video
    window = settings.window
    return {v: {lv: pool_windows(e, window) for lv, e in emb.items()} for v, emb in per_video.items()}


def _metrics(
    ds: TargetDataset,
    embeddings: dict[str, dict[str, np.ndarray]],
    scorer: Callable[[dict[str, np.ndarray]], np.ndarray],
    labels: pd.DataFrame,
    run_info: dict[str, Any],
) -> dict[str, Any]:
    """The metrics of one evaluation (its predictions under `predictions`, for the caller to write)."""
    predictions = prediction_table(embeddings, without_classes(scorer, ds.ignored), labels, len(ds.classes))
    frames, info = align(labels, predictions, pred_source="predictions")
    record = run_info["protocol"]
    metrics = {"protocol": record["name"], "protocol_version": record["version"],
               "protocol_hash": record["hash"]}
    metrics.update(score_predictions(frames, class_names=ds.classes))
    metrics.update(info)
    metrics["run"] = run_info
    metrics["predictions"] = predictions
    return metrics


def _scorer(
    model: ScoredModel,
    ds: TargetDataset,
    embed: Callable[[list[str]], dict[str, dict[str, np.ndarray]]],
    levels: list[str],
    settings: EvalSettings,
    options: Options,
    method: str,
    run_info: dict[str, Any],
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], dict[str, Any] | None]:
    """The scoring function of one evaluation (probe, or prompts scored by `method`) and the prompts it used.

    Records the method and its settings in `run_info`.
    """
    if options.linear_probe:
        run_info["method"] = "linear_probe"
        run_info["probe"] = settings.probe.to_dict()
        run_info["train_videos"] = ds.split("train")
        return _probe_scorer(ds, embed, levels, len(ds.classes), settings, options.seed), None
    run_info["method"] = method
    prompt_set = prompts_for(ds, settings.prompts, settings.prompt_file)
    truncated = model.truncated_prompts(prompt_set.flat())
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

    return scorer, prompts_used


def _probe_scorer(
    ds: TargetDataset,
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


def without_classes(
    scorer: Callable[[dict[str, np.ndarray]], np.ndarray], ignored: Sequence[int]
) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """The scorer with the protocol's ignored classes at -inf: they can never be predicted."""
    if not ignored:
        return scorer

    def masked(emb: dict[str, np.ndarray]) -> np.ndarray:
        scores = np.array(scorer(emb), copy=True)
        scores[:, list(ignored)] = -np.inf
        return scores

    return masked


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
    out: Path,
    predictions: pd.DataFrame,
    metrics: dict,
    prompts_used: dict | None,
    classes: list[str],
    confusion: bool = True,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / layout.PREDICTIONS, predictions)
    if prompts_used is not None:
        write_json(out / layout.PROMPTS, prompts_used)
    run = metrics["run"]
    title = (
        f"{run['dataset']}/{run['split']} {run['method']} ({run['space']}"
        f"{', ' + run['prompts'] if 'prompts' in run else ''}): "
        f"acc {metrics['accuracy_mean']:.1f}, F1 {metrics['f1_mean']:.1f}"
    )
    if confusion:
        plot_confusion(np.array(metrics["confusion_matrix"]), classes, title, out / layout.CONFUSION)
    write_json(out / layout.METRICS, metrics)  # last: its presence means the evaluation is complete


def run_name(run: Mapping[str, Any]) -> str:
    """The MLflow run name of one evaluation cell: every setting that tells the study's cells apart.

    Model (variant, or the reference method), seed, dataset, space and prompts, in the order of the
    cell's folder: two seeds or two prompt styles of one model never share a name in the runs table.
    """
    model = run["variant"] if run["method"] == "zeroshot" else run["method"]
    setting = run["space"] + (f"-{run['prompts']}" if "prompts" in run else "")
    return f"evaluate/{model}/seed{run['seed']}/{run['dataset']}/{setting}"


def headline_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics a reader sorts runs by, top level: `accuracy` and `f1` are the per-video means
    (the paper's protocol), beside the older `*_mean`/`*_std` names and the frame-pooled variants."""
    keys = ("accuracy_mean", "accuracy_std", "f1_mean", "f1_std", "accuracy_pooled", "f1_pooled")
    out = {k: metrics[k] for k in keys if metrics.get(k) is not None}
    out.update(accuracy=metrics["accuracy_mean"], f1=metrics["f1_mean"])
    return out


def _track(params: Params, out: Path, metrics: dict[str, Any]) -> None:
    """One MLflow run with the run's settings, headline and per-phase metrics, and all outputs."""
    from hecvl.tracking import experiment_name, mlflow_run

    run = metrics["run"]
    experiment = experiment_name(params)
    keys = ("dataset", "split", "method", "space", "prompts", "variant", "seed", "model_key")
    tags = {k: run[k] for k in keys if k in run}
    tags["stage"] = tags["rule"] = "evaluate"
    tags["output"] = str(out)  # the cell's folder: tells apart runs of the narration-noise sweep too
    tags["protocol"] = f"{metrics['protocol']} v{metrics['protocol_version']}"
    tags["protocol_hash"] = metrics["protocol_hash"]  # equal hashes: numbers scored the same way
    logged = {k: v for k, v in run.items() if k not in ("videos", "train_videos")}
    with mlflow_run(
        experiment=experiment,
        run_name=run_name(run),
        tags=tags,
        params={"eval": logged},
    ) as mlrun:
        mlrun.log_metrics(headline_metrics(metrics))
        per_phase = {}
        for entry in metrics["per_phase"].values():
            for m in ("f1", "jaccard", "precision", "recall"):
                value = entry["pooled"][m]
                if value is not None:
                    per_phase[f"phase_{m}/{entry['name']}"] = value
        mlrun.log_metrics(per_phase)
        for name in (layout.METRICS, layout.PREDICTIONS, layout.CONFUSION, layout.PROMPTS):
            mlrun.log_artifact(out / name)
