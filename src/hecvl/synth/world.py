"""What happens in a synthetic video: phase order and durations, scene recipes, instruments, nuisances.

A `VideoPlan` is the complete, seeded description of one video; rendering, labels and narrations are all
derived from it, so they can never disagree. Phase orders follow the patterns of the real label files
(skipped phases, swapped order, AutoLaparo's 2,3,2,3 revisits, MultiBypass140's unlabelled head and tail).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hecvl.errors import HecvlError
from hecvl.synth import vocab

MAX_TOOLS = 3


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator for one named stream: the same keys give the same numbers in any process or order."""
    words = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng(words)


@dataclass
class ToolTrack:
    """One instrument in one segment: when it is visible and where it comes from."""

    tool: str
    action: str
    on: list[tuple[float, float]]  # visible stretches, seconds
    entry: tuple[float, float]  # where the shaft enters, in frame fractions (x, y), outside the frame
    anchor: tuple[float, float]  # resting tip position, frame fractions
    phase: float  # motion phase offset, radians


@dataclass
class Scene:
    """A phase's scene recipe, instantiated for one segment."""

    site: str
    target: str  # what the instruments act on (the site unless the recipe names another)
    secondary: tuple[str, str, float] | None  # (site, side, fraction of the view)
    structures: list[str]
    tools: list[ToolTrack]
    smoke: float
    camera: float
    seed: int


@dataclass
class Segment:
    start: float
    end: float
    phase_id: int
    phase: str
    scene: Scene
    steps: list[tuple[float, float, int]] = field(default_factory=list)  # MultiBypass140 steps


@dataclass
class Episode:
    """A nuisance that spans time: out-of-body camera or bleeding (MultiBypass140 overlays 12 and 13)."""

    kind: str  # "out_of_body" | "bleeding"
    start: float
    end: float


