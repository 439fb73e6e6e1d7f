"""Zero-shot phase recognition of one model on target dataset splits: the evaluation engine.

Pipeline (docs/protocol.md §5-7): the split's videos at 1 fps from the frame cache (decoded once,
with the evaluation transform), frame embeddings from the model (cached per model, dataset,
transform and level), one prompt per class (or a template ensemble averaged), score = 100 x cosine,
argmax (ties: lowest class id), then the protocol's metrics against the 1 fps labels.

Reference points through the same metrics: an untrained (seeded, freshly initialised) model, and a
linear probe (logistic regression on the frozen frame embeddings of the train split). The authors'
released checkpoints go through the same pipeline (released_eval.py: their own frame transform and
forward pass). `evaluate_many` runs every (dataset, setting) of one model with the model loaded and
each frame embedded once. Outputs per evaluation folder: predictions.parquet, metrics.json,
confusion.png, prompts.json, and one MLflow run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from hecvl.config import LEVELS, EvalSettings, Params, coerce_params
from hecvl.errors import HecvlError
from hecvl.evaluation.confusion_plot import plot_confusion
from hecvl.evaluation.embed import (
    EmbeddingCache,
    Renormalised,
    levels_for,
    model_key,
    pick_device,
    video_embeddings,
    with_normalisation,
)
from hecvl.evaluation.metrics import align, argmax_predictions, score_predictions
from hecvl.evaluation.probe import features, fit_probe, probe_scores
from hecvl.evaluation.prompts import prompts_for, truncated_prompts
from hecvl.evaluation.protocols import apply_protocol, get_protocol, protocol_record, protocol_split
from hecvl.evaluation.windows import embed_windows, is_temporal, pool_windows
from hecvl.evaluation.zeroshot import class_embeddings, zero_shot_scores
from hecvl.io import write_json, write_parquet

if TYPE_CHECKING:
    from hecvl.evaluation.released_eval import ReleasedSource

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a batch: a dataset, its settings and the folder its outputs go to."""

    dataset: str
    settings: EvalSettings
    out: Path


def frame_source(params: Params):  # -> tuple[FrameCache, FrameTransform]
    """The frame cache and the evaluation transform of the `frames:` section (what `hecvl frames` filled).

    The rate must be 1 fps: the labels are 1 fps and row i of a cached array is second i.
    """
    cache, transform, fps = params.frames.build()
    if fps != 1.0:
        raise HecvlError(f"evaluation runs at 1 fps (protocol.md §5), but frames.fps is {fps:g}")
    return cache, transform


def embedding_key(transform: Any, settings: EvalSettings, model: Any) -> str:
    """The embedding cache's name for what, besides the model, decides a frame's embedding: the frame
    transform, a protocol's normalisation where it is not the model's own and, for a temporal model, the
    window it encodes."""
    key = transform.key()
    if isinstance(model, Renormalised):
        key += f"-n{model.normalise}"
    return f"{key}-{settings.window.key()}" if is_temporal(model) else key


def load_model(
    params: Params, weights: Path | None, seed: int, device: torch.device
) -> tuple[Any, str, str]:
    """(model in eval mode, cache key, description) of saved weights or of a seeded fresh model.

    The fresh model is the configured one before pretraining (pretrained text encoder, heads at
    random), which is what "untrained" means for the reference point.
    """
    from hecvl.models import build_model, load_pretrained

    if weights is not None:
        model, _cfg = load_pretrained(weights, device=device)
        return model.eval(), model_key(model), str(weights)
    model = build_model(params.model, seed=seed).to(device).eval()
    return model, model_key(model), f"untrained (seed {seed})"


def load_evaluated(
    params: Params, weights: Path | None, seed: int, device: torch.device, released: ReleasedSource | None
) -> tuple[Any, str, str]:
    """(model, cache key, description) of the released weights, saved weights or a seeded fresh model."""
    return released.load(device) if released is not None else load_model(params, weights, seed, device)


def evaluate(
    params: Params | Mapping[str, Any],
    dataset: str,
    split: str | None,
    out: Path,
    settings: EvalSettings,
    weights: Path | None = None,
    seed: int | None = None,
    linear_probe: bool = False,
    variant: str | None = None,
    released: ReleasedSource | None = None,
) -> dict[str, Any]:
    """Run one evaluation and write its outputs; returns the metrics dict written to metrics.json."""
    plan = [Evaluation(dataset, settings, Path(out))]
    return evaluate_many(params, plan, split, weights, seed, linear_probe, variant, released)[0]


