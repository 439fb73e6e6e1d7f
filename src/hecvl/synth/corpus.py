"""One lecture folder of the corpus: narration.csv, keysteps.csv, abstract.txt, meta.json (video.mp4 beside).

The format is the project's lecture corpus format (README, "Lecture corpus format"): narration
`start,end,text` in seconds, keysteps `start,end,step[,text]`, a plain-text abstract and optional metadata.
Ground truth (phases, which sentences describe the picture) goes to the world's manifest, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from hecvl.io import write_csv, write_json, write_text
from hecvl.synth.language import Narrator
from hecvl.synth.world import VideoPlan


def write_lecture_text(folder: Path, plan: VideoPlan, relevance: float, seed: int) -> dict[str, Any]:
    """Write the lecture's text files; returns its manifest entry for the language side."""
    narrator = Narrator(plan, relevance, seed)
    sentences = narrator.narration()
    keysteps, with_text = narrator.keysteps()
    abstract = narrator.abstract(keysteps)
    write_csv(
        folder / "narration.csv",
        pd.DataFrame(
            {
                "start": [s.start for s in sentences],
                "end": [s.end for s in sentences],
                "text": [s.text for s in sentences],
            }
        ),
    )
    columns = ["start", "end", "step"] + (["text"] if with_text else [])
    write_csv(folder / "keysteps.csv", pd.DataFrame(keysteps, columns=columns))
    write_text(folder / "abstract.txt", abstract + "\n")
    write_json(
        folder / "meta.json",
        {
            "procedure": plan.procedure,
            "title": narrator.title,
            "duration_s": round(plan.duration, 3),
            "source": "hecvl synthetic world",
        },
    )
    kinds = [s.kind for s in sentences]
    return {
        "narration_relevance": relevance,
        "narration_kinds": kinds,
        "visible_fraction": round(kinds.count("visible") / max(len(kinds), 1), 4),
        "punctuated": narrator.punctuated,
        "keystep_text": with_text,
        "title": narrator.title,
    }
