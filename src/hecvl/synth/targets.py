"""The target datasets' label files, byte for byte in their published formats (docs/method.md §4).

- Cholec80: `phase_annotations/videoNN-phase.txt`, header `Frame<TAB>Phase`, one row per video frame,
  CamelCase names; `tool_annotations/videoNN-tool.txt`, one row per second (Frame = fps * i) with one
  row fewer than the seconds that have a frame, as in the published files.
- AutoLaparo: `labels/label_NN.txt`, header `Frame  Phase` (two spaces), rows `0001<TAB>3` (1-based second,
  phase 1..7).
- MultiBypass140: `labels/<centre>/labels_by70/<ID>.mp4.json` with millisecond `phases` (classes 0-11, plus
  overlays 12 out_of_body and 13 severe_index) and `steps`; `tables/phase.csv` and `tables/step.csv`.
Labels are read off the plan at each frame's content time, so they agree with the pixels by construction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hecvl.io import write_json, write_text
from hecvl.synth import instruments, vocab
from hecvl.synth.world import VideoPlan

CHOLEC80_TOOLS = {
    "Grasper": "grasper",
    "Bipolar": "bipolar",
    "Hook": "hook",
    "Scissors": "scissors",
    "Clipper": "clip_applier",
    "Irrigator": "irrigator",
    "SpecimenBag": "specimen_bag",
}
MBP_CENTRE_DIR = {"strasbourg": "strasbourg", "bern": "bern"}


def picture_phases(plan: VideoPlan) -> np.ndarray:
    """Phase id of every rendered picture (-1 where unlabelled)."""
    return np.array([plan.phase_at(plan.picture_time(i)) for i in range(plan.n_pictures)], dtype=np.int64)


def frame_phases(plan: VideoPlan) -> np.ndarray:
    """Phase id of every encoded frame: frame k shows picture k // repeat."""
    return np.repeat(picture_phases(plan), plan.repeat)[: plan.n_frames]


def seconds_with_frames(plan: VideoPlan) -> int:
    """How many whole seconds have a frame: ceil(num_frames / fps) (the 1 fps convention)."""
    return -(-plan.n_frames // plan.fps)


def second_phases(plan: VideoPlan) -> np.ndarray:
    """Phase id at second i (the frame round(i * fps) shows content time i exactly)."""
    return np.array([plan.phase_at(float(i)) for i in range(seconds_with_frames(plan))], dtype=np.int64)


def visible_tools(plan: VideoPlan, t: float) -> set[str]:
    """Instruments in view at content time t (none while the camera is out of the body)."""
    if plan.episode_at(t, "out_of_body") is not None:
        return set()
    seg = plan.segment_at(t)
    scene = seg.scene if seg is not None else plan.head_tail_scene
    if scene is None:
        return set()
    return {tr.tool for tr in scene.tools if instruments.visible(tr, t) is not None}


def write_cholec80(root: Path, plan: VideoPlan) -> None:
    names = vocab.procedure_phases(plan.procedure)
    phases = frame_phases(plan)
    if (phases < 0).any():
        raise ValueError(f"{plan.video_id}: Cholec80 labels every frame")
    lines = ["Frame\tPhase\n"] + [f"{k}\t{names[p]}\n" for k, p in enumerate(phases.tolist())]
    write_text(root / "phase_annotations" / f"{plan.video_id}-phase.txt", "".join(lines))
    rows = ["Frame\t" + "\t".join(CHOLEC80_TOOLS) + "\n"]
    for i in range(seconds_with_frames(plan) - 1):
        seen = visible_tools(plan, float(i))
        rows.append(
            "\t".join([str(plan.fps * i)] + ["1" if t in seen else "0" for t in CHOLEC80_TOOLS.values()])
            + "\n"
        )
    write_text(root / "tool_annotations" / f"{plan.video_id}-tool.txt", "".join(rows))


def write_autolaparo(root: Path, plan: VideoPlan) -> None:
    phases = second_phases(plan)
    if (phases < 0).any():
        raise ValueError(f"{plan.video_id}: AutoLaparo labels every second")
    lines = ["Frame  Phase\n"] + [f"{i + 1:04d}\t{p + 1}\n" for i, p in enumerate(phases.tolist())]
    write_text(root / "labels" / f"label_{plan.video_id}.txt", "".join(lines))


def _ms(t: float) -> int:
    return round(t * 1000)


def multibypass_json(plan: VideoPlan, severe_index: bool) -> dict:
    """The label JSON of one MultiBypass140 video: phases with overlays (sorted by start) and steps."""
    proc = vocab.world()["procedures"][plan.procedure]
    overlays = proc["overlays"]
    step_names = proc["step_names"]
    items = [(s.start, 0, s.end, s.phase, s.phase_id) for s in plan.segments]
    for ep in plan.episodes:
        if ep.kind == "out_of_body":
            items.append((ep.start, 1, ep.end, "out_of_body", overlays["out_of_body"]))
        elif ep.kind == "bleeding" and severe_index:
            items.append((ep.start, 1, ep.end, "severe_index", overlays["severe_index"]))
    phases = [
        {"start": _ms(a), "end": _ms(min(b, plan.duration)), "label_name": name, "label_id": int(i)}
        for a, _, b, name, i in sorted(items, key=lambda x: (x[0], x[1]))
    ]
    steps = [
        {"start": _ms(a), "end": _ms(b), "label_name": step_names[i], "label_id": int(i)}
        for seg in plan.segments
        for a, b, i in seg.steps
    ]
    return {"phases": phases, "steps": steps}


def write_multibypass(root: Path, plan: VideoPlan, centre: str, severe_index: bool) -> None:
    obj = multibypass_json(plan, severe_index)
    path = root / "labels" / MBP_CENTRE_DIR[centre] / "labels_by70" / f"{plan.video_id}.mp4.json"
    write_text(path, json.dumps(obj))  # published files: default separators, no trailing newline


def write_multibypass_tables(root: Path) -> None:
    proc = vocab.world()["procedures"]["gastric_bypass"]
    phases = [p["name"] for p in proc["phases"]]
    phases += sorted(proc["overlays"], key=lambda k: proc["overlays"][k])
    write_text(
        root / "tables" / "phase.csv", "id, name\n" + "\n".join(f"{i}, {n}" for i, n in enumerate(phases))
    )
    steps = proc["step_names"]
    write_text(
        root / "tables" / "step.csv", "id, name\n" + "\n".join(f"{i}, {n}" for i, n in enumerate(steps))
    )


def write_splits(path: Path, splits: dict[str, list[str]]) -> None:
    """The splits file {split: [video ids]} (train, val, test), as hecvl.datasets.splits reads it."""
    write_json(path, {name: list(ids) for name, ids in splits.items()})