@dataclass
class VideoPlan:
    video_id: str
    kind: str  # "lecture" | "target"
    procedure: str
    dataset: str  # cholec80 | autolaparo | multibypass140 (the class set)
    source: str  # centre name for targets, "lecture" for lectures
    size: tuple[int, int]  # (H, W) of the encoded video
    fps: int
    render_fps: int
    n_frames: int
    segments: list[Segment]
    episodes: list[Episode]
    style: dict[str, Any]
    seed: int
    scene_start: float = 0.0  # content before this is unlabelled (MultiBypass140 head)
    scene_end: float = 0.0  # content from here on is unlabelled (tail)
    head_tail_scene: Scene | None = None  # what is shown in the unlabelled head and tail

    @property
    def repeat(self) -> int:
        """Encoded frames per rendered picture."""
        return self.fps // self.render_fps

    @property
    def n_pictures(self) -> int:
        return -(-self.n_frames // self.repeat)

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def picture_time(self, index: int) -> float:
        """Content time of rendered picture `index` (frame k shows picture k // repeat)."""
        return index / self.render_fps

    def segment_at(self, t: float) -> Segment | None:
        """The labelled phase segment at content time t, or None in the unlabelled head/tail."""
        for seg in self.segments:
            if seg.start <= t < seg.end:
                return seg
        return None

    def episode_at(self, t: float, kind: str) -> Episode | None:
        for ep in self.episodes:
            if ep.kind == kind and ep.start <= t < ep.end:
                return ep
        return None

    def phase_at(self, t: float) -> int:
        """Phase id at content time t; -1 where unlabelled."""
        seg = self.segment_at(t)
        return -1 if seg is None else seg.phase_id


# ---------------------------------------------------------------------------------------------------
# phase sequences and durations


def sample_sequence(spec: dict[str, Any], rng: np.random.Generator) -> list[int]:
    """A phase order drawn from a pattern of the real label files (see world.yaml `sequences`)."""
    seq = [int(x) for x in spec["order"]]
    for pid, p in (spec.get("skip") or {}).items():
        if int(pid) in seq and len(seq) > 2 and rng.random() < float(p):
            seq.remove(int(pid))
    for sw in spec.get("swap") or []:
        a, b = int(sw["a"]), int(sw["b"])
        if a in seq and b in seq and rng.random() < float(sw["p"]):
            i, j = seq.index(a), seq.index(b)
            seq[i], seq[j] = seq[j], seq[i]
    for alt in spec.get("alternate") or []:
        a, b = int(alt["a"]), int(alt["b"])
        if a in seq and b in seq and seq.index(b) == seq.index(a) + 1 and rng.random() < float(alt["p"]):
            extra = int(rng.integers(1, int(alt.get("max_extra", 1)) + 1))
            i = seq.index(a)
            seq[i : i + 2] = [a, b] * (1 + extra)
    for ins in spec.get("insert") or []:
        pid, before = int(ins["phase"]), int(ins["before"])
        if pid not in seq and rng.random() < float(ins["p"]):
            seq.insert(seq.index(before) if before in seq else len(seq), pid)
    return seq


def snap(t: float | np.ndarray, rate: int) -> float | np.ndarray:
    """Round a time to the render grid as k / rate: the very float that picture k's time is, so a
    boundary and the picture on it never disagree by a rounding error."""
    return np.round(np.asarray(t) * rate) / rate if isinstance(t, np.ndarray) else round(t * rate) / rate


def sample_durations(
    seq: list[int], weights: list[float], total: float, rng: np.random.Generator, rate: int
) -> list[float]:
    """Durations (on the 1/rate grid) summing to `total`, proportional to the phases' typical lengths.

    Repeated phases share their weight; a floor keeps every phase long enough to be seen at 1 fps.
    """
    counts = {pid: seq.count(pid) for pid in seq}
    w = np.array([weights[pid] / counts[pid] for pid in seq], dtype=float)
    w *= rng.lognormal(0.0, 0.35, size=len(seq))
    n = len(seq)
    floor = min(6.0, 0.4 * total / n)
    d = floor + (total - n * floor) * w / w.sum()
    edges = snap(np.concatenate([[0.0], np.cumsum(d)]), rate)
    edges[-1] = snap(total, rate)
    out = np.diff(edges)
    if (out <= 0).any():
        raise HecvlError(f"video too short for {n} phases ({total:.0f} s)")
    return [float(x) for x in out]


# ---------------------------------------------------------------------------------------------------
# scenes


def _tool_on_intervals(start: float, end: float, rng: np.random.Generator, nuis: dict) -> list:
    """Visible stretches of an instrument: it comes and goes as instruments are exchanged."""
    on_mean, off_mean = float(nuis["tool_on_s"]), float(nuis["tool_off_s"])
    out: list[tuple[float, float]] = []
    t = start
    visible = rng.random() < 0.85
    if not visible:
        t += min(rng.exponential(off_mean), 0.5 * (end - start))
    while t < end:
        length = max(1.5, rng.exponential(on_mean))
        out.append((round(t, 3), round(min(end, t + length), 3)))
        t += length + max(0.8, rng.exponential(off_mean))
    return out


_SIDES = {
    "left": lambda r: (-0.15, float(r.uniform(0.15, 0.85))),
    "right": lambda r: (1.15, float(r.uniform(0.15, 0.85))),
    "top": lambda r: (float(r.uniform(0.1, 0.9)), -0.2),
    "top_left": lambda r: (-0.1, -0.1),
    "top_right": lambda r: (1.1, -0.1),
}


def make_scene(recipe: dict[str, Any], start: float, end: float, rng: np.random.Generator) -> Scene:
    """Instantiate a phase's scene recipe: which of its instruments appear, when, and from where."""
    nuis = vocab.world()["nuisance"]
    entries = recipe.get("tools") or []
    chosen = [e for e in entries if rng.random() < float(e[1])]
    if not chosen and entries:
        chosen = [max(entries, key=lambda e: float(e[1]))]
    chosen = chosen[:MAX_TOOLS]
    sides = list(rng.permutation(list(_SIDES)))
    tools = []
    for k, (tool, _p, action) in enumerate(chosen):
        if tool == "trocar":
            entry, anchor = (0.5, 0.5), (float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.3, 0.7)))
        else:
            entry = _SIDES[sides[k % len(sides)]](rng)
            anchor = (float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.72)))
        on = _tool_on_intervals(start, end, rng, nuis)
        tools.append(ToolTrack(tool, action, on, entry, anchor, float(rng.uniform(0, 2 * np.pi))))
    sec = recipe.get("secondary")
    secondary = (str(sec[0]), str(sec[1]), float(sec[2]) * float(rng.uniform(0.7, 1.3))) if sec else None
    return Scene(
        site=recipe["site"],
        target=recipe.get("target", recipe["site"]),
        secondary=secondary,
        structures=list(recipe.get("structures") or []),
        tools=tools,
        smoke=float(recipe.get("smoke", 0.0)),
        camera=float(recipe.get("camera", 1.0)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def _episodes(
    plan_start: float, plan_end: float, rate: float, span: list, rng: np.random.Generator, render_fps: int
) -> list[tuple[float, float]]:
    """Random non-overlapping intervals at `rate` per second, on the render grid."""
    out: list[tuple[float, float]] = []
    n = rng.poisson(rate * max(0.0, plan_end - plan_start))
    for _ in range(n):
        length = float(rng.uniform(*span))
        s = float(rng.uniform(plan_start, max(plan_start, plan_end - length)))
        s, e = snap(s, render_fps), snap(s + length, render_fps)
        if e > s and all(e <= a or s >= b for a, b in out):
            out.append((s, e))
    return sorted(out)


def plan_video(
    video_id: str,
    kind: str,
    procedure: str,
    sequence: str,
    source: str,
    style: dict[str, Any],
    duration_s: int,
    seed: int,
) -> VideoPlan:
    """Plan one video: phase segments with their scenes, nuisance episodes, unlabelled head and tail.

    `style` carries the camera's look and its size/fps (a target centre or a drawn lecture style).
    """
    w = vocab.world()
    proc = w["procedures"][procedure]
    spec = w["sequences"][sequence]
    rng = rng_for(seed, "plan", video_id)
    fps, render_fps = int(style["fps"]), int(style["render_fps"])
    if fps % render_fps:
        raise HecvlError(f"fps {fps} is not a multiple of render_fps {render_fps} for {source}")
    repeat = fps // render_fps
    n_frames = int(duration_s) * fps + int(rng.integers(0, repeat))  # real videos rarely end on a second
    total = n_frames / fps
    head = float(rng.uniform(*spec["head"])) * total if spec.get("head") else 0.0
    tail = float(rng.uniform(*spec["tail"])) * total if spec.get("tail") else 0.0
    n_pictures = -(-n_frames // repeat)
    first_k = round(head * render_fps)
    last_k = (
        round((total - tail) * render_fps) if tail else n_pictures
    )  # pictures k with first_k <= k < last_k
    scene_start, scene_end = first_k / render_fps, last_k / render_fps
    seq = sample_sequence(spec, rng)
    durs = sample_durations(seq, spec["weights"], scene_end - scene_start, rng, render_fps)
    edges = [first_k + round(x * render_fps) for x in np.cumsum([0.0, *durs])]
    edges[-1] = last_k
    segments: list[Segment] = []
    for pid, k0, k1 in zip(seq, edges[:-1], edges[1:], strict=True):
        phase = proc["phases"][pid]
        start, end = k0 / render_fps, k1 / render_fps
        seg = Segment(start, end, pid, phase["name"], make_scene(phase["scene"], start, end, rng))
        if "steps" in proc:
            seg.steps = _steps(proc["steps"][phase["name"]], start, end, rng, render_fps)
        segments.append(seg)

    nuis = w["nuisance"]
    oob: list[tuple[float, float]] = []
    first = segments[0]
    if rng.random() < float(proc["phases"][first.phase_id]["scene"].get("out_of_body", 0.0)):
        length = min(float(rng.uniform(*nuis["out_of_body_s"])), 0.5 * (first.end - first.start))
        end = snap(first.start + length, render_fps)
        if end > first.start:
            oob.append((first.start, end))
    if scene_start > 0 and rng.random() < 0.5:
        oob.append((0.0, scene_start))
    if scene_end < total and rng.random() < 0.6:
        oob.append((scene_end, total))
    mid = _episodes(
        first.end,
        segments[-1].start,
        float(style.get("oob_rate", 0.0)),
        nuis["out_of_body_s"],
        rng,
        render_fps,
    )
    oob += [iv for iv in mid if all(iv[1] <= a or iv[0] >= b for a, b in oob)]
    bleed = _episodes(
        scene_start, scene_end, float(style.get("bleed_rate", 0.0)), nuis["bleed_s"], rng, render_fps
    )
    bleed = [iv for iv in bleed if all(iv[1] <= a or iv[0] >= b for a, b in oob)]
    episodes = [Episode("out_of_body", a, b) for a, b in sorted(oob)] + [
        Episode("bleeding", a, b) for a, b in bleed
    ]

    head_tail = None
    if scene_start > 0 or scene_end < total:
        head_tail = make_scene(proc["phases"][0]["scene"], 0.0, total, rng)
    return VideoPlan(
        video_id=video_id,
        kind=kind,
        procedure=procedure,
        dataset=proc["dataset"],
        source=source,
        size=(int(style["size"][0]), int(style["size"][1])),
        fps=fps,
        render_fps=render_fps,
        n_frames=n_frames,
        segments=segments,
        episodes=episodes,
        style=style,
        seed=int(rng.integers(0, 2**31 - 1)),
        scene_start=scene_start,
        scene_end=scene_end,
        head_tail_scene=head_tail,
    )


def _steps(step_ids: list[int], start: float, end: float, rng: np.random.Generator, render_fps: int) -> list:
    """Split a phase into its MultiBypass140 steps (sometimes one is skipped, or a null step slips in)."""
    ids = [int(s) for s in step_ids if len(step_ids) == 1 or rng.random() > 0.15] or [int(step_ids[0])]
    if rng.random() < 0.15:
        ids.insert(int(rng.integers(0, len(ids) + 1)), 0)  # s0_null_step
    w = rng.dirichlet(np.full(len(ids), 2.0))
    edges = snap(start + np.concatenate([[0.0], np.cumsum(w)]) * (end - start), render_fps)
    edges[0], edges[-1] = start, end
    return [(float(a), float(b), i) for a, b, i in zip(edges[:-1], edges[1:], ids, strict=True) if b > a]


def plan_to_dict(plan: VideoPlan) -> dict[str, Any]:
    """The manifest entry of a video: phases, scene recipes, episodes, style (JSON-friendly, rounded)."""

    def scene(s: Scene | None) -> dict[str, Any] | None:
        if s is None:
            return None
        return {
            "site": s.site,
            "target": s.target,
            "secondary": [*list(s.secondary[:2]), round(s.secondary[2], 3)] if s.secondary else None,
            "structures": s.structures,
            "smoke": s.smoke,
            "tools": [
                {"tool": t.tool, "action": t.action, "on": [[round(a, 3), round(b, 3)] for a, b in t.on]}
                for t in s.tools
            ],
        }

    return {
        "id": plan.video_id,
        "kind": plan.kind,
        "procedure": plan.procedure,
        "dataset": plan.dataset,
        "source": plan.source,
        "height": plan.size[0],
        "width": plan.size[1],
        "fps": plan.fps,
        "render_fps": plan.render_fps,
        "num_frames": plan.n_frames,
        "duration_s": round(plan.duration, 4),
        "labelled": [round(plan.scene_start, 3), round(plan.scene_end, 3)],
        "segments": [
            {
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "phase_id": s.phase_id,
                "phase": s.phase,
                "scene": scene(s.scene),
                **({"steps": [[round(a, 3), round(b, 3), i] for a, b, i in s.steps]} if s.steps else {}),
            }
            for s in plan.segments
        ],
        "episodes": [
            {"kind": e.kind, "start": round(e.start, 3), "end": round(e.end, 3)} for e in plan.episodes
        ],
        "style": {k: v for k, v in plan.style.items() if k not in ("size", "fps", "render_fps")},
        "seed": plan.seed,
    }