def evaluate_many(
    params: Params | Mapping[str, Any],
    plan: Sequence[Evaluation],
    split: str | Mapping[str, str] | None = None,
    weights: Path | None = None,
    seed: int | None = None,
    linear_probe: bool = False,
    variant: str | None = None,
    released: ReleasedSource | None = None,
    light: bool = False,
    loaded: tuple[Any, str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run every evaluation of `plan` with one model, in order; returns their metrics dicts.

    The model is loaded once and each dataset's frames embedded once, in every level any of its
    settings needs. Each evaluation writes its outputs (atomically) and its MLflow run as soon as it
    is scored, so a failure later in the plan loses nothing already done. `released` (a
    released_eval.ReleasedSource) evaluates the authors' released weights instead of `weights`: its
    model, frame transform (unless the protocol fixes one) and single embedding space replace ours.

    The protocol is eval.protocol's (protocols.py), applied to `params` here; `split` (None: the
    protocol's split of each dataset; or one per dataset) may name several splits joined by +. `light`
    (protocol sweeps) leaves out each evaluation's confusion figure and MLflow run; `loaded` is the model
    `load_evaluated` already gave (a sweep loads it once for all its protocols). The plan's settings decide
    the window, normalisation and prompts, and every metrics file records the protocol they make up.
    """
    from tqdm.auto import tqdm

    from hecvl.datasets.registry import TargetDataset

    if not plan:
        return []
    params = apply_protocol(coerce_params(params), plan[0].settings.protocol)
    seed = params.seed if seed is None else seed
    frame_cache, transform = frame_source(params)
    first = plan[0].settings
    for item in plan[1:]:
        if (item.settings.window, item.settings.normalise) != (first.window, first.normalise):
            raise HecvlError(
                "one evaluation batch must share its window and normalisation (one embedding pass)")
    device = pick_device(first.device)
    model, key, model_desc = loaded or load_evaluated(params, weights, seed, device, released)
    if released is not None and get_protocol(first.protocol).transform is None:
        transform = released.transform
    model = with_normalisation(model, first.normalise)
    temporal = is_temporal(model)
    # the levels the model trained (an untrained model: all, its heads are alike untrained)
    trained = params.train.trained_levels if weights is not None and released is None else LEVELS
    results: list[dict[str, Any]] = []
    datasets = list(dict.fromkeys(item.dataset for item in plan))
    progress = tqdm(total=len(plan), desc="evaluate", unit="eval", disable=None)
    for dataset in datasets:
        items = [item for item in plan if item.dataset == dataset]
        ds = TargetDataset.from_params(dataset, params)
        given = split.get(dataset) if isinstance(split, Mapping) else split
        ds_split = given or protocol_split(params, dataset)
        videos = ds.split(ds_split)
        if not videos:
            raise HecvlError(f"split {ds_split!r} of {dataset} has no videos")
        labels = ds.labels(ds_split)
        if released is not None:
            levels = [released.space]
        else:
            levels = list(dict.fromkeys(
                lv for item in items for lv in levels_for(item.settings.space, trained)))
        emb_cache = EmbeddingCache(Path(first.cache), key, dataset, embedding_key(transform, first, model))

        def embed(ids: list[str], ds: Any = ds, levels: list[str] = levels, cache: Any = emb_cache):
            paths = {v: ds.video_path(v) for v in ids}
            per_video = video_embeddings(
                model,
                paths,
                lambda p: frame_cache.get(p, transform, fps=1.0),
                identify=frame_cache.video_hash,
                cache=cache,
                levels=levels,
                batch_size=first.batch_size,
                device=device,
                embed_video_frames=partial(embed_windows, window=first.window) if temporal else None,
            )
            if temporal:  # the model encoded each second's window itself
                return per_video
            window = first.window
            return {v: {lv: pool_windows(e, window) for lv, e in emb.items()} for v, emb in per_video.items()}

        test_emb = embed(videos)
        for item in items:
            settings = item.settings
            space = released.space if released is not None else settings.space
            space_levels = [space] if released is not None else levels_for(space, trained)
            record = protocol_record(params, settings, dataset, transform, ds_split)
            run_info: dict[str, Any] = {
                "dataset": dataset,
                "split": ds_split,
                "protocol": record,
                "space": space,
                "levels": space_levels,
                "model": model_desc,
                "model_key": key,
                "variant": released.variant if released is not None else (variant or "main"),
                "seed": seed,
                "transform": transform.key(),
                "videos": videos,
                "ignored_classes": [ds.classes[i] for i in ds.ignored],
            }
            if released is not None:
                run_info.update(format=getattr(released, "format", "surgvlp"), weights=str(released.weights),
                                bert_dir=str(released.bert_dir))
            scorer, prompts_used = _scorer(
                model, ds, embed, space_levels, settings, seed, linear_probe,
                untrained=weights is None and released is None, run_info=run_info,
            )
            predictions = prediction_table(test_emb, without_classes(scorer, ds.ignored), labels,
                                           len(ds.classes))
            frames, info = align(labels, predictions, pred_source="predictions")
            metrics = {"protocol": record["name"], "protocol_version": record["version"],
                       "protocol_hash": record["hash"]}
            metrics.update(score_predictions(frames, class_names=ds.classes))
            metrics.update(info)
            metrics["run"] = run_info
            write_outputs(item.out, predictions, metrics, prompts_used, ds.classes, confusion=not light)
            if not light:
                _track(params, item.out, metrics)
            results.append(metrics)
            progress.update()
    progress.close()
    return results


def _scorer(
    model: Any,
    ds: Any,
    embed: Callable[[list[str]], dict[str, dict[str, np.ndarray]]],
    levels: list[str],
    settings: EvalSettings,
    seed: int,
    linear_probe: bool,
    untrained: bool,
    run_info: dict[str, Any],
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], dict[str, Any] | None]:
    """The scoring function of one evaluation (probe or prompts) and the prompts it used.

    Records the method and its settings in `run_info`.
    """
    if linear_probe:
        run_info["method"] = "linear_probe"
        run_info["probe"] = settings.probe.to_dict()
        run_info["train_videos"] = ds.split("train")
        return _probe_scorer(ds, embed, levels, len(ds.classes), settings, seed), None
    run_info["method"] = "untrained" if untrained else "zeroshot"
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

    return scorer, prompts_used


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
    write_parquet(out / "predictions.parquet", predictions)
    if prompts_used is not None:
        write_json(out / "prompts.json", prompts_used)
    run = metrics["run"]
    title = (
        f"{run['dataset']}/{run['split']} {run['method']} ({run['space']}"
        f"{', ' + run['prompts'] if 'prompts' in run else ''}): "
        f"acc {metrics['accuracy_mean']:.1f}, F1 {metrics['f1_mean']:.1f}"
    )
    if confusion:
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
        for name in ("metrics.json", "predictions.parquet", "confusion.png", "prompts.json"):
            mlrun.log_artifact(out / name)
