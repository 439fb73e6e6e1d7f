"""Optional derivation of keystep titles / abstracts: summariser registry, centroid rule, flags."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pairing_helpers import ABSTRACT, make_lecture, run_pair

from hecvl.config import coerce_params
from hecvl.config.pairing import DeriveRules
from hecvl.errors import HecvlError
from hecvl.pairing.derive import (
    SUMMARISERS,
    candidate_sentences,
    central_indices,
    get_summariser,
    register_summariser,
)
from hecvl.pairing.manifest import read_manifest


def first_sentences(rules, params):
    """A plain summariser factory importable as `test_pairing_derive:first_sentences`."""
    return lambda texts, n: " ".join(candidate_sentences(texts)[:n])


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch):
    monkeypatch.setenv("HECVL_TRACKING", "off")


def test_central_indices_pick_the_majority_topic_in_order():
    emb = np.array([[1.0, 0.1, 0], [0, 0, 1.0], [0.9, 0.0, 0.1], [1.0, -0.1, 0.0], [0, 1.0, 0]])
    assert central_indices(emb, 1) in ([0], [2], [3])
    two = central_indices(emb, 2)
    assert two == sorted(two) and 1 not in two and 4 not in two
    assert central_indices(emb, 10) == [0, 1, 2, 3, 4]


def test_candidate_sentences_split_and_dedupe():
    texts = ["We clip the duct. Then we cut.", "We clip the duct.", "as you can see"]
    assert candidate_sentences(texts) == ["We clip the duct.", "Then we cut.", "as you can see"]


def test_registry_by_name_and_by_import_path():
    with pytest.raises(HecvlError, match=r"unknown pairing\.derive\.summariser"):
        get_summariser(DeriveRules(summariser="nope"))
    with pytest.raises(HecvlError, match="cannot be imported"):
        get_summariser(DeriveRules(summariser="no_such_module:fn"))
    fn = get_summariser(DeriveRules(summariser="test_pairing_derive:first_sentences"))
    assert fn(["One. Two.", "Three."], 2) == "One. Two."

    @register_summariser("last")
    def last(rules, params):
        return lambda texts, n: texts[-1]

    try:
        assert get_summariser(DeriveRules(summariser="last"))(["a", "b"], 1) == "b"
    finally:
        del SUMMARISERS["last"]
    assert "centroid" in SUMMARISERS


def test_centroid_summariser_with_the_project_text_encoder():
    summarise = get_summariser(DeriveRules(), coerce_params({"model": {"text": {"encoder": "minilm"}}}))
    texts = [
        "The clip applier places a clip on the cystic duct.",
        "A second clip is placed on the cystic artery.",
        "My favourite football team lost on Sunday.",
        "We put clips on the duct and on the artery before cutting.",
    ]
    picked = summarise(texts, 1)
    assert picked in texts[:2] + texts[3:]
    two = summarise(texts, 2).split(". ")
    assert len(two) == 2 and "football" not in " ".join(two)
    assert summarise(texts[:1], 3) == texts[0]  # fewer sentences than asked: all of them


NARRATIONS = [
    (1.0, 5.0, "We begin by dissecting the peritoneum."),
    (6.0, 10.0, "The hook dissects the triangle of calot."),
    (70.0, 74.0, "Clips are placed on the cystic duct."),
    (80.0, 84.0, "The scissors cut between the clips."),
]


def _derive_corpus(root):
    make_lecture(root, "plain", 90.0, NARRATIONS)  # no keysteps, no abstract
    make_lecture(
        root, "untitled", 12.0, NARRATIONS[:2], [(0.0, 6.0, "", ""), (6.0, 12.0, "Dissection", "")], ABSTRACT
    )
    return root


def test_derivation_is_off_by_default(tmp_path):
    corpus = _derive_corpus(tmp_path / "corpus")
    assert run_pair(corpus, tmp_path / "off") == 0
    phases = read_manifest(tmp_path / "off", "phase").to_pylist()
    assert [p["pair_id"] for p in phases] == ["untitled:k001"]  # the untitled keystep is dropped
    assert [v["pair_id"] for v in read_manifest(tmp_path / "off", "video").to_pylist()] == ["untitled:v"]
    stats = json.loads((tmp_path / "off" / "stats.json").read_text())
    assert stats["levels"]["phase"]["dropped"] == {"empty_text": 1}
    assert stats["levels"]["video"]["dropped"] == {"no_abstract": 1}


def test_derivation_fills_and_marks(tmp_path):
    corpus = _derive_corpus(tmp_path / "corpus")
    params = (
        "pairing:\n  derive:\n    summariser: test_pairing_derive:first_sentences\n    video_sentences: 2\n"
    )
    assert run_pair(corpus, tmp_path / "on", params, "--derive") == 0
    phases = {p["pair_id"]: p for p in read_manifest(tmp_path / "on", "phase").to_pylist()}
    # "plain" (90 s) has no keysteps: two derived segments of 45 s
    assert (phases["plain:d000"]["start"], phases["plain:d000"]["end"]) == (0.0, 45.0)
    assert phases["plain:d000"]["derived"] and phases["plain:d000"]["derived_span"]
    assert phases["plain:d000"]["text"] == "We begin by dissecting the peritoneum."
    assert phases["plain:d001"]["text"] == "Clips are placed on the cystic duct."
    assert phases["plain:d001"]["clip_ids"] == ["plain:n00002", "plain:n00003"]
    # "untitled": the empty keystep gets its narration's text; the titled one is as written
    assert phases["untitled:k000"]["derived"] and not phases["untitled:k000"]["derived_span"]
    assert phases["untitled:k000"]["text"] == "We begin by dissecting the peritoneum."
    assert not phases["untitled:k001"]["derived"] and phases["untitled:k001"]["text"] == "Dissection"
    videos = {v["pair_id"]: v for v in read_manifest(tmp_path / "on", "video").to_pylist()}
    assert videos["plain:v"]["derived"] and videos["plain:v"]["phase_ids"] == ["plain:d000", "plain:d001"]
    assert (
        videos["plain:v"]["text"]
        == "We begin by dissecting the peritoneum. The hook dissects the triangle of calot."
    )
    assert not videos["untitled:v"]["derived"] and videos["untitled:v"]["text"] == ABSTRACT
    stats = json.loads((tmp_path / "on" / "stats.json").read_text())
    assert stats["levels"]["phase"]["derived"] == 3 and stats["levels"]["video"]["derived"] == 1
    assert stats["levels"]["phase"]["input"] == 4 and stats["levels"]["phase"]["dropped"] == {}
    assert stats["rules"]["derive"]["enabled"] is True
