"""Zero-shot prompts: one versioned YAML file per target dataset, three ways to turn a class into text.

Why data files: the protocol's prompts move results by up to 15 points (docs/method.md §8), so they
must be explicit, reviewable and reported with every table (by file hash). Styles:
- `decomposed`: one sentence per class spelling out instruments, anatomy and action (protocol §7);
- `class_name`: the plain class name ("clipping and cutting");
- `ensemble`: every template filled with the plain class name; the caller averages their embeddings.
StrasBypass70 and BernBypass70 share the MultiBypass140 file. A path to a YAML file of the same
layout may be given instead of a dataset name (a user's own prompts). A `generic` dataset's prompts
come from its own classes.yaml (`generic_prompts`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hecvl.config import STYLES
from hecvl.errors import HecvlError

log = logging.getLogger(__name__)

PROMPT_DIR = Path(__file__).parent / "prompts"
# dataset name or label format -> prompt file stem
FILES = {
    "cholec80": "cholec80",
    "autolaparo": "autolaparo",
    "multibypass140": "multibypass140",
    "strasbypass70": "multibypass140",
    "bernbypass70": "multibypass140",
}


# The `ensemble` style of a generic dataset: templates that assume no particular operation.
GENERIC_TEMPLATES: tuple[str, ...] = (
    "a surgical video frame of {}.",
    "an endoscopic view of the surgeon performing {}.",
    "surgical instruments and anatomy during {}.",
)


@dataclass(frozen=True)
class PromptSet:
    """The texts for each class (id order); one text per class except in the `ensemble` style."""

    dataset: str
    style: str
    classes: list[str]  # class names as published, id order
    texts: list[list[str]]  # texts[class_id] = the prompts whose embeddings are averaged for that class
    source: Path
    sha256: str  # of the prompt file's bytes, to report beside results
    version: int

    def flat(self) -> list[str]:
        """All texts in class order (what an encoder embeds in one batch)."""
        return [t for texts in self.texts for t in texts]


def prompt_file(dataset: str | Path) -> Path:
    """The prompt file for a dataset name or format, or `dataset` itself if it is a YAML file."""
    path = Path(dataset)
    if path.suffix in {".yaml", ".yml"}:
        if not path.is_file():
            raise HecvlError("prompt file not found", path)
        return path
    key = str(dataset).lower()
    if key not in FILES:
        raise HecvlError(f"no prompt file for dataset {dataset!r} (known: {', '.join(sorted(FILES))})")
    return PROMPT_DIR / f"{FILES[key]}.yaml"


def load_prompts(dataset: str | Path, style: str = "decomposed") -> PromptSet:
    """Read and validate a dataset's prompt file and return the texts of one style."""
    if style not in STYLES:
        raise HecvlError(f"unknown prompt style {style!r} (choose from {', '.join(STYLES)})")
    path = prompt_file(dataset)
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise HecvlError(f"not valid YAML: {exc}", path) from None
    classes, templates = _validate(data, path)
    if style == "decomposed":
        texts = [[c["decomposed"]] for c in classes]
    elif style == "class_name":
        texts = [[c["label"]] for c in classes]
    else:
        texts = [[t.format(c["label"]) for t in templates] for c in classes]
    return PromptSet(
        dataset=str(data["dataset"]),
        style=style,
        classes=[c["name"] for c in classes],
        texts=texts,
        source=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        version=int(data.get("version", 0)),
    )


def _validate(data: Any, path: Path) -> tuple[list[dict[str, str]], list[str]]:
    if not isinstance(data, dict) or "classes" not in data or "dataset" not in data:
        raise HecvlError("a prompt file needs `dataset`, `classes` and `templates`", path)
    classes = data["classes"]
    if not isinstance(classes, list) or not classes:
        raise HecvlError("`classes` must be a non-empty list", path)
    out = []
    for i, entry in enumerate(classes):
        if not isinstance(entry, dict):
            raise HecvlError(f"class entry {i} is not a mapping", path)
        if entry.get("id") != i:
            raise HecvlError(
                f"class entry {i} has id {entry.get('id')!r}: ids must be 0, 1, ... in order", path
            )
        for key in ("name", "label", "decomposed"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise HecvlError(f"class {i} lacks a non-empty `{key}`", path)
        out.append({k: " ".join(entry[k].split()) for k in ("name", "label", "decomposed")})
    templates = data.get("templates")
    if not isinstance(templates, list) or not templates:
        raise HecvlError("`templates` must be a non-empty list", path)
    for t in templates:
        rest = t.replace("{}", "") if isinstance(t, str) else ""
        if not isinstance(t, str) or t.count("{}") != 1 or "{" in rest or "}" in rest:
            raise HecvlError(f"template {t!r} must contain exactly one {{}} and no other braces", path)
    return out, templates


def check_class_names(prompts: PromptSet, classes: Sequence[str]) -> None:
    """Refuse prompts written for another class list: a shifted list silently swaps every class."""
    if list(prompts.classes) != list(classes):
        raise HecvlError(
            f"prompt classes {prompts.classes} do not match the dataset's classes {list(classes)}",
            prompts.source,
        )


def truncated_prompts(texts: Sequence[str], tokenizer: Any, max_length: int) -> list[tuple[str, int]]:
    """Texts whose token count (special tokens included) exceeds `max_length`, with that count.

    `tokenizer` is a Hugging Face tokenizer (callable returning `input_ids`). A warning is logged for
    each: a truncated prompt loses the words at its end, which are often the anatomy.
    """
    ids = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    long = [(text, len(tok)) for text, tok in zip(texts, ids, strict=True) if len(tok) > max_length]
    for text, n in long:
        log.warning("prompt has %d tokens and will be truncated to %d: %r", n, max_length, text)
    return long


def generic_prompts(table: Any, style: str, dataset: str) -> PromptSet:
    """The prompts of a generic dataset from its classes.yaml (a `generic.ClassTable`).

    `decomposed`: the class's own prompts (several are averaged), else its name; `class_name`: the name;
    `ensemble`: GENERIC_TEMPLATES filled with the name. The name is read with underscores as spaces.
    """
    from hecvl.datasets.generic import class_label

    if style not in STYLES:
        raise HecvlError(f"unknown prompt style {style!r} (choose from {', '.join(STYLES)})")
    labels = [class_label(c) for c in table.classes]
    if style == "decomposed":
        own = [table.prompts.get(c) for c in table.classes]
        texts = [list(mine or [label]) for mine, label in zip(own, labels, strict=True)]
    elif style == "class_name":
        texts = [[label] for label in labels]
    else:
        texts = [[t.format(label) for t in GENERIC_TEMPLATES] for label in labels]
    return PromptSet(dataset=dataset, style=style, classes=list(table.classes), texts=texts,
                     source=Path(table.path), sha256=table.sha256, version=0)


def prompts_for(dataset: Any, style: str, prompt_file: str | Path | None = None) -> PromptSet:
    """The prompts of a TargetDataset (its own file, else its format's file, or `prompt_file`; a generic
    dataset: its classes.yaml), checked against the dataset's class list."""
    if prompt_file is None and getattr(dataset, "fmt", None) == "generic":
        prompts = generic_prompts(dataset.class_table, style, dataset.name)
    else:
        prompts = load_prompts(prompt_file or (dataset.name if dataset.name in FILES else dataset.fmt), style)
    check_class_names(prompts, dataset.classes)
    return prompts
