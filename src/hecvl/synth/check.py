"""`hecvl synth --check`: the figures to read before trusting a generated world.

- per target dataset, a linear probe (logistic regression on 16x16 pixels + colour histograms of 1 fps
  frames) trained on the train split and tested on the test split: the pixels must carry the phase (far
  above chance), or nothing can be learned;
- the same probe trained on one centre and tested on the other (Strasbourg <-> Bern share their classes):
  the domain shift must be real (lower than within a centre);
- the probe trained on the lecture videos of the matching procedure and tested on each target: how far
  the lectures' style is from the operating-room recordings;
- the fraction of narration sentences that name the visible phase's instruments or anatomy, next to the
  configured relevance; chance and majority-class levels per dataset.
Frames and labels are read through the project's readers (hecvl.video, hecvl.datasets), as any stage would.
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
from hecvl.datasets.corpus import load_lecture
from hecvl.datasets.registry import TargetDataset
from hecvl.errors import HecvlError
from hecvl.io import read_json
from hecvl.synth.language import mentions
from hecvl.video import FrameTransform, open_video

FEATURE_SIZE = 32  # frames are decoded at 32x32; features: 16x16 means + 8-bin colour histograms
HIST_BINS = 8
CROSS = [("strasbypass70", "bernbypass70"), ("bernbypass70", "strasbypass70")]
LECTURE_FOR = {
    "cholec80": "cholecystectomy",
    "autolaparo": "hysterectomy",
    "strasbypass70": "gastric_bypass",
    "bernbypass70": "gastric_bypass",
}


def frame_features(frames: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) uint8 -> (N, 16*16*3 + 3*8): downsampled pixels and per-channel colour histograms."""
    x = frames.astype(np.float32) / 255.0
    n = len(x)
    small = x.reshape(n, 16, 2, 16, 2, 3).mean(axis=(2, 4)).reshape(n, -1)
    bins = np.minimum((x * HIST_BINS).astype(np.int64), HIST_BINS - 1).reshape(n, -1, 3)
    hist = np.stack(
        [np.stack([(bins[:, :, c] == b).mean(axis=1) for b in range(HIST_BINS)], axis=1) for c in range(3)],
        axis=1,
    ).reshape(n, -1)
    return np.concatenate([small, hist], axis=1)


def _video_features(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open_video(path) as reader:
        times, frames = reader.sample(fps=1.0, transform=FrameTransform(size=(FEATURE_SIZE, FEATURE_SIZE)))
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


def _split_xy(ds: TargetDataset, split: str, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    labels = ds.labels(split)
    xs, ys = [], []
    for video in tqdm(ds.split(split), desc=f"check {ds.name} {split}", unit="video", disable=not progress):
        secs, feats = _video_features(ds.video_path(video))
        lab = labels[labels["video"] == video].set_index("frame_sec")["phase_id"]
        keep = np.isin(secs, lab.index.to_numpy())
        xs.append(feats[keep])
        ys.append(lab.loc[secs[keep]].to_numpy())
    return np.concatenate(xs), np.concatenate(ys)


def _lecture_xy(world: Path, manifest: dict[str, Any], procedure: str, progress: bool) -> tuple:
    xs, ys = [], []
    lectures = [v for v in manifest["videos"] if v["kind"] == "lecture" and v["procedure"] == procedure]
    for v in tqdm(lectures, desc=f"check lectures {procedure}", unit="video", disable=not progress):
        secs, feats = _video_features(world / v["path"])
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


def run_check(world: str | Path, progress: bool = False) -> dict[str, Any]:
    """All sanity figures of a generated world, as a JSON-friendly dict (accuracies in percent)."""
    world = Path(world)
    if not (world / "manifest.json").is_file():
        raise HecvlError("not a generated world: manifest.json is missing", world)
    manifest = read_json(world / "manifest.json", "world manifest")
    datasets: dict[str, Any] = {}
    data: dict[str, tuple] = {}
    models: dict[str, Any] = {}
    for name in manifest["targets"]:
        ds = _dataset(world, name, manifest)
        xtr, ytr = _split_xy(ds, "train", progress)
        xte, yte = _split_xy(ds, "test", progress)
        data[name] = (xte, yte)
        models[name] = model = _probe(xtr, ytr)
        majority = np.bincount(ytr).argmax()
        datasets[name] = {
            "classes": len(ds.classes),
            "chance": round(100 / len(ds.classes), 2),
            "majority": round(100 * float(np.mean(yte == majority)), 2),
            "train_frames": len(ytr),
            "test_frames": len(yte),
            "classes_in_test": len(np.unique(yte)),
            "probe": _scores(model, xte, yte),
        }
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
            xl, yl = _lecture_xy(world, manifest, proc, progress)
            cache[proc] = _probe(xl, yl) if len(np.unique(yl)) > 1 else None
        if cache[proc] is not None:
            lectures[name] = {"train": f"lectures/{proc}", **_scores(cache[proc], *data[name])}
    narr = narration_relevance(world, manifest)
    criteria = {
        "probe_at_least_3x_chance": {
            n: d["probe"]["accuracy"] >= 3 * d["chance"] for n, d in datasets.items()
        },
        "cross_centre_below_within": {
            f"{c['train']}->{c['test']}": c["accuracy"] < c["within"] for c in cross
        },
        "narration_near_configured": abs(narr["mention_visible_phase"] - narr["configured"]) <= 0.1,
    }
    return {
        "world": str(world),
        "params": manifest["params"],
        "datasets": datasets,
        "cross_centre": cross,
        "lectures_to_targets": lectures,
        "narration": narr,
        "criteria": criteria,
    }


def format_report(report: dict[str, Any]) -> str:
    """The figures as a plain-text table."""
    lines = [f"synthetic world {report['world']}  ({json.dumps(report['params'], sort_keys=True)})", ""]
    lines.append(
        f"{'dataset':<15}{'classes':>8}{'chance':>8}{'majority':>9}{'probe acc':>10}{'probe F1':>9}"
        f"{'lect->tgt':>10}{'train/test frames':>19}"
    )
    for name, d in report["datasets"].items():
        lect = report["lectures_to_targets"].get(name, {}).get("accuracy", float("nan"))
        lines.append(
            f"{name:<15}{d['classes']:>8}{d['chance']:>8.1f}{d['majority']:>9.1f}{d['probe']['accuracy']:>10.1f}"
            f"{d['probe']['f1']:>9.1f}{lect:>10.1f}{d['train_frames']:>10}/{d['test_frames']}"
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
    crit = report["criteria"]
    flat = {
        **{f"probe >= 3x chance [{k}]": v for k, v in crit["probe_at_least_3x_chance"].items()},
        **{f"cross-centre below within [{k}]": v for k, v in crit["cross_centre_below_within"].items()},
        "narration relevance within 0.1 of configured": crit["narration_near_configured"],
    }
    lines += [f"{'ok  ' if ok else 'FAIL'} {k}" for k, ok in flat.items()]
    return "\n".join(lines)
