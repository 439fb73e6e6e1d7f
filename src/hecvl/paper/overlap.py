"""Do the class names occur verbatim in the training texts? What a class-name prompt result means.

A zero-shot result with `class_name` prompts ("clipping and cutting") is only zero-shot in a weak sense
when the same words were training texts: then the model has seen the exact string paired with video of
that phase, and the prompt matches a memorised text rather than a description. The count is reported
beside every class-name prompt row (the ablation notes and results/paper/findings.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hecvl.evaluation.prompts import load_prompts


@dataclass(frozen=True)
class Overlap:
    dataset: str
    classes: int
    found: tuple[str, ...]  # plain class names that occur verbatim in at least one training text
    texts: int  # training texts searched

    def sentence(self, title: str) -> str:
        names = f" ({', '.join(self.found)})" if self.found else ""
        return f"{title} {len(self.found)} of {self.classes}{names}"


def _plain(text: str) -> str:
    return " ".join(str(text).lower().replace("_", " ").split())


def class_name_overlap(dataset: str, texts: Iterable[str], left_out: Iterable[str] = ()) -> Overlap:
    """Which of `dataset`'s plain class names (the `class_name` prompts) occur in `texts`, as whole
    words, ignoring case and the underscores of names like gastric_pouch_creation. Classes the protocol
    leaves out (`left_out`, e.g. MultiBypass140's other_intervention) are never scored: not counted."""
    prompts = load_prompts(dataset, "class_name")
    corpus = "\n".join(_plain(t) for t in texts)
    n = corpus.count("\n") + 1 if corpus else 0
    skip = {_plain(c) for c in left_out}
    names = [_plain(t[0]) for t in prompts.texts]
    names = [name for name in names if name not in skip]
    found = tuple(name for name in names if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", corpus))
    return Overlap(dataset, len(names), found, n)


def overlaps(datasets: Sequence[str], texts: Sequence[str],
             left_out: Mapping[str, Sequence[str]] | None = None) -> list[Overlap]:
    """One Overlap per dataset; `left_out`: {dataset: the classes its protocol does not score}."""
    return [class_name_overlap(d, texts, (left_out or {}).get(d, ())) for d in datasets]
