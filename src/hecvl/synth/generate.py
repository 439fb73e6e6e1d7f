"""Generate the whole world: lectures, four target centres, manifest; written atomically as one folder.

Every video is planned from (seed, its id) alone, so a video does not change when others are added
(`--scale`), and rendering can run in any order on any number of worker processes with identical bytes.
The world is built in a temporary sibling folder and renamed into place only when complete.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hecvl.errors import HecvlError
from hecvl.io import sha256_file, write_json
from hecvl.synth import corpus, style, targets, vocab
from hecvl.synth.encode import X264_GOP, write_mp4
from hecvl.synth.render import Renderer
from hecvl.synth.world import VideoPlan, plan_to_dict, plan_video, rng_for

log = logging.getLogger(__name__)

GENERATOR = "hecvl.synth"
GENERATOR_VERSION = "1.1"
SPLITS = ("train", "val", "test")  # the target datasets' splits, in id order
# target dataset (params.yaml data.targets) -> (centre, folder, video id prefix, splits file, labels folder)
TARGETS = {
    "cholec80": ("cholec80", "cholec80", "video", "splits.json", "phase_annotations"),
    "autolaparo": ("autolaparo", "autolaparo", "", "splits.json", "labels"),
    "strasbypass70": (
        "strasbourg",
        "multibypass140",
        "SBP",
        "splits_strasbourg.json",
        "labels/strasbourg/labels_by70",
    ),
    "bernbypass70": ("bern", "multibypass140", "BBP", "splits_bern.json", "labels/bern/labels_by70"),
}


@dataclass
class Job:
    plan: VideoPlan
    path: Path  # relative to the world root
    gop: int | str  # key-frame interval in frames, or "x264": libx264's default

    @property
    def cost(self) -> int:
        h, w = self.plan.size
        return self.plan.n_pictures * h * w + self.plan.n_frames * h * w // 8


def preset_sizes(preset: str) -> dict[str, Any]:
    presets = vocab.presets()
    if preset not in presets:
        raise HecvlError(f"unknown preset {preset!r} (known: {', '.join(sorted(presets))})")
    return presets[preset]


def world_params(
    preset: str,
    seed: int,
    scale: float,
    narration_relevance: float,
    lecture_video: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The settings recorded in the manifest (and compared by `ensure_world`), validated.

    `lecture_video` (data.synthetic.lecture_video: size, fps, render_fps, render_scale, gop, duration_s) is
    recorded only when it overrides something, so the default world's manifest is unchanged by its existence.
    """
    preset_sizes(preset)
    if not 0.0 <= float(narration_relevance) <= 1.0:
        raise HecvlError(f"narration relevance must be in [0, 1], got {narration_relevance}")
    if not float(scale) > 0:
        raise HecvlError(f"scale must be positive, got {scale}")
    scale_value: float | int = int(scale) if float(scale).is_integer() else float(scale)
    params: dict[str, Any] = {
        "preset": preset,
        "seed": int(seed),
        "scale": scale_value,
        "narration_relevance": float(narration_relevance),
    }
    overrides = lecture_overrides(lecture_video)
    if overrides:
        params["lecture_video"] = overrides
    return params


