"""Data versions by content (hecvl.provenance) and one configuration per invocation (hecvl.config.write).

What the DAG relies on: a version changes with the bytes and only with them (a new mtime, as a `dvc pull`
gives, changes nothing), a file is read again only when its stat changed, stamps adopted for data that came
without one never look newer than anything, and a job refuses a configuration whose text lost its digest.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from hecvl import layout, provenance
from hecvl.config import invocation_config, load_params, resolve_invocation, write_text_once
from hecvl.errors import HecvlError
from hecvl.provenance import MISSING, DataVersions, HashCache, adopt_stamps

ROOT = Path(__file__).resolve().parents[1]


def _corpus(root: Path) -> Path:
    for lecture, text in (("lec_a", "0,1,open the port\n"), ("lec_b", "0,2,dissect\n")):
        folder = root / "corpus" / lecture
        folder.mkdir(parents=True)
        (folder / "narration.csv").write_text("start,end,text\n" + text)
        (folder / "video.mp4").write_bytes(lecture.encode() * 100)
    return root / "corpus"


def _versions(tmp_path: Path, corpus: Path) -> DataVersions:
    params = load_params(ROOT / "params.yaml", [{"data": {"corpus": str(corpus)}}])
    return DataVersions(params, HashCache(tmp_path / "hashes.json"))


def test_a_version_follows_the_bytes_not_the_times(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    versions = _versions(tmp_path, corpus)
    first = versions.corpus()
    assert len(first) == 16
    narration = corpus / "lec_a" / "narration.csv"
    for f in corpus.rglob("*"):  # a dvc pull: every file rewritten with the same bytes, new times
        if f.is_file():
            data = f.read_bytes()
            f.write_bytes(data)
            os.utime(f, (1e9, 1e9))
    assert versions.corpus() == first
    narration.write_text(narration.read_text().replace("port", "trocar"))  # a fixed narration
    second = versions.corpus()
    assert second != first
    (corpus / "lec_c").mkdir()  # a new lecture
    (corpus / "lec_c" / "narration.csv").write_text("start,end,text\n")
    assert versions.corpus() not in (first, second)
    (corpus / "lec_a" / ".narration.csv.swp").write_text("editor junk")  # hidden files do not count
    (corpus / "lec_c" / "narration.csv").unlink()
    (corpus / "lec_c").rmdir()
    assert versions.corpus() == second


def test_a_moved_file_is_a_new_version(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    versions = _versions(tmp_path, corpus)
    before = versions.corpus()
    shutil.move(corpus / "lec_b" / "video.mp4", corpus / "lec_b" / "video.mkv")
    assert versions.corpus() != before


def test_files_are_read_again_only_when_their_stat_changed(tmp_path: Path, monkeypatch) -> None:
    corpus = _corpus(tmp_path)
    versions = _versions(tmp_path, corpus)
    versions.corpus()
    reads: list[Path] = []
    real = provenance.sha256_file
    monkeypatch.setattr(provenance, "sha256_file", lambda p: reads.append(Path(p)) or real(p))
    fresh = _versions(tmp_path, corpus)  # a new process: the cache comes from its file
    fresh.corpus()
    assert reads == []
    os.utime(corpus / "lec_b" / "video.mp4", (2e9, 2e9))
    fresh.corpus()
    assert reads == [corpus / "lec_b" / "video.mp4"]


def test_a_corrupt_cache_costs_time_not_correctness(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    right = _versions(tmp_path, corpus).corpus()
    (tmp_path / "hashes.json").write_text("{not json")
    assert _versions(tmp_path, corpus).corpus() == right
    (tmp_path / "hashes.json").write_text('{"x": [1, 2, 3]}')
    assert _versions(tmp_path, corpus).corpus() == right


def test_absent_data_has_the_missing_version(tmp_path: Path) -> None:
    versions = _versions(tmp_path, tmp_path / "not-generated-yet")
    assert versions.corpus() == MISSING
    assert versions.files([tmp_path / "pairs" / "clip.parquet"]) == MISSING
    elsewhere = {"data": {"targets": {"cholec80": {"root": str(tmp_path / "no")}}}}
    params = load_params(ROOT / "params.yaml", [elsewhere])
    assert DataVersions(params, versions.cache).dataset("cholec80") == MISSING
    (tmp_path / "no").mkdir()  # there, but not a dataset: what is wrong is said (acquire says it in full)
    assert DataVersions(params, versions.cache).dataset("cholec80").startswith("error: ")


def test_stamps_are_adopted_only_for_data_that_is_there_and_dated_1970(tmp_path: Path) -> None:
    data = tmp_path / "acquired.json"
    stamp = tmp_path / "versions" / "acquire.stamp"
    assert adopt_stamps({str(stamp): [str(data)]}) == []  # nothing acquired: acquire must run
    assert not stamp.exists()
    data.write_text("{}")
    assert adopt_stamps({str(stamp): [str(data)]}) == [str(stamp)]
    assert stamp.stat().st_mtime == 0
    os.utime(stamp, (5, 5))
    assert adopt_stamps({str(stamp): [str(data)]}) == []  # an existing stamp is the producer's: kept
    assert stamp.stat().st_mtime == 5


# --- one configuration per invocation --------------------------------------------------------------
def test_the_invocation_file_is_named_by_its_text_and_refused_when_changed(tmp_path: Path,
                                                                           monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = load_params(ROOT / "params.yaml", [{"preset": "smoke"}])
    path, text = invocation_config(params, "a header")
    assert path == layout.resolved_config(path.split("study-")[1][:16])
    assert invocation_config(params, "a header") == (path, text)  # the same settings, the same file
    other, _ = invocation_config(load_params(ROOT / "params.yaml"), "a header")
    assert other != path
    write_text_once(path, text)
    assert load_params(path).preset == "smoke"
    Path(path).write_text(text.replace("steps: 16", "steps: 600", 1))
    with pytest.raises(HecvlError, match=r"planned with digest [0-9a-f]{16} but its text now has"):
        load_params(path)


def test_a_refused_configuration_stops_the_job_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    params = load_params(ROOT / "params.yaml", [{"preset": "smoke"}])
    path, text = invocation_config(params)
    target = tmp_path / path
    write_text_once(target, text.replace("seed: 0", "seed: 5", 1))
    hecvl = Path(sys.executable).parent / "hecvl"
    proc = subprocess.run([str(hecvl), "params", "show", "--params", str(target)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "rerun snakemake" in lines[0] and str(target) in lines[0], proc.stderr


# --- override order: params.yaml, its preset, --configfile in order, --config -----------------------
@pytest.fixture
def files(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "mine.yaml").write_text("preset: smoke\ntrain: {steps: 7}\n")
    return tmp_path


def test_the_main_file_named_again_stays_the_base(files: Path) -> None:
    for configfiles in (["params.yaml", "mine.yaml"], ["mine.yaml"], ["mine.yaml", "params.yaml"],
                        [str(files / "params.yaml"), "mine.yaml"]):
        p = resolve_invocation("params.yaml", configfiles)
        assert p.preset == "smoke", configfiles
        assert p.data.synthetic.preset == "smoke", configfiles  # the preset applies in full
        assert p.study.seeds == (0,) and p.train.steps == 7, configfiles


def test_the_command_line_preset_and_values(files: Path) -> None:
    p = resolve_invocation("params.yaml", [], {"preset": "smoke"})
    assert p.preset == "smoke" and p.train.steps == 16 and p.data.synthetic.preset == "smoke"
    p = resolve_invocation("params.yaml", ["mine.yaml"], {"train": {"steps": 3}})
    assert p.train.steps == 3 and p.data.synthetic.preset == "smoke"  # --config beats --configfile
    p = resolve_invocation("params.yaml", ["mine.yaml"], {"preset": "default"})
    assert p.preset == "default" and p.train.steps == 7 and p.data.synthetic.preset == "default"


def test_a_whole_parameter_file_replaces_the_base(files: Path) -> None:
    copy = yaml.safe_load((files / "params.yaml").read_text())
    copy["preset"] = "smoke"
    copy["study"]["name"] = "my-study"
    (files / "copy.yaml").write_text(yaml.safe_dump(copy))
    p = resolve_invocation("params.yaml", ["params.yaml", "copy.yaml"])
    assert p.study.name == "my-study" and p.data.synthetic.preset == "smoke"
    (files / "copy2.yaml").write_text(yaml.safe_dump(copy))
    with pytest.raises(HecvlError, match="both whole parameter files"):
        resolve_invocation("params.yaml", ["copy.yaml", "copy2.yaml"])
