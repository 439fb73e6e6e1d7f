"""Do the class names occur verbatim in the training texts? What a class-name prompt result means.

A zero-shot result with `class_name` prompts ("clipping and cutting") is only zero-shot in a weak sense
when the same words were training texts: then the model has seen the exact string paired with video of
that phase, and the prompt matches a memorised text rather than a description. The count is reported
beside every class-name prompt row (the ablation notes and results/paper/findings.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
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


def class_name_overlap(dataset: str, texts: Iterable[str]) -> Overlap:
    """Which of `dataset`'s plain class names (the `class_name` prompts) occur in `texts`, as whole
    words, ignoring case and the underscores of names like gastric_pouch_creation."""
    prompts = load_prompts(dataset, "class_name")
    corpus = "\n".join(" ".join(str(t).lower().replace("_", " ").split()) for t in texts)
    n = corpus.count("\n") + 1 if corpus else 0
    found = []
    for texts_of_class in prompts.texts:
        name = " ".join(texts_of_class[0].lower().replace("_", " ").split())
        if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", corpus):
            found.append(name)
    return Overlap(dataset, len(prompts.texts), tuple(found), n)


def overlaps(datasets: Sequence[str], texts: Sequence[str]) -> list[Overlap]:
    return [class_name_overlap(d, texts) for d in datasets]