def lecture_overrides(lecture_video: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`lecture_video` validated as data.synthetic.lecture_video and reduced to what it overrides (None:
    nothing); the resulting format is checked against world.yaml here (a render_fps that does not divide its
    fps)."""
    if not lecture_video:
        return None
    from pydantic import ValidationError

    from hecvl.config.data import LectureVideoSettings

    try:
        settings = LectureVideoSettings.model_validate(dict(lecture_video))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "lecture_video"
        raise HecvlError(f"data.synthetic.lecture_video.{where}: {first['msg']}") from None
    overrides = settings.overrides()
    if overrides:
        lecture_format(overrides)  # a format world.yaml's rates cannot make fails here, before any rendering
    return overrides


def lecture_format(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The lectures' video format: world.yaml's `lectures:` look with the overrides applied.

    Keys: size (H, W), fps, render_fps, render_scale, gop_s (None: libx264's default key-frame interval) and
    duration_s (None: the preset's). Without overrides, exactly what the default world has always used.
    """
    cfg = vocab.world()["lectures"]
    ov = dict(overrides or {})
    fps = int(ov.get("fps") or cfg["fps"])
    base_rate = int(cfg["fps"])  # world.yaml draws every lecture frame: its distinct pictures per second
    render_fps = ov.get("render_fps")
    if render_fps is None:  # the divisor of fps nearest the world's picture rate (ties: the higher)
        divisors = [d for d in range(1, fps + 1) if fps % d == 0]
        render_fps = min(divisors, key=lambda d: (abs(d - base_rate), -d))
    if fps % int(render_fps):
        raise HecvlError(f"data.synthetic.lecture_video: render_fps {render_fps} does not divide fps {fps}")
    size = ov.get("size") or cfg["size"]
    scale = int(ov.get("render_scale") or 1)
    if min(int(size[0]), int(size[1])) // scale < 8:
        raise HecvlError(f"data.synthetic.lecture_video: render_scale {scale} draws {list(size)} below 8 px")
    return {
        "size": [int(size[0]), int(size[1])],
        "fps": fps,
        "render_fps": int(render_fps),
        "render_scale": scale,
        "gop_s": None if ov.get("gop") == "x264" else float(cfg["gop_s"]),
        "duration_s": list(ov["duration_s"]) if ov.get("duration_s") else None,
    }


def plan_world(
    preset: str, seed: int, scale: float, lecture_video: Mapping[str, Any] | None = None
) -> tuple[list[Job], list[Job], dict[str, dict[str, list[str]]]]:
    """All videos of the world as jobs: lectures, target videos, and the targets' train/val/test splits
    (consecutive ids in that order; no val split when the preset asks for none). `lecture_video` changes
    only how the lectures are written (see `lecture_format`): their content is drawn from the same streams."""
    sizes = preset_sizes(preset)
    w = vocab.world()
    lec_cfg = w["lectures"]
    fmt = lecture_format(lecture_overrides(lecture_video))
    lectures: list[Job] = []
    n_lectures = max(1, round(int(sizes["lectures"]["count"]) * float(scale)))
    for i in range(n_lectures):
        lid = f"lecture_{i + 1:04d}"
        rng = rng_for(seed, "lecture", lid)
        procedure = lec_cfg["procedures"][i % len(lec_cfg["procedures"])]
        look = style.lecture_style(rng)
        look.update(size=fmt["size"], fps=fmt["fps"], render_fps=fmt["render_fps"],
                    render_scale=fmt["render_scale"], gop_s=fmt["gop_s"])
        duration = int(rng.integers(*(fmt["duration_s"] or sizes["lectures"]["duration_s"]), endpoint=True))
        plan = plan_video(
            lid,
            "lecture",
            procedure,
            lec_cfg["sequence_prefix"] + procedure,
            "lecture",
            look,
            duration,
            int(rng.integers(0, 2**31 - 1)),
        )
        gop: int | str = X264_GOP if fmt["gop_s"] is None else max(1, round(float(fmt["gop_s"]) * plan.fps))
        lectures.append(Job(plan, Path("corpus") / lid / "video.mp4", gop))
    target_jobs: list[Job] = []
    splits: dict[str, dict[str, list[str]]] = {}
    counts = {split: int(sizes["targets"].get(split, 0)) for split in SPLITS}
    for name, (centre, folder, prefix, _, _) in TARGETS.items():
        look = style.centre_style(centre)
        ids = [f"{prefix}{k + 1:02d}" for k in range(sum(counts.values()))]
        splits[name] = {}
        k = 0
        for split, n in counts.items():  # consecutive ids: train first, then val, then test
            if n or split != "val":
                splits[name][split] = ids[k : k + n]
            k += n
        for vid in ids:
            rng = rng_for(seed, "target", name, vid)
            lo, hi = sizes["targets"]["duration_s"]
            duration = round(float(rng.uniform(lo, hi)) * float(look.get("duration", 1.0)))
            plan = plan_video(
                vid,
                "target",
                look["procedure"],
                look["sequence"],
                centre,
                look,
                duration,
                int(rng.integers(0, 2**31 - 1)),
            )
            target_jobs.append(Job(plan, Path("targets") / folder / "videos" / f"{vid}.mp4", 2 * plan.fps))
    return lectures, target_jobs, splits


def render_job(job: Job, root: str) -> str:
    """Render and encode one video under `root`; returns its SHA-256 (runs in a worker process)."""
    path = Path(root) / job.path
    path.parent.mkdir(parents=True, exist_ok=True)
    plan = job.plan
    write_mp4(path, Renderer(plan).pictures(), plan.fps, plan.n_frames, plan.repeat, job.gop)
    return sha256_file(path)


def _init_worker() -> None:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass


def _render_all(jobs: list[Job], root: Path, workers: int, progress: bool) -> dict[str, str]:
    order = sorted(jobs, key=lambda j: (-j.cost, str(j.path)))  # longest first: the pool ends together
    bar = tqdm(total=len(order), desc="synth videos", unit="video", disable=not progress)
    hashes: dict[str, str] = {}
    if workers <= 1:
        for job in order:
            hashes[job.path.as_posix()] = render_job(job, str(root))
            bar.update()
    else:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
            futures = {pool.submit(render_job, job, str(root)): job for job in order}
            try:
                for fut in as_completed(futures):
                    hashes[futures[fut].path.as_posix()] = fut.result()
                    bar.update()
            except BaseException:
                for fut in futures:  # fail fast: do not render the rest of a world that will be discarded
                    fut.cancel()
                raise
    bar.close()
    return hashes


def _check_destination(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise HecvlError("exists and is not a folder", out)
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise HecvlError(
            "exists and is not a generated world (no manifest.json); refusing to replace it", out
        )


def _swap_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def generate_world(
    out: str | Path,
    preset: str = "default",
    seed: int = 0,
    scale: float = 1,
    narration_relevance: float = 0.5,
    workers: int = 2,
    progress: bool | None = None,
    lecture_video: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the world to `out` (corpus/, targets/, manifest.json) and return the manifest. `lecture_video`:
    data.synthetic.lecture_video's settings (how the lectures are written; None: world.yaml's)."""
    out = Path(out)
    params = world_params(preset, seed, scale, narration_relevance, lecture_video)
    _check_destination(out)
    progress = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    lectures, target_jobs, splits = plan_world(preset, int(seed), float(scale), params.get("lecture_video"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        hashes = _render_all(lectures + target_jobs, tmp, int(workers), progress)
        videos = []
        for job in lectures:
            rng = rng_for(int(seed), "narration", job.plan.video_id)
            text = corpus.write_lecture_text(
                tmp / job.path.parent, job.plan, float(narration_relevance), int(rng.integers(0, 2**31 - 1))
            )
            videos.append({**plan_to_dict(job.plan), "path": job.path.as_posix(), **text})
        _write_targets(tmp, target_jobs, splits)
        videos += [{**plan_to_dict(j.plan), "path": j.path.as_posix()} for j in target_jobs]
        files = {
            p.relative_to(tmp).as_posix(): hashes.get(p.relative_to(tmp).as_posix()) or sha256_file(p)
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        }
        manifest = {
            "generator": {
                "name": GENERATOR,
                "version": GENERATOR_VERSION,
                "data_sha256": vocab.data_digest(),
            },
            "params": params,
            "corpus": {"root": "corpus", "lectures": [j.plan.video_id for j in lectures]},
            "targets": {
                name: {
                    "root": f"targets/{folder}",
                    "format": _fmt(folder),
                    "centre": centre,
                    "videos": "videos/{video}.mp4",
                    "labels": labels,
                    "splits": f"targets/{folder}/{split_file}",
                    **splits[name],
                }
                for name, (centre, folder, _, split_file, labels) in TARGETS.items()
            },
            "videos": videos,
            "files": files,
        }
        write_json(tmp / "manifest.json", manifest)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "synthetic world (%s, seed %s, scale %s): %d lectures, %d target videos in %.1f s -> %s",
        preset,
        seed,
        scale,
        len(lectures),
        len(target_jobs),
        time.perf_counter() - started,
        out,
    )
    return manifest


def _fmt(folder: str) -> str:
    return {"cholec80": "cholec80", "autolaparo": "autolaparo"}.get(folder, "multibypass140")


def _write_targets(root: Path, jobs: list[Job], splits: dict[str, dict[str, list[str]]]) -> None:
    for job in jobs:
        plan = job.plan
        base = root / job.path.parent.parent
        if plan.dataset == "cholec80":
            targets.write_cholec80(base, plan)
        elif plan.dataset == "autolaparo":
            targets.write_autolaparo(base, plan)
        else:
            targets.write_multibypass(base, plan, plan.source, severe_index=plan.source == "bern")
    targets.write_multibypass_tables(root / "targets" / "multibypass140")
    for name, (_, folder, _, split_file, _) in TARGETS.items():
        targets.write_splits(root / "targets" / folder / split_file, splits[name])
