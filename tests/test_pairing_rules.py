"""Pairing rules: params parsing, text limits, segment repair, frame plans, clip windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hecvl.config import load_params, validate_section
from hecvl.config.pairing import PairingRules
from hecvl.errors import HecvlError
from hecvl.pairing.clips import clip_pairs, extend_window
from hecvl.pairing.phases import derived_segments, phase_pairs, phase_text
from hecvl.pairing.sampling import clamp_times, clip_span, clip_times, segment_times
from hecvl.pairing.spans import clean_segments
from hecvl.pairing.stats import Tally
from hecvl.pairing.text import apply_text_limits, clean_text, split_sentences, truncate_words


def test_defaults_are_the_papers_values(tmp_path):
    rules = PairingRules()
    assert (rules.clip.min_s, rules.clip.max_s, rules.clip.fps, rules.clip.frames) == (3.0, 5.0, 2.0, 4)
    assert (rules.phase.frames, rules.video.frames) == (16, 64)
    assert rules.derive.enabled is False


def test_project_params_yaml_parses():
    from pathlib import Path

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    rules = params.pairing
    assert isinstance(rules, PairingRules)
    assert rules.clip.frames == 4 and rules.phase.frames == 16 and rules.video.frames == 64
    assert rules == PairingRules()  # params.yaml has no pairing section: the defaults are the study's


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"clip": {"min_sec": 3}}, r"pairing\.clip\.min_sec is not a setting$"),
        ({"transcript": {"overlap": "merge"}},
         r"pairing\.transcript\.overlap must be one of 'clip' or 'keep', got 'merge'$"),
        ({"clip": {"short_window": "pad"}}, r"pairing\.clip\.short_window must be one of .*, got 'pad'$"),
        ({"clip": {"min_s": 6.0}}, r"pairing\.clip: max_s \(5\.0\) is below min_s \(6\.0\)$"),
        ({"clip": {"frames": 10}}, r"pairing\.clip: 10 frames do not fit a 3\.0 s clip at 2\.0 fps$"),
        ({"derive": {"enabled": "False"}}, r"pairing\.derive\.enabled must be true or false, got 'False'$"),
        ({"phase": {"frames": 0}}, r"pairing\.phase\.frames must be > 0, got 0$"),
        ({"phase": {"text": "abstract"}},
         r"pairing\.phase\.text must be one of .*'title'.*, got 'abstract'$"),
        ({"loader": {"size": [32, 48]}}, r"pairing\.loader\.size is not a setting$"),
    ],
)
def test_bad_settings_are_clear_errors(section, match):
    with pytest.raises(HecvlError, match=r"^params\.yaml: " + match) as info:
        validate_section(PairingRules, section, "pairing")
    assert "\n" not in str(info.value)  # one line


def test_text_limits():
    assert clean_text("  we  place\n the clip ") == "we place the clip"
    assert clean_text(float("nan")) == ""
    assert apply_text_limits("   ", 1, 100, "truncate") == (None, "empty_text", False)
    assert apply_text_limits("okay", 3, 100, "truncate") == (None, "short_text", False)
    text, reason, cut = apply_text_limits("one two three four five", 2, 14, "truncate")
    assert (text, reason, cut) == ("one two three", None, True)
    assert apply_text_limits("one two three four five", 2, 14, "drop") == (None, "long_text", False)
    assert truncate_words("abcdefghij", 4) == "abcd"
    assert split_sentences("We clip. Then we cut! Done") == ["We clip.", "Then we cut!", "Done"]


def _segments(rows, duration, **rules):
    tally = Tally()
    table = pd.DataFrame(rows, columns=["start", "end", "text"])
    cfg = validate_section(PairingRules, {"transcript": rules}, "pairing").transcript
    return clean_segments(table, duration, cfg, tally, "clip", "lec", "narrations"), tally


def test_out_of_order_segments_are_sorted_with_a_warning():
    segs, tally = _segments([(5, 7, "b"), (1, 3, "a"), (8, 9, "c")], 10)
    assert [s.data["text"] for s in segs] == ["a", "b", "c"]
    assert [s.row for s in segs] == [1, 0, 2]  # rows of the file: the basis of stable ids
    assert any("out of order" in w["message"] for w in tally.warnings)


def test_overlaps_are_clipped_or_kept():
    rows = [(0, 4, "a"), (3, 6, "b"), (4.5, 5.5, "inside b"), (6, 8, "c")]
    segs, tally = _segments(rows, 10, overlap="clip")
    assert [(s.start, s.end, s.data["text"]) for s in segs] == [(0, 4, "a"), (4, 6, "b"), (6, 8, "c")]
    assert segs[1].notes == ["clipped_overlap"]
    assert tally.drops["clip"]["overlap"] == 1
    segs, tally = _segments(rows, 10, overlap="keep")
    assert [(s.start, s.end) for s in segs] == [(0, 4), (3, 6), (4.5, 5.5), (6, 8)]
    assert sum("overlap_kept" in s.notes for s in segs) == 2
    assert sum(tally.drops["clip"].values()) == 0
    assert any("overlapping" in w["message"] for w in tally.warnings)


def test_segments_beyond_the_end_are_clipped_or_dropped():
    rows = [(0, 4, "a"), (8, 12, "past the end"), (10, 11, "after the end")]
    segs, tally = _segments(rows, 10, beyond_end="clip")
    assert [(s.start, s.end) for s in segs] == [(0, 4), (8, 10)]
    assert segs[1].notes == ["clipped_end"]
    assert tally.drops["clip"]["beyond_end"] == 1
    segs, tally = _segments(rows, 10, beyond_end="drop")
    assert [(s.start, s.end) for s in segs] == [(0, 4)]
    assert tally.drops["clip"]["beyond_end"] == 2


def test_invalid_spans_are_dropped():
    segs, tally = _segments([(3, 2, "backwards"), (float("nan"), 2, "nan"), (-1, 2, "negative start")], 10)
    assert [(s.start, s.end, s.notes) for s in segs] == [(0.0, 2, ["clipped_start"])]
    assert tally.drops["clip"]["invalid_span"] == 2


def test_clip_span_and_grid():
    assert clip_span(10, 20, 3, 5) == (13.0, 17.0)  # fixed: centred, mean length
    assert clip_span(10, 13, 3, 5) == (10.0, 13.0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        start, end = clip_span(10, 20, 3, 5, rng)
        assert start >= 10 and end <= 20 and 3 - 1e-3 <= end - start <= 5 + 1e-3
    times = clip_times(0, 4, 2, 4)
    assert times.tolist() == [0.5, 1.5, 2.5, 3.5]
    for _ in range(100):
        t = clip_times(1, 5, 2, 4, rng)
        assert len(t) == 4 and np.all(np.diff(t) > 0) and np.allclose((t - 1) * 2, np.round((t - 1) * 2))
    # a clip too short for the grid falls back to even spacing, never fewer frames
    assert len(clip_times(0, 1, 2, 4)) == 4


def test_segment_times():
    assert segment_times(0, 16, 4).tolist() == [2.0, 6.0, 10.0, 14.0]
    t = segment_times(0, 16, 4, np.random.default_rng(1))
    assert all(4 * i <= x < 4 * (i + 1) for i, x in enumerate(t))
    assert clamp_times(np.array([-1.0, 5.0, 30.0]), 19.9).tolist() == [0.0, 5.0, 19.9]


def test_extend_window_stays_inside_the_video():
    assert extend_window(5, 6, 3, 20) == (4.0, 7.0)
    assert extend_window(0, 1, 3, 20) == (0.0, 3.0)
    assert extend_window(19, 20, 3, 20) == (17.0, 20.0)


def _clips(rows, duration=20.0, **clip):
    rules = validate_section(PairingRules, {"clip": clip}, "pairing")
    tally = Tally()
    table = pd.DataFrame(rows, columns=["start", "end", "text"])
    return clip_pairs("lec", "lec/video.mp4", table, duration, duration - 0.1, rules, tally), tally


def test_short_narrations_extend_or_drop():
    rows = [(5, 6, "a short narration here"), (10, 15, "a long enough narration here")]
    pairs, tally = _clips(rows)
    assert [(p["window_start"], p["window_end"]) for p in pairs] == [(4.0, 7.0), (10.0, 15.0)]
    assert pairs[0]["notes"] == ["extended"]
    assert tally.adjusted["clip"]["extended"] == 1
    pairs, tally = _clips(rows, short_window="drop")
    assert [p["pair_id"] for p in pairs] == ["lec:n00001"]
    assert tally.drops["clip"]["short_window"] == 1
    pairs, tally = _clips([(0.5, 1.5, "a short narration here")], duration=2.0)  # video shorter than a clip
    assert pairs == [] and tally.drops["clip"]["video_shorter_than_clip"] == 1


def test_clip_pairs_plan_and_text_rules():
    rows = [(0, 5, "we open the peritoneum"), (6, 10, "ok"), (11, 14, ""), (15, 19, "x " * 400)]
    pairs, tally = _clips(rows)
    assert [p["pair_id"] for p in pairs] == ["lec:n00000", "lec:n00003"]
    assert tally.drops["clip"] == {"short_text": 1, "empty_text": 1}
    assert pairs[1]["notes"] == ["truncated"] and pairs[1]["n_chars"] <= 300
    first = pairs[0]
    assert (first["start"], first["end"]) == (0.5, 4.5)
    assert first["frame_times"] == [1.0, 2.0, 3.0, 4.0] and first["frames"] == 4 and first["fps"] == 2.0


def test_phase_text_rule():
    assert phase_text("Clipping", "clips on the duct", "title") == "Clipping"
    assert phase_text("Clipping", "clips on the duct", "summary") == "clips on the duct"
    assert phase_text("Clipping", "", "summary_or_title") == "Clipping"
    assert phase_text("Clipping", "clips on the duct", "title_and_summary") == "Clipping. clips on the duct"


def test_phase_pairs_link_children_and_allow_gaps():
    rules = PairingRules()
    tally = Tally()
    clips, _ = _clips(
        [(1, 4, "narration one here"), (12, 16, "narration two here"), (17, 19, "three is here")]
    )
    keysteps = pd.DataFrame(
        [(0, 8, "Opening", ""), (8, 9, "Tiny", ""), (11, 19, "Closing", "we close the wound")],
        columns=["start", "end", "step", "text"],
    )  # a gap 9-11 and a tail 19-20 without keystep: fine
    pairs = phase_pairs("lec", "lec/video.mp4", keysteps, 20.0, 19.9, clips, rules, tally)
    assert [p["pair_id"] for p in pairs] == ["lec:k000", "lec:k002"]
    assert pairs[0]["clip_ids"] == ["lec:n00000"]
    assert pairs[1]["clip_ids"] == ["lec:n00001", "lec:n00002"]
    assert pairs[1]["text"] == "we close the wound" and len(pairs[1]["frame_times"]) == 16
    assert tally.drops["phase"]["short_segment"] == 1
    # no keysteps: no phase pairs without derivation
    assert phase_pairs("lec", "v", keysteps.iloc[:0], 20.0, 19.9, clips, rules, tally) == []


def test_derived_segments_cover_the_video():
    segs = derived_segments(150.0, 60.0)
    assert segs["start"].tolist() == [0.0, 75.0] and segs["end"].tolist() == [75.0, 150.0]
