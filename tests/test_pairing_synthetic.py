"""Pairing the generated world (`hecvl synth --preset smoke`): all levels, stats that match the generator."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pairing_helpers import run_pair

from hecvl.cli import main
from hecvl.pairing.datasets import PairDataset
from hecvl.pairing.manifest import LEVELS, read_manifest


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthworld")
    assert main(["synth", "--preset", "smoke", "--seed", "0", "--out", str(root / "world")]) == 0
    out = root / "pairs"
    assert run_pair(root / "world" / "corpus", out) == 0
    return root / "world", out


def test_pairs_at_every_level_and_links(world):
    _, out = world
    tables = {level: read_manifest(out, level).to_pylist() for level in LEVELS}
    assert all(tables[level] for level in LEVELS)
    clip_ids = {c["pair_id"] for c in tables["clip"]}
    phase_ids = {p["pair_id"] for p in tables["phase"]}
    assert all(set(p["clip_ids"]) <= clip_ids for p in tables["phase"])
    assert all(set(v["phase_ids"]) <= phase_ids for v in tables["video"])
    assert sum(len(p["clip_ids"]) for p in tables["phase"]) > 0


def test_stats_match_what_the_generator_wrote(world):
    root, out = world
    manifest = json.loads((root / "manifest.json").read_text())
    lectures = manifest["corpus"]["lectures"]
    corpus = root / "corpus"
    narrations = sum(len(pd.read_csv(corpus / lid / "narration.csv")) for lid in lectures)
    keysteps = sum(len(pd.read_csv(corpus / lid / "keysteps.csv")) for lid in lectures)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["lectures"]["found"] == stats["lectures"]["used"] == len(lectures)
    assert stats["lectures"]["excluded"] == []
    assert stats["lectures"]["narrations"] == stats["levels"]["clip"]["input"] == narrations
    assert stats["lectures"]["keysteps"] == stats["levels"]["phase"]["input"] == keysteps
    generated = [v for v in manifest["videos"] if v["kind"] == "lecture"]  # the generator's own record
    assert narrations == sum(len(v["narration_kinds"]) for v in generated)
    assert keysteps == sum(len(v["segments"]) for v in generated)
    assert stats["levels"]["video"]["input"] == stats["levels"]["video"]["pairs"] == len(lectures)
    for level in LEVELS:
        entry = stats["levels"][level]
        assert entry["input"] == entry["pairs"] + sum(entry["dropped"].values())
    durations = {v["id"]: v["duration_s"] for v in manifest["videos"] if v["kind"] == "lecture"}
    videos = read_manifest(out, "video").to_pylist()
    assert {v["lecture_id"]: v["end"] for v in videos} == pytest.approx(durations)
    assert stats["levels"]["video"]["duration_s"]["total"] == pytest.approx(sum(durations.values()), abs=1e-3)


def test_rerun_is_byte_identical(world, tmp_path):
    root, out = world
    assert run_pair(root / "corpus", tmp_path / "again") == 0
    for level in LEVELS:
        assert (tmp_path / "again" / f"{level}.parquet").read_bytes() == (
            out / f"{level}.parquet"
        ).read_bytes()


def test_loader_decodes_the_synthetic_lectures(world):
    root, out = world
    ds = PairDataset(out, "clip", root / "corpus", train=True, size=(72, 96), crop=64)
    sample = ds[(0, len(ds) - 1)]
    assert sample["frames"].shape == (4, 3, 64, 64) and int(sample["frames"].float().std()) > 0
