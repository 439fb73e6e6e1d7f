"""`hecvl synth --check`: the figures to read before trusting a generated world, and its pass criteria.

Everything is measured at the model's resolution: frames are read at 1 fps through the project's readers
(hecvl.video, hecvl.datasets) with MODEL_INPUT, the transform every frame gets before the model
(resize to exactly 103 x 183, aspect ignored, then the 64 px centre crop).

- per target dataset, a linear probe (logistic regression on 16 x 16 block means of the crop and
  per-channel colour histograms) trained on the train split and tested on the test split (and on the val
  split, where the splits file has one): the pixels must carry the phase, or nothing can be learned.
  Classes the published protocol leaves out (MultiBypass140's other_intervention) are left out of train
  and test, as the evaluation does;
- the same probe trained on one centre and tested on the other (Strasbourg <-> Bern share their classes):
  the domain shift must be real (lower than within a centre);
- the probe trained on the lecture videos of the matching procedure and tested on each target: how far
  the lectures' style is from the operating-room recordings;
- from world.yaml alone (hecvl.synth.visibility): every instrument tip's narrowest drawn part in model
  pixels at the worst target centre, and per procedure the closest pair of anatomical sites against
  the colour jitter a camera can apply;
- the fraction of narration sentences that name the visible phase's instruments or anatomy, next to the
  configured relevance; chance and majority-class levels per dataset.

The command exits non-zero when a criterion fails (`failed_criteria`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from hecvl.config import TargetSettings
from hecvl.corpora.corpus import load_lecture
from hecvl.datasets.registry import TargetDataset
from hecvl.errors import HecvlError
from hecvl.io import read_json
from hecvl.synth import visibility, vocab
from hecvl.synth.language import mentions
from hecvl.video import FrameTransform, open_video

# What the model sees of every frame, lecture or target (the study's frames.transform default): resize to
# exactly 103 x 183 (the paper's 360 x 640, aspect ignored), then the 64 px centre crop (random at training).
MODEL_INPUT = FrameTransform(size=(103, 183), crop=64)
GRID = 16  # features: GRID x GRID block means of the model's input + HIST_BINS-bin colour histograms
HIST_BINS = 8
PROBE_MIN_ACCURACY = 60.0  # percent, on every target dataset's test split
CROSS = [("strasbypass70", "bernbypass70"), ("bernbypass70", "strasbypass70")]
LECTURE_FOR = {
    "cholec80": "cholecystectomy",
    "autolaparo": "hysterectomy",
    "strasbypass70": "gastric_bypass",
    "bernbypass70": "gastric_bypass",
}


def _block_means(x: np.ndarray, grid: int) -> np.ndarray:
    """(N, H, W, 3) -> (N, grid, grid, 3): means over a grid of near-equal blocks (4 x 4 px for 64 px)."""
    _, h, w, _ = x.shape
    ys = np.linspace(0, h, grid + 1).round().astype(np.intp)
    xs = np.linspace(0, w, grid + 1).round().astype(np.intp)
    sums = np.add.reduceat(np.add.reduceat(x, ys[:-1], axis=1), xs[:-1], axis=2)
    return sums / (np.diff(ys)[:, None] * np.diff(xs)[None, :])[None, :, :, None]


def frame_features(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 model inputs -> (N, 16*16*3 + 3*8): block means, per-channel histograms."""
    x = frames.astype(np.float32) / 255.0
    n = len(x)
    small = _block_means(x, GRID).reshape(n, -1)
    bins = np.minimum((x * HIST_BINS).astype(np.int64), HIST_BINS - 1).reshape(n, -1, 3)
    hist = np.stack(
        [np.stack([(bins[:, :, c] == b).mean(axis=1) for b in range(HIST_BINS)], axis=1) for c in range(3)],
        axis=1,
    ).reshape(n, -1)
    return np.concatenate([small, hist], axis=1)


def _video_features(path: Path, transform: FrameTransform) -> tuple[np.ndarray, np.ndarray]:
    with open_video(path) as reader:
        times, frames = reader.sample(fps=1.0, transform=transform)
    return np.round(times).astype(np.int64), frame_features(frames)


