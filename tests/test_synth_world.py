"""Planning the synthetic world: phase patterns of the real label files, seeds, scenes, nuisances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hecvl.errors import HecvlError
from hecvl.synth import style, vocab
from hecvl.synth.generate import plan_world, world_params
from hecvl.synth.world import plan_to_dict, plan_video, rng_for, sample_durations, sample_sequence


def _plan(centre: str, seed: int, duration: int = 200):
    look = style.centre_style(centre)
    return plan_video(
        f"{centre}{seed}", "target", look["procedure"], look["sequence"], centre, look, duration, seed
    )


def _orders(centre: str, n: int = 80) -> list[list[int]]:
    spec = vocab.world()["sequences"][centre]
    return [sample_sequence(spec, rng_for(k, "orders")) for k in range(n)]


def test_cholec80_orders_skip_preparation_and_swap_cleaning_before_packaging():
    orders = _orders("cholec80")
    assert any(o[0] == 0 for o in orders) and any(0 not in o for o in orders)
    assert any(o.index(5) < o.index(4) for o in orders if 4 in o and 5 in o)  # Cleaning before Packaging
    assert any(o.index(4) < o.index(5) for o in orders if 4 in o and 5 in o)
    assert all(o[-1] == 6 and o.count(1) == 1 for o in orders)  # always ends with retraction, no revisits


def test_autolaparo_orders_revisit_two_three():
    orders = _orders("autolaparo")
    as_text = [",".join(str(p + 1) for p in o) for o in orders]  # published ids are 1-based
    assert any("2,3,2,3" in t for t in as_text)
    assert any("2,3,4" in t and "2,3,2" not in t for t in as_text)
    assert any(0 not in o for o in orders) and any(4 not in o for o in orders)


def test_multibypass_centres_have_their_own_orders():
    stras, bern = _orders("strasbourg"), _orders("bern")
    assert any(o[:5] == [0, 1, 2, 1, 2] for o in stras)  # SBP01's revisit of pouch creation / omentum
    assert all(o.index(5) < o.index(7) for o in stras if 5 in o and 7 in o)
    assert all(o.index(7) < o.index(5) < o.index(4) for o in bern)  # BBP01: 3, 7, 5, 4, 10
    assert sum(6 in o for o in bern) < sum(6 in o for o in stras)


def test_durations_fill_the_video_on_the_render_grid():
    rng = np.random.default_rng(0)
    seq = [0, 1, 2, 1, 2, 3]
    d = sample_durations(seq, [0.1, 0.5, 0.1, 0.3], 97.0, rng, 5)
    assert sum(d) == pytest.approx(97.0)
    assert min(d) >= 1.0
    assert all(abs(x * 5 - round(x * 5)) < 1e-9 for x in d)
    with pytest.raises(HecvlError, match="too short"):
        sample_durations(list(range(12)) * 3, [1.0] * 12, 2.0, rng, 2)


def test_boundaries_are_exactly_the_times_of_pictures():
    """A phase boundary is the very float of the picture on it: labels and pixels never disagree there."""
    for centre in ("strasbourg", "bern", "autolaparo"):
        for seed in range(5):
            plan = _plan(centre, seed)
            times = {plan.picture_time(i) for i in range(plan.n_pictures + 1)}
            edges = [x for s in plan.segments for x in (s.start, s.end)]
            edges += [x for e in plan.episodes for x in (e.start, e.end) if x < plan.duration]
            edges += [x for s in plan.segments for a, b, _ in s.steps for x in (a, b)]
            assert set(edges) <= times


def test_plan_is_deterministic_and_seed_dependent():
    a, b, c = _plan("cholec80", 3), _plan("cholec80", 3), _plan("cholec80", 4)
    assert plan_to_dict(a) == plan_to_dict(b)
    assert plan_to_dict(a) != plan_to_dict(c)


def test_segments_tile_the_labelled_span_and_frames_match_fps():
    for centre in ("cholec80", "autolaparo", "strasbourg", "bern"):
        for seed in range(4):
            plan = _plan(centre, seed)
            segs = plan.segments
            assert segs[0].start == pytest.approx(plan.scene_start)
            assert segs[-1].end == pytest.approx(plan.scene_end)
            assert all(s.end == pytest.approx(n.start) for s, n in itertools.pairwise(segs))
            assert all(s.phase_id != n.phase_id for s, n in itertools.pairwise(segs))
            assert 0 <= plan.n_frames - 200 * plan.fps < plan.repeat
            names = vocab.procedure_phases(plan.procedure)
            assert all(names[s.phase_id] == s.phase for s in segs)


def test_multibypass_head_and_tail_are_unlabelled_and_steps_nest_in_phases():
    plans = [_plan("bern", s) for s in range(6)]
    assert any(p.scene_start > 0 for p in plans) and any(p.scene_end < p.duration for p in plans)
    for p in plans:
        assert p.phase_at(0.0) == (-1 if p.scene_start > 0 else p.segments[0].phase_id)
        assert p.phase_at(p.duration - 1e-6) == (-1 if p.scene_end < p.duration else p.segments[-1].phase_id)
        for seg in p.segments:
            assert seg.steps and seg.steps[0][0] == seg.start and seg.steps[-1][1] == seg.end
            step_ids = vocab.world()["procedures"]["gastric_bypass"]["steps"][seg.phase]
            assert {i for _, _, i in seg.steps} <= {0, *step_ids}


def test_out_of_body_and_bleeding_episodes():
    plans = [_plan("bern", s, 400) for s in range(8)]
    kinds = {e.kind for p in plans for e in p.episodes}
    assert kinds == {"out_of_body", "bleeding"}
    for p in plans:
        oob = [(e.start, e.end) for e in p.episodes if e.kind == "out_of_body"]
        assert all(b <= c for (_, b), (c, _) in itertools.pairwise(oob))  # never overlap
        assert all(0 <= a < b <= p.duration + 1e-9 for a, b in oob)
    cholec = [_plan("cholec80", s) for s in range(8)]
    assert not any(e.kind == "bleeding" for p in cholec for e in p.episodes)


def test_scenes_follow_recipes_and_confusable_phases_share_tools():
    phases = vocab.world()["procedures"]["cholecystectomy"]["phases"]
    calot, gb = phases[1]["scene"], phases[3]["scene"]
    assert {t[0] for t in calot["tools"]} & {t[0] for t in gb["tools"]} >= {"grasper", "hook"}
    assert calot["site"] != gb["site"]  # same tools, other anatomy
    plan = _plan("cholec80", 1)
    for seg in plan.segments:
        recipe = phases[seg.phase_id]["scene"]
        assert seg.scene.site == recipe["site"]
        assert {t.tool for t in seg.scene.tools} <= {t[0] for t in recipe["tools"]}
        assert 1 <= len(seg.scene.tools) <= 3
        for track in seg.scene.tools:
            assert all(seg.start <= a < b <= seg.end for a, b in track.on)


def test_world_sizes_and_scale():
    lec, tgt, splits = plan_world("smoke", 0, 1)
    lec2, _, _ = plan_world("smoke", 0, 2)
    assert len(lec2) == 2 * len(lec)
    # a video does not change when others are added
    assert plan_to_dict(lec2[0].plan) == plan_to_dict(lec[0].plan)
    assert {j.plan.procedure for j in lec} == {"cholecystectomy", "hysterectomy", "gastric_bypass"}
    assert set(splits) == {"cholec80", "autolaparo", "strasbypass70", "bernbypass70"}
    assert all(len(s["train"]) == 1 and len(s["val"]) == 1 and len(s["test"]) == 2 for s in splits.values())
    assert len(tgt) == sum(len(v) for s in splits.values() for v in s.values())
    with pytest.raises(HecvlError, match="unknown preset"):
        world_params("huge", 0, 1, 0.5)
    with pytest.raises(HecvlError, match="relevance"):
        world_params("smoke", 0, 1, 1.5)
    with pytest.raises(HecvlError, match="scale"):
        world_params("smoke", 0, 0, 0.5)
