"""`hecvl pair` end to end on tiny real corpora: manifests, links, statistics, bad lectures, determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from pairing_helpers import ABSTRACT, GOOD_KEYSTEPS, GOOD_NARRATIONS, make_lecture, run_pair, small_corpus

from hecvl.cli import main
from hecvl.pairing.manifest import LEVELS, SCHEMAS, read_manifest


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch):
    monkeypatch.setenv("HECVL_TRACKING", "off")


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    """The small corpus paired once with the default rules."""
    root = tmp_path_factory.mktemp("pairing")
    corpus = small_corpus(root / "corpus")
    params = root / "params.yaml"
    params.write_text("seed: 0\n")
    out = root / "pairs"
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse fixture is not active yet
        mp.setenv("HECVL_TRACKING", "off")
        assert main(["pair", str(corpus), "--params", str(params), "--out", str(out), "--no-progress"]) == 0
    return corpus, params, out


def _rows(out, level):
    return read_manifest(out, level).to_pylist()


def test_three_manifests_with_the_schema(paired):
    _, _, out = paired
    for level in LEVELS:
        table = pq.read_table(out / f"{level}.parquet")
        assert table.schema.remove_metadata() == SCHEMAS[level]
        assert table.num_rows > 0
    assert (out / "stats.json").is_file() and (out / "stats.png").stat().st_size > 10_000


def test_clip_pairs(paired):
    _, _, out = paired
    clips = _rows(out, "clip")
    by_id = {c["pair_id"]: c for c in clips}
    # lec_a: narration 3 ("okay") is too short a text; lec_c is excluded (corrupt video)
    assert sorted(i for i in by_id if i.startswith("lec_a")) == [
        "lec_a:n00000",
        "lec_a:n00001",
        "lec_a:n00002",
        "lec_a:n00004",
    ]
    assert not any(c["lecture_id"] == "lec_c" for c in clips)
    ext = by_id["lec_a:n00001"]  # a 1 s narration widened to 3 s around its centre
    assert (ext["window_start"], ext["window_end"]) == (4.0, 7.0) and "extended" in ext["notes"]
    for c in clips:
        assert c["video"] == f"{c['lecture_id']}/video.mp4"
        assert c["window_start"] <= c["start"] < c["end"] <= c["window_end"]
        assert 3.0 - 1e-6 <= c["end"] - c["start"] <= 5.0 + 1e-6
        assert len(c["frame_times"]) == 4 and all(c["start"] <= t < c["end"] for t in c["frame_times"])
    # sorted by lecture then time
    keys = [(c["lecture_id"], c["start"]) for c in clips]
    assert keys == sorted(keys)


def test_messy_transcript_rules(paired):
    _, _, out = paired
    b = {c["pair_id"]: c for c in _rows(out, "clip") if c["lecture_id"] == "lec_b"}
    # sorted; the overlapping one starts where the previous ended; the one inside it is dropped;
    # the one past the end is cut at 16 s (then widened to 3 s); the one after the end is dropped
    assert sorted(b) == ["lec_b:n00000", "lec_b:n00001", "lec_b:n00002", "lec_b:n00004"]
    assert (b["lec_b:n00002"]["narration_start"], b["lec_b:n00002"]["narration_end"]) == (5.0, 8.0)
    assert "clipped_overlap" in b["lec_b:n00002"]["notes"]
    assert b["lec_b:n00004"]["narration_end"] == 16.0 and "clipped_end" in b["lec_b:n00004"]["notes"]
    assert b["lec_b:n00004"]["window_end"] <= 16.0


def test_parent_child_links_resolve(paired):
    _, _, out = paired
    clip_ids = {c["pair_id"]: c for c in _rows(out, "clip")}
    phases = _rows(out, "phase")
    phase_ids = {p["pair_id"] for p in phases}
    for p in phases:
        for cid in p["clip_ids"]:
            child = clip_ids[cid]
            assert child["lecture_id"] == p["lecture_id"]
            assert p["start"] <= 0.5 * (child["narration_start"] + child["narration_end"]) < p["end"]
        assert len(p["frame_times"]) == 16
    a = {p["pair_id"]: p for p in phases if p["lecture_id"] == "lec_a"}
    assert sorted(a) == ["lec_a:k000", "lec_a:k001", "lec_a:k003"]  # k002 (1 s) is shorter than a clip
    assert a["lec_a:k001"]["text"] == "Clipping"  # no summary: the title
    videos = _rows(out, "video")
    assert [v["pair_id"] for v in videos] == ["lec_a:v"]  # lec_b has no abstract
    v = videos[0]
    assert v["phase_ids"] == ["lec_a:k000", "lec_a:k001", "lec_a:k003"] and set(v["phase_ids"]) <= phase_ids
    assert v["text"] == ABSTRACT and v["procedure"] == "cholecystectomy"
    assert (v["start"], v["end"], len(v["frame_times"])) == (0.0, 20.0, 64)
    assert v["frame_times"][-1] < 20.0


def test_stats_account_for_every_segment(paired):
    _, _, out = paired
    stats = json.loads((out / "stats.json").read_text())
    lectures = stats["lectures"]
    assert (lectures["found"], lectures["used"]) == (3, 2)
    assert [e["lecture"] for e in lectures["excluded"]] == ["lec_c"]
    assert "lec_c" in lectures["excluded"][0]["reason"] and "video" in lectures["excluded"][0]["reason"]
    assert lectures["narrations"] == len(GOOD_NARRATIONS) + 6
    assert lectures["keysteps"] == len(GOOD_KEYSTEPS) + 2
    for level in LEVELS:
        entry = stats["levels"][level]
        assert entry["pairs"] == pq.read_metadata(out / f"{level}.parquet").num_rows
        assert entry["input"] == entry["pairs"] + sum(entry["dropped"].values())
    assert stats["levels"]["clip"]["dropped"] == {"beyond_end": 1, "overlap": 1, "short_text": 1}
    assert stats["levels"]["phase"]["dropped"] == {"short_segment": 1}
    assert stats["levels"]["video"]["dropped"] == {"no_abstract": 1}
    assert stats["rules"]["clip"]["frames"] == 4
    assert any("out of order" in w["message"] for w in stats["warnings"])


def test_rerun_gives_identical_bytes(paired, tmp_path):
    corpus, params, out = paired
    again = tmp_path / "again"
    assert main(["pair", str(corpus), "--params", str(params), "--out", str(again), "--no-progress"]) == 0
    for name in ("clip.parquet", "phase.parquet", "video.parquet", "stats.json", "stats.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_rules_come_from_params(paired, tmp_path):
    corpus, _, _ = paired
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"pairing": {"clip": {"short_window": "drop"}, "phase": {"frames": 8}}}))
    out = tmp_path / "pairs"
    assert main(["pair", str(corpus), "--params", str(params), "--out", str(out), "--no-progress"]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["levels"]["clip"]["dropped"]["short_window"] >= 1
    assert {len(p["frame_times"]) for p in _rows(out, "phase")} == {8}


def test_bad_lectures_are_excluded_with_reasons(tmp_path):
    corpus = tmp_path / "corpus"
    make_lecture(corpus, "good", 12.0, GOOD_NARRATIONS[:3], GOOD_KEYSTEPS[:2], ABSTRACT)
    make_lecture(corpus, "no_video", 12.0, GOOD_NARRATIONS[:2], video=False)
    (make_lecture(corpus, "no_narration", 6.0) / "narration.csv").unlink()
    garbage = make_lecture(corpus, "not_a_video", 6.0, GOOD_NARRATIONS[:1])
    (garbage / "video.mp4").write_bytes(b"this is not a video" * 100)
    broken = make_lecture(corpus, "bad_keysteps", 12.0, GOOD_NARRATIONS[:2], abstract=ABSTRACT)
    (broken / "keysteps.csv").write_text("begin,finish\n1,2\n")
    rows = make_lecture(corpus, "bad_rows", 12.0, [(0, 4, "a fine narration here")], abstract=ABSTRACT)
    with open(rows / "narration.csv", "a") as fh:
        fh.write('6,5,"end before start"\nabc,9,"not a number"\n7,11,""\n')
    out = tmp_path / "pairs"
    assert run_pair(corpus, out) == 0
    stats = json.loads((out / "stats.json").read_text())
    excluded = {e["lecture"]: e["reason"] for e in stats["lectures"]["excluded"]}
    assert sorted(excluded) == ["no_narration", "no_video", "not_a_video"]
    assert "no video file" in excluded["no_video"]
    assert "narration.csv" in excluded["no_narration"]
    assert "not a readable video" in excluded["not_a_video"]
    # row-level problems drop rows, not lectures; an unreadable keysteps.csv is a warning
    clips = {c["pair_id"] for c in _rows(out, "clip")}
    assert "bad_rows:n00000" in clips and not any(
        i.startswith("bad_rows:n0000") and i != "bad_rows:n00000" for i in clips
    )
    assert stats["levels"]["clip"]["dropped"]["invalid_span"] == 2
    assert stats["levels"]["clip"]["dropped"]["empty_text"] == 1
    assert any(w["lecture"] == "bad_keysteps" and "keysteps.csv" in w["message"] for w in stats["warnings"])
    assert {v["lecture_id"] for v in _rows(out, "video")} == {"good", "bad_keysteps", "bad_rows"}


def test_all_lectures_bad_is_an_error(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    make_lecture(corpus, "only", 6.0, GOOD_NARRATIONS[:1], video=False)
    assert run_pair(corpus, tmp_path / "o") == 2
    assert "no lecture could be paired" in capsys.readouterr().err


def test_missing_corpus_and_bad_params_write_nothing(tmp_path, capsys):
    out = tmp_path / "pairs"
    assert run_pair(tmp_path / "nope", out) == 2
    assert "corpus folder not found" in capsys.readouterr().err
    assert run_pair(tmp_path, out, "pairing: {clip: {frames: 99}}\n") == 2
    assert not out.exists()


def test_corpus_path_may_be_relative(paired, tmp_path, monkeypatch):
    corpus, params, _ = paired
    shutil.copytree(corpus / "lec_a", tmp_path / "c" / "lec_a")
    monkeypatch.chdir(tmp_path)
    assert main(["pair", "c", "--params", str(params), "--out", "o", "--no-progress"]) == 0
    assert {c["video"] for c in _rows(Path("o"), "clip")} == {"lec_a/video.mp4"}