def _dataset(world: Path, name: str, manifest: dict[str, Any]) -> TargetDataset:
    spec = manifest["targets"][name]
    centre = spec["centre"]
    cfg = {
        "format": spec["format"],
        "root": str(world / spec["root"]),
        "videos": spec["videos"],
        "labels": spec["labels"],
        "splits": Path(spec["splits"]).name,
    }
    if spec["format"] == "multibypass140":
        cfg["centre"] = centre
    return TargetDataset.from_settings(name, TargetSettings.model_validate(cfg))


def _split_xy(
    ds: TargetDataset, split: str, transform: FrameTransform, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Features and phase ids of a split's labelled seconds (without the protocol's ignored classes)."""
    labels = ds.labels(split)
    xs, ys = [], []
    for video in tqdm(ds.split(split), desc=f"check {ds.name} {split}", unit="video", disable=not progress):
        secs, feats = _video_features(ds.video_path(video), transform)
        lab = labels[labels["video"] == video].set_index("frame_sec")["phase_id"]
        keep = np.isin(secs, lab.index.to_numpy())
        xs.append(feats[keep])
        ys.append(lab.loc[secs[keep]].to_numpy())
    return np.concatenate(xs), np.concatenate(ys)


def _lecture_xy(
    world: Path, manifest: dict[str, Any], procedure: str, transform: FrameTransform, progress: bool
) -> tuple:
    xs, ys = [], []
    lectures = [v for v in manifest["videos"] if v["kind"] == "lecture" and v["procedure"] == procedure]
    for v in tqdm(lectures, desc=f"check lectures {procedure}", unit="video", disable=not progress):
        secs, feats = _video_features(world / v["path"], transform)
        phase = np.array([_phase_at(v["segments"], float(s)) for s in secs])
        xs.append(feats[phase >= 0])
        ys.append(phase[phase >= 0])
    return np.concatenate(xs), np.concatenate(ys)


def _phase_at(segments: list[dict[str, Any]], t: float) -> int:
    for s in segments:
        if s["start"] <= t < s["end"]:
            return int(s["phase_id"])
    return -1


def _probe(x_train: np.ndarray, y_train: np.ndarray, seed: int = 0) -> Any:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=3000, random_state=seed))
    return model.fit(x_train, y_train)


def _scores(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = model.predict(x)
    return {
        "accuracy": round(100 * accuracy_score(y, pred), 2),
        "f1": round(100 * f1_score(y, pred, average="macro"), 2),
    }


def narration_relevance(world: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """How many narration sentences name the instruments or anatomy of the phase on screen."""
    total = named = visible = named_other = other = 0
    for v in manifest["videos"]:
        if v["kind"] != "lecture":
            continue
        lecture = load_lecture(world / Path(v["path"]).parent)
        kinds = v.get("narration_kinds") or []
        for k, row in enumerate(lecture.narrations.itertuples(index=False)):
            mid = 0.5 * (float(row.start) + float(row.end))
            seg = next((s for s in v["segments"] if s["start"] <= mid < s["end"]), None)
            scene = seg["scene"] if seg else None
            hit = False
            if scene is not None:
                tools = {t["tool"] for t in scene["tools"]}
                anatomy = {scene["site"], scene["target"], *scene["structures"]} | (
                    {scene["secondary"][0]} if scene["secondary"] else set()
                )
                hit = mentions(str(row.text), tools, anatomy)
            total += 1
            named += hit
            if k < len(kinds) and kinds[k] == "visible":
                visible += 1
            else:
                other += 1
                named_other += hit
    if not total:
        raise HecvlError("no narration sentences in the corpus", world / "corpus")
    return {
        "configured": manifest["params"]["narration_relevance"],
        "sentences": total,
        "generated_visible": round(visible / total, 4),
        "mention_visible_phase": round(named / total, 4),
        "mention_among_other_sentences": round(named_other / max(other, 1), 4),
    }


def run_check(
    world: str | Path, progress: bool = False, transform: FrameTransform = MODEL_INPUT
) -> dict[str, Any]:
    """All sanity figures of a generated world and its criteria, as a JSON-friendly dict (accuracies in
    percent). `transform` is what the model sees of a frame (default MODEL_INPUT)."""
    world = Path(world)
    if not (world / "manifest.json").is_file():
        raise HecvlError("not a generated world: manifest.json is missing", world)
    manifest = read_json(world / "manifest.json", "world manifest")
    datasets: dict[str, Any] = {}
    data: dict[str, tuple] = {}
    models: dict[str, Any] = {}
    for name in manifest["targets"]:
        ds = _dataset(world, name, manifest)
        xtr, ytr = _split_xy(ds, "train", transform, progress)
        xte, yte = _split_xy(ds, "test", transform, progress)
        data[name] = (xte, yte)
        models[name] = model = _probe(xtr, ytr)
        majority = np.bincount(ytr).argmax()
        scored = ds.scored_classes
        datasets[name] = {
            "classes": len(scored),
            "left_out": [ds.classes[i] for i in ds.ignored],
            "chance": round(100 / len(scored), 2),
            "majority": round(100 * float(np.mean(yte == majority)), 2),
            "train_frames": len(ytr),
            "test_frames": len(yte),
            "classes_in_test": len(np.unique(yte)),
            "probe": _scores(model, xte, yte),
        }
        if "val" in ds.splits():
            xva, yva = _split_xy(ds, "val", transform, progress)
            datasets[name]["val_frames"] = len(yva)
            datasets[name]["probe_val"] = _scores(model, xva, yva)
    cross = []
    for src, dst in CROSS:
        if src in models and dst in data:
            cross.append(
                {
                    "train": src,
                    "test": dst,
                    **_scores(models[src], *data[dst]),
                    "within": datasets[dst]["probe"]["accuracy"],
                }
            )
    lectures: dict[str, Any] = {}
    cache: dict[str, Any] = {}
    for name in datasets:
        proc = LECTURE_FOR[name]
        if proc not in cache:
            xl, yl = _lecture_xy(world, manifest, proc, transform, progress)
            cache[proc] = _probe(xl, yl) if len(np.unique(yl)) > 1 else None
        if cache[proc] is not None:
            lectures[name] = {"train": f"lectures/{proc}", **_scores(cache[proc], *data[name])}
    narr = narration_relevance(world, manifest)
    spec = vocab.world()
    tips = visibility.tip_widths(spec, transform)
    sites = visibility.site_separation(spec)
    criteria = {
        "probe_at_least_60": {n: d["probe"]["accuracy"] >= PROBE_MIN_ACCURACY for n, d in datasets.items()},
        "tool_tips_at_least_2px": {t: d["px"] >= visibility.MIN_TIP_PX for t, d in tips.items()},
        "site_colours_separated": {p: not d["failing"] for p, d in sites.items()},
        "cross_centre_below_within": {
            f"{c['train']}->{c['test']}": c["accuracy"] < c["within"] for c in cross
        },
        "narration_near_configured": abs(narr["mention_visible_phase"] - narr["configured"]) <= 0.1,
    }
    return {
        "world": str(world),
        "params": manifest["params"],
        "model_input": transform.to_dict(),
        "data_files_match": manifest["generator"].get("data_sha256") == vocab.data_digest(),
        "datasets": datasets,
        "cross_centre": cross,
        "lectures_to_targets": lectures,
        "tool_tips": tips,
        "site_colours": sites,
        "narration": narr,
        "criteria": criteria,
    }


def failed_criteria(report: dict[str, Any]) -> list[str]:
    """The names (with their item, `name[item]`) of the criteria that fail; empty when the world passes."""
    out = []
    for name, value in report["criteria"].items():
        if isinstance(value, dict):
            out += [f"{name}[{k}]" for k, ok in value.items() if not ok]
        elif not value:
            out.append(name)
    return out


def format_report(report: dict[str, Any]) -> str:
    """The figures as a plain-text table, then one ok/FAIL line per criterion."""
    t = report.get("model_input") or {}
    lines = [
        f"synthetic world {report['world']}  ({json.dumps(report['params'], sort_keys=True)})",
        f"model input: frames resized to {t.get('size')} then a {t.get('crop')} px centre crop",
    ]
    if not report.get("data_files_match", True):
        lines.append("note: the world was generated from other data files than the installed world.yaml")
    lines.append("")
    lines.append(
        f"{'dataset':<15}{'classes':>8}{'chance':>8}{'majority':>9}{'probe acc':>10}{'probe F1':>9}"
        f"{'val acc':>8}{'lect->tgt':>10}{'train/val/test frames':>23}"
    )
    for name, d in report["datasets"].items():
        lect = report["lectures_to_targets"].get(name, {}).get("accuracy", float("nan"))
        val = d.get("probe_val", {}).get("accuracy", float("nan"))
        frames = f"{d['train_frames']}/{d.get('val_frames', '-')}/{d['test_frames']}"
        lines.append(
            f"{name:<15}{d['classes']:>8}{d['chance']:>8.1f}{d['majority']:>9.1f}{d['probe']['accuracy']:>10.1f}"
            f"{d['probe']['f1']:>9.1f}{val:>8.1f}{lect:>10.1f}{frames:>23}"
        )
    left = {n: d["left_out"] for n, d in report["datasets"].items() if d.get("left_out")}
    for name, classes in left.items():
        lines.append(
            f"  {name}: frames of {', '.join(classes)} left out of the probe's train and test "
            "(the published protocol drops the class)"
        )
    lines.append("")
    for c in report["cross_centre"]:
        lines.append(
            f"cross-centre {c['train']} -> {c['test']}: accuracy {c['accuracy']:.1f} (F1 {c['f1']:.1f}), "
            f"within {c['test']}: {c['within']:.1f}"
        )
    n = report["narration"]
    lines.append(
        f"narration: {n['sentences']} sentences, configured relevance {n['configured']:.2f}, generated as "
        f"visible {n['generated_visible']:.3f}, naming the visible phase's tools/anatomy "
        f"{n['mention_visible_phase']:.3f} (among the other sentences "
        f"{n['mention_among_other_sentences']:.3f})"
    )
    lines.append("")
    lines.append(
        "instrument tips at the model's input (narrowest drawn part, px; worst target centre; "
        "inset lecture for reference):"
    )
    for tool, d in report["tool_tips"].items():
        lines.append(
            f"  {tool:<14}{d['tip']:<8} {d['part']:<13}{d['px']:>5.2f} px  ({d['worst_centre']}; "
            f"inset lecture {d['lecture_inset_px']:.2f})"
        )
    lines.append("closest anatomical sites per procedure (RGB distance of base colours vs colour jitter):")
    for proc, d in report["site_colours"].items():
        c = d["closest"]
        if c is None:
            continue
        lines.append(
            f"  {proc:<16}{c['pair'][0]} / {c['pair'][1]}: distance {c['distance']:.1f}, "
            f"jitter {c['jitter']:.1f}, margin {c['margin']:+.1f}"
            + (f"; {len(d['failing'])} pair(s) within the jitter" if d["failing"] else "")
        )
    lines.append("")
    crit = report["criteria"]
    labels = {
        "probe_at_least_60": f"probe >= {PROBE_MIN_ACCURACY:.0f} % accuracy",
        "tool_tips_at_least_2px": f"tool tip >= {visibility.MIN_TIP_PX:.0f} px at the model's input",
        "site_colours_separated": "site colours further apart than the colour jitter",
        "cross_centre_below_within": "cross-centre below within",
        "narration_near_configured": "narration relevance within 0.1 of configured",
    }
    for name, value in crit.items():
        label = labels.get(name, name)
        items = value.items() if isinstance(value, dict) else [(None, value)]
        lines += [f"{'ok  ' if ok else 'FAIL'} {label}" + (f" [{k}]" if k else "") for k, ok in items]
    failed = failed_criteria(report)
    lines.append("")
    lines.append(f"{len(failed)} criteria failed" if failed else "all criteria pass")
    return "\n".join(lines)
