"""run_protocol.md: the exact protocol one study ran, written beside its tables.

Why: the same weights score up to 15 points apart under different prompts, frames and splits
(method.md §8), so a table without its protocol cannot be read. Everything here comes from the
resolved params.yaml and from what the evaluations themselves recorded in their metrics.json
(test videos, frame counts, prompt file hashes), never from defaults restated by hand.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hecvl.config import Params
from hecvl.errors import HecvlError
from hecvl.paper.collect import Result
from hecvl.paper.published import PublishedTable, dataset_title
from hecvl.study import Study


def params_digest(params: Params) -> str:
    """A short hash of the resolved settings: two tables with the same digest share every setting."""
    blob = json.dumps(params.to_dict(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def data_description(params: Params) -> tuple[str, str]:
    """(long, short) description of the data our rows are on, e.g. ("synthetic world: ...", "synthetic")."""
    data = params.data
    if data.source == "synthetic":
        synthetic = {k: v for k, v in data.synthetic.to_dict().items() if k != "lecture_video"}
        detail = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in synthetic.items())
        video = data.synthetic.lecture_video.overrides()  # named only where the lectures are not world.yaml's
        if video:
            detail += ", lectures " + ", ".join(f"{k} {v}" for k, v in video.items())
        return f"synthetic world (hecvl synth: {detail})", "synthetic"
    return f"local copies of the datasets ({data.root})", "local data"


def test_sets(results: Sequence[Result]) -> dict[str, dict[str, Any]]:
    """Per dataset: the test videos and labelled seconds every result was scored on.

    Every method of a table must have seen the same videos, or the comparison is void: an error.
    """
    sets: dict[str, dict[str, Any]] = {}
    for r in results:
        videos = sorted(r.metrics["per_video"])
        frames = int(sum(int(v.get("frames", 0)) for v in r.metrics["per_video"].values()))
        info = {
            "videos": videos,
            "frames": frames,
            "classes": list(r.metrics["classes"]),
            "split": (r.metrics.get("run") or {}).get("split", "test"),
        }
        seen = sets.setdefault(r.entry.dataset, {**info, "first": r.path})
        if seen["videos"] != videos or seen["frames"] != frames:
            raise HecvlError(
                f"{r.entry.dataset}: scored on {len(videos)} videos / {frames} seconds, but {seen['first']} "
                f"on {len(seen['videos'])} videos / {seen['frames']} seconds: methods must share a test set",
                r.path,
            )
    return sets


def _prompt_lines(results: Sequence[Result]) -> list[str]:
    seen: dict[tuple, list[str]] = {}
    for r in results:
        run = r.metrics.get("run") or {}
        if "prompt_sha256" not in run:
            continue
        key = (
            r.entry.dataset,
            run.get("prompts"),
            Path(str(run.get("prompt_file", "?"))).name,
            run.get("prompt_sha256"),
            run.get("prompt_version"),
            run.get("truncated_prompts"),
        )
        seen.setdefault(key, []).append(r.entry.label)
    lines = []
    for (ds, style, name, sha, version, truncated), labels in seen.items():
        lines.append(
            f"- {dataset_title(ds)}: style `{style}`, file `{name}` (version {version}, "
            f"sha256 `{str(sha)[:16]}`), "
            f"{truncated} prompt(s) truncated; used by {', '.join(sorted(set(labels)))}"
        )
    return lines or ["- not recorded in the metrics files"]


def _released_lines(results: Sequence[Result], skipped: Sequence[str]) -> list[str]:
    """The released-weights rows: what was evaluated (checkpoint, transform) and what was skipped, why."""
    out = ["## Released weights (params.yaml `released:`)", ""]
    seen: dict[str, dict[str, Any]] = {}
    for r in results:
        run = r.metrics.get("run") or {}
        if run.get("format") == "surgvlp":
            seen.setdefault(r.entry.label, run)
    for label, run in seen.items():
        out.append(
            f"- {label}: `{run.get('weights', '?')}` (model key `{run.get('model_key', '?')}`), frames "
            f"{run.get('transform', '?')} (the authors' transform: PIL bilinear resize of the full frame, "
            f"centre crop), their forward pass, one embedding space; prompts `{run.get('prompts', '?')}`"
        )
    out += [f"- {note}" for note in skipped]
    if not seen and not skipped:
        out.append("- none configured")
    return [*out, ""]


def _variant_lines(study: Study, variants: Sequence[str]) -> list[str]:
    lines = []
    for v in variants:
        cfg = study.resolved(v)
        train, ev = cfg.train, cfg.eval
        lines.append(
            f"- `{v}`: schedule {train.schedule}, levels {'+'.join(train.levels)}, "
            f"{train.steps} steps, batch {train.batch_size.to_dict()}, lr {train.lr}, "
            f"heads {cfg.model.heads.mode}; test-time space {ev.space}, prompts {ev.prompts}"
        )
    return lines


def protocol_markdown(
    study: Study,
    results: Sequence[Result],
    published: PublishedTable,
    pair_stats: Mapping[str, Any] | None,
    released_notes: Sequence[str] = (),
) -> str:
    """The protocol note of one build of the paper's outputs.

    `released_notes`: the released-weights rows that were skipped, and why (Study.released_notes).
    """
    p = study.params
    long_data, _short = data_description(p)
    transform = p.frames.transform.to_dict()  # lists, as the note has always printed them
    visual, text = p.model.visual.to_dict(), p.model.text
    targets = p.data.targets
    sets = test_sets(results)
    out = [
        "# Protocol of these tables and figures",
        "",
        "Zero-shot numbers move by up to 15 points with the protocol (prompts, frames, splits; see",
        "docs/method.md §8), so this note travels with every table. It is generated from params.yaml and",
        "from what each evaluation recorded.",
        "",
        f"- study: `{study.name}`, preset `{p.preset or 'none'}`, settings digest `{params_digest(p)}`",
        f"- data of our rows: {long_data}",
        f"- published rows: {published.label}: {published.data}; {published.source}",
        f"- seeds: main comparison {study.seeds}; ablations {study.ablation_seeds}",
        f"- methods: baseline `{study.baseline}`, main `{study.main}`",
        "",
        "## Datasets and test splits",
        "",
        "| dataset | format | splits file | split | test videos | labelled seconds | classes |",
        "|---|---|---|---|---|---|---|",
    ]
    for ds in study.datasets:
        t = targets[ds]  # Study checked that every study dataset is a target
        s = sets.get(ds)
        if s is None:
            out.append(
                f"| {dataset_title(ds)} | {t.format} | {t.splits} | — | "
                "no results | — | — |"
            )
            continue
        out.append(
            f"| {dataset_title(ds)} | {t.format} | {t.splits} | {s['split']} | "
            f"{len(s['videos'])} | {s['frames']} | {len(s['classes'])} |"
        )
    out += ["", "Test videos:", ""]
    out += [f"- {dataset_title(ds)}: {', '.join(s['videos'])}" for ds, s in sets.items()]
    out += [
        "",
        "## Frames and inference",
        "",
        f"- sampling: {p.frames.fps:g} frame per second; second i = frame round(i x video fps);"
        " labels joined on the second (docs/method.md §5)",
        f"- transform: resize to {transform['size']} (H, W), centre crop {transform['crop']}, "
        f"{transform['resample']} resampling; normalised with mean {visual['mean']}, std {visual['std']}",
        "- score: 100 x cosine similarity of the L2-normalised frame and prompt embeddings; argmax, ties to "
        "the lowest class id",
        "",
        "Prompts (as recorded by the evaluations):",
        "",
        *_prompt_lines(results),
        "",
        *_released_lines(results, released_notes),
        "## Model and pretraining",
        "",
        f"- visual encoder: {visual['preset']} (init: {visual['weights'] or 'random'}), "
        f"image size {visual['image_size']}",
        f"- text encoder: {text.encoder}, pooling {text.pooling}, max length {text.max_length} tokens, "
        f"frozen {text.freeze}",
        *_variant_lines(study, list(dict.fromkeys([study.baseline, study.main]))),
    ]
    if pair_stats:
        levels = pair_stats.get("levels") or {}
        lectures = (pair_stats.get("lectures") or {}).get("used", "?")
        counts = ", ".join(
            f"{lvl} {levels[lvl].get('pairs', '?')}" for lvl in ("clip", "phase", "video") if lvl in levels
        )
        out.append(f"- pretraining pairs: {counts} from {lectures} lectures")
    else:
        out.append("- pretraining pairs: statistics not available")
    out += [
        "",
        "## Metrics",
        "",
        "- per test video: accuracy, and macro F1 over the classes in the video's ground truth or",
        '  prediction (scikit-learn `f1_score(average="macro")`); in percent',
        "- per run: mean over test videos (the run's std over videos is kept as well)",
        "- tables: mean ± population std (ddof=0) across seeds of the per-run means; with one seed, ± the",
        "  std over test videos (marked †)",
        "- per-phase F1 (figures): over all frames of all test videos pooled, then mean over seeds",
    ]
    return "\n".join(out) + "\n"
