"""The lectures' words: narration relevance as configured, ASR noise, paraphrased keysteps, abstracts."""

from __future__ import annotations

import numpy as np
import pytest

from hecvl.synth import style, vocab
from hecvl.synth.language import Narrator, mentions, scene_terms
from hecvl.synth.world import plan_video


def _lecture(procedure: str = "cholecystectomy", seed: int = 0, duration: int = 600):
    look = style.lecture_style(np.random.default_rng(seed))
    return plan_video(
        f"lec{seed}", "lecture", procedure, f"lecture_{procedure}", "lecture", look, duration, seed
    )


def _visible_terms(plan, sentence):
    seg = plan.segment_at(0.5 * (sentence.start + sentence.end))
    return scene_terms(seg.scene) if seg is not None else (set(), set())


@pytest.mark.parametrize("relevance", [0.2, 0.5, 0.8])
def test_narration_relevance_follows_the_setting(relevance):
    kinds, named = [], []
    for seed, proc in enumerate(["cholecystectomy", "hysterectomy", "gastric_bypass"]):
        plan = _lecture(proc, seed)
        sentences = Narrator(plan, relevance, seed).narration()
        kinds += [s.kind for s in sentences]
        named += [mentions(s.text, *_visible_terms(plan, s)) for s in sentences]
    visible = np.mean([k == "visible" for k in kinds])
    assert visible == pytest.approx(relevance, abs=0.07)
    assert np.mean(named) == pytest.approx(relevance, abs=0.1)


def test_visible_sentences_name_the_scene_and_the_rest_mostly_do_not():
    plan = _lecture("gastric_bypass", 3)
    sentences = Narrator(plan, 0.5, 3).narration()
    vis = [mentions(s.text, *_visible_terms(plan, s)) for s in sentences if s.kind == "visible"]
    other = [mentions(s.text, *_visible_terms(plan, s)) for s in sentences if s.kind != "visible"]
    assert np.mean(vis) > 0.85  # ASR errors garble a few names
    assert np.mean(other) < 0.05
    assert {"history", "aside", "talk", "ahead", "back"} <= {s.kind for s in sentences}


def test_narration_timing_and_determinism():
    plan = _lecture(seed=4, duration=300)
    a = Narrator(plan, 0.5, 9).narration()
    b = Narrator(plan, 0.5, 9).narration()
    c = Narrator(plan, 0.5, 10).narration()
    assert [s.text for s in a] == [s.text for s in b] and [s.text for s in a] != [s.text for s in c]
    starts = np.array([s.start for s in a])
    assert np.all(np.diff(starts) > 0) and all(0 <= s.start < s.end <= plan.duration for s in a)
    assert 2.0 < np.mean(np.diff(starts)) < 8.0  # a sentence every few seconds


def test_asr_errors_and_transcript_styles():
    lang = vocab.language()
    misheard = {alt for alts in lang["asr"]["confusions"].values() for alt in alts} - set(
        lang["asr"]["confusions"]
    )
    texts, styles = [], set()
    for seed in range(8):
        narrator = Narrator(_lecture("cholecystectomy", seed, 300), 0.8, seed)
        styles.add(narrator.punctuated)
        texts += [s.text for s in narrator.narration()]
    joined = " ".join(t.lower() for t in texts)
    assert sum(f" {m} " in f" {joined} " for m in misheard) >= 3
    assert styles == {True, False}
    assert any(t.endswith(".") and t[0].isupper() for t in texts)
    assert any(not t.endswith(".") and t == t.lower() for t in texts)


def test_keysteps_paraphrase_the_phases_and_abstract_lists_them():
    seen_titles, class_like = set(), 0
    for seed in range(6):
        plan = _lecture("hysterectomy", seed, 300)
        narrator = Narrator(plan, 0.5, seed)
        rows, with_text = narrator.keysteps()
        assert len(rows) == len(plan.segments)
        options = vocab.language()["keysteps"]["hysterectomy"]
        for row, seg in zip(rows, plan.segments, strict=True):
            assert row["step"] in options[seg.phase_id]
            assert (row["start"], row["end"]) == (round(seg.start, 2), round(seg.end, 2))
            seen_titles.add(row["step"])
            class_like += row["step"] == options[seg.phase_id][0]
            if with_text:
                assert mentions(row["text"], *scene_terms(seg.scene))
        abstract = narrator.abstract(rows)
        assert narrator.title in abstract
        assert all(r["step"][1:] in abstract for r in rows)
    assert 0 < class_like < len(seen_titles) * 6  # sometimes the class name, mostly a paraphrase
    assert len(seen_titles) > 10
