"""`hecvl corpus download` / `report` with the real yt-dlp against a loopback HTTP server (no internet).

The server serves real H.264 files, honours HTTP ranges (so yt-dlp can resume), can cut a response off
half-way, answers 404 for a video that is gone, and records every request. The corpus it feeds is then
validated, paired and pretrained on for a few steps.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml
from corpora_helpers import SCHEMA
from pairing_helpers import ABSTRACT, GOOD_KEYSTEPS, GOOD_NARRATIONS, make_lecture, make_video, run_pair
from training_helpers import write_params

from hecvl.cli import main
from hecvl.errors import HecvlError

pytestmark = pytest.mark.slow


class VideoServer:
    """A loopback HTTP server of in-memory files: ranges, one cut-off response per file on request, 404s."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.cut: dict[str, int] = {}  # file -> the GET (1-based) whose body stops half-way
        self.requests: list[tuple[str, str | None, str | None]] = []  # (file, Range, Cookie)
        self._gets: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range"), self.headers.get("Cookie")))
                data = server.files.get(name)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                server._gets[name] = server._gets.get(name, 0) + 1
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    end = int(match.group(2)) if match.group(2) else len(data) - 1
                    body = data[start : end + 1]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
                else:
                    body = data
                    self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut.get(name) == server._gets[name]:
                    self.wfile.write(body[: len(body) // 2])  # then the connection drops
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # yt-dlp's extractor hangs up after the headers: not worth a traceback

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> VideoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fetched(self, name: str) -> list[tuple[str, str | None, str | None]]:
        return [r for r in self.requests if r[0] == name]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The served videos: two 20 s lectures (the pairing helpers' transcripts fit them) and a 6 s one."""
    base = tmp_path_factory.mktemp("served")
    return {
        "a.mp4": make_video(base / "a.mp4", 20.0).read_bytes(),
        "b.mp4": make_video(base / "b.mp4", 20.0, textured=True).read_bytes(),
        "short.mp4": make_video(base / "short.mp4", 6.0).read_bytes(),
    }


def imported_corpus(root: Path, base_url: str) -> Path:
    """A corpus as an importer writes it: texts and meta.json (url, expected_duration, licence), no video."""
    lectures = {
        "lec_a": {"url": f"{base_url}/a.mp4", "expected_duration": 20.0},
        "lec_b": {"url": f"{base_url}/b.mp4", "expected_duration": 20.0},
        "lec_gone": {"url": f"{base_url}/gone.mp4", "expected_duration": 20.0},  # 404
        "lec_nourl": {"youtube_id": None},
    }
    for lid, meta in lectures.items():
        meta = {**meta, "licence": "CC BY-NC-SA 4.0", "source": {"corpus": "test"}}
        make_lecture(root, lid, 20.0, GOOD_NARRATIONS, GOOD_KEYSTEPS, ABSTRACT, meta, video=False)
    return root


def hecvl(*args: object) -> int:
    return main([str(a) for a in args])


def test_download_resume_404_rerun_delete_then_pair_and_pretrain(
    sources: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")
    with VideoServer(dict(sources)) as server:
        server.cut["b.mp4"] = 2  # the generic extractor's look is GET 1; the download (GET 2) drops half-way
        corpus = imported_corpus(tmp_path / "corpus", server.url)
        assert hecvl("corpus", "download", corpus, "--retries", "2", "--no-progress") == 0
        manifest = json.loads((corpus / "downloads.json").read_text())
        entries = manifest["lectures"]
        assert {k: e["status"] for k, e in entries.items()} == {
            "lec_a": "downloaded", "lec_b": "downloaded", "lec_gone": "unavailable", "lec_nourl": "no_url"}
        for lid, name in (("lec_a", "a.mp4"), ("lec_b", "b.mp4")):
            video = corpus / lid / "video.mp4"
            assert sha(video.read_bytes()) == sha(sources[name]) == entries[lid]["sha256"]
            assert entries[lid]["duration"] == pytest.approx(20.0, abs=0.11)
            assert not (corpus / lid / ".download").exists()
        # the cut transfer was resumed where it stopped, not restarted
        ranges = [r[1] for r in server.fetched("b.mp4") if r[1]]
        assert ranges and int(re.match(r"bytes=(\d+)-", ranges[-1]).group(1)) > 0, server.fetched("b.mp4")
        assert "404" in entries["lec_gone"]["error"]
        assert manifest["format"].startswith("bv*[ext=mp4][height<=?720]+ba[ext=m4a]")
        assert "downloaded" in capsys.readouterr().out

        # a rerun does nothing: no request, the manifest not even rewritten
        before, stamp = len(server.requests), (corpus / "downloads.json").stat().st_mtime_ns
        assert hecvl("corpus", "download", corpus, "--no-progress") == 0
        assert len(server.requests) == before
        assert (corpus / "downloads.json").stat().st_mtime_ns == stamp
        assert hecvl("corpus", "download", corpus, "--no-progress", "--strict") == 1  # 2 videos missing

        # a deleted video is fetched again, and only it (the yt-dlp archive does not hide it)
        (corpus / "lec_a" / "video.mp4").unlink()
        assert hecvl("corpus", "download", corpus, "--no-progress") == 0
        assert {r[0] for r in server.requests[before:]} == {"a.mp4"}
        assert sha((corpus / "lec_a" / "video.mp4").read_bytes()) == sha(sources["a.mp4"])
        assert "generic a" in (corpus / ".yt-dlp-archive.txt").read_text().splitlines()

        # a run stopped after a video was written but before it was recorded: described, not fetched again
        manifest = json.loads((corpus / "downloads.json").read_text())
        recorded = manifest["lectures"].pop("lec_b")
        (corpus / "downloads.json").write_text(json.dumps(manifest))
        before = len(server.requests)
        assert hecvl("corpus", "download", corpus, "--no-progress") == 0
        assert len(server.requests) == before
        again = json.loads((corpus / "downloads.json").read_text())["lectures"]["lec_b"]
        assert again["sha256"] == recorded["sha256"] and again["status"] == "downloaded"

    # validate: a missing video is an error, unless the corpus is read as a downloaded one
    capsys.readouterr()
    assert hecvl("corpus", "validate", corpus) == 1
    assert hecvl("corpus", "validate", corpus, "--skip-missing-videos") == 0
    out = capsys.readouterr().out
    assert "warning: lec_gone:" in out and "skipped" in out and "0 error(s)" in out

    # the availability report: 2 of 4 lectures, so half of each level's pairs
    assert hecvl("corpus", "report", corpus, "--out", tmp_path / "report.md", "--no-progress") == 0
    out = capsys.readouterr().out
    n_clip = len(GOOD_NARRATIONS)
    assert f"clip pairs: {2 * n_clip} of {4 * n_clip} imported have a video (50%)" in out
    assert "video pairs: 2 of 4 imported" in out
    md = (tmp_path / "report.md").read_text()
    assert "| unavailable | 1 |" in md and "| no_url | 1 |" in md and "| downloaded | 2 |" in md

    # pairing skips the lectures without a video (listed), and pretraining runs on what was fetched
    assert run_pair(corpus, tmp_path / "pairs") == 0
    stats = json.loads((tmp_path / "pairs" / "stats.json").read_text())
    assert {e["lecture"] for e in stats["lectures"]["excluded"]} == {"lec_gone", "lec_nourl"}
    clips = pd.read_parquet(tmp_path / "pairs" / "clip.parquet")
    assert set(clips["lecture_id"]) == {"lec_a", "lec_b"}
    params = write_params(tmp_path / "train.yaml", tmp_path / "frames", {
        "train": {"batch_size": {"clip": 4, "phase": 2, "video": 2}, "steps": 3, "checkpoint_every": 0}})
    assert hecvl("pretrain", "--params", params, "--pairs", tmp_path / "pairs", "--corpus", corpus,
                 "--out", tmp_path / "model", "--no-progress", "--no-tracking") == 0
    losses = pd.read_csv(tmp_path / "model" / "losses.csv")
    assert len(losses) == 3 and not losses.filter(like="loss").empty
    assert losses.filter(like="loss").notna().all().all()


def test_a_transfer_cut_in_one_run_is_resumed_by_the_next(sources: dict[str, bytes], tmp_path: Path) -> None:
    with VideoServer({"a.mp4": sources["a.mp4"]}) as server:
        server.cut["a.mp4"] = 2
        corpus = tmp_path / "corpus"
        make_lecture(corpus, "lec", 20.0, GOOD_NARRATIONS, video=False, meta={"url": f"{server.url}/a.mp4"})
        assert hecvl("corpus", "download", corpus, "--retries", "0", "--no-progress") == 0
        entry = json.loads((corpus / "downloads.json").read_text())["lectures"]["lec"]
        assert entry["status"] == "interrupted", entry
        part = next((corpus / "lec" / ".download").glob("*.part"))
        kept = part.stat().st_size
        assert 0 < kept < len(sources["a.mp4"])
        assert hecvl("corpus", "download", corpus, "--retries", "0", "--no-progress") == 0
        assert server.fetched("a.mp4")[-1][1] == f"bytes={kept}-"  # resumed from the partial file
        assert sha((corpus / "lec" / "video.mp4").read_bytes()) == sha(sources["a.mp4"])
        entry = json.loads((corpus / "downloads.json").read_text())["lectures"]["lec"]
        assert entry["status"] == "downloaded"


def test_cookies_are_sent_and_the_file_is_left_as_it_was(sources: dict[str, bytes], tmp_path: Path) -> None:
    cookies = tmp_path / "cookies.txt"
    cookie = "\t".join(["127.0.0.1", "FALSE", "/", "FALSE", "4102444800", "session", "secret42"])
    cookies.write_text(f"# Netscape HTTP Cookie File\n{cookie}\n")
    before = cookies.read_bytes()
    with VideoServer({"short.mp4": sources["short.mp4"]}) as server:
        corpus = tmp_path / "corpus"
        make_lecture(corpus, "lec", 6.0, [(0.0, 5.0, "a short lecture")], video=False,
                     meta={"url": f"{server.url}/short.mp4", "expected_duration": 60.0})
        assert hecvl("corpus", "download", corpus, "--cookies", cookies, "--no-progress") == 0
        assert all(r[2] and "session=secret42" in r[2] for r in server.fetched("short.mp4"))
    assert cookies.read_bytes() == before
    assert "secret42" not in (corpus / "downloads.json").read_text()
    assert str(cookies) not in (corpus / "downloads.json").read_text()
    # 6 s where 60 s were expected: another video than the one annotated
    assert hecvl("corpus", "report", corpus, "--out", tmp_path / "r.csv", "--no-progress") == 0
    row = pd.read_csv(tmp_path / "r.csv").iloc[0]
    assert row["status"] == "duration_mismatch" and "expected 60.0 s" in row["error"]


def test_a_malformed_meta_json_stops_before_any_request(
    sources: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with VideoServer({"short.mp4": sources["short.mp4"]}) as server:
        corpus = tmp_path / "corpus"
        make_lecture(corpus, "lec_1", 6.0, [(0.0, 5.0, "fine")], video=False,
                     meta={"url": f"{server.url}/short.mp4"})
        make_lecture(corpus, "lec_2", 6.0, [(0.0, 5.0, "bad")], video=False, meta={"url": 17})
        (corpus / "downloads.json").write_text('{"lectures": {"lec_0": {"status": "downloaded"}}}')
        kept = (corpus / "downloads.json").read_bytes()
        assert hecvl("corpus", "download", corpus, "--no-progress") == 2
        assert not server.requests
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lec_2/meta.json" in err[0] and "url must be a string" in err[0], err
    assert (corpus / "downloads.json").read_bytes() == kept


def test_bad_download_settings_name_the_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = make_lecture(tmp_path / "corpus", "lec", video=False, meta={"url": "http://127.0.0.1:9/x.mp4"})
    assert hecvl("corpus", "download", corpus.parent, "--rate-limit", "fast", "--no-progress") == 2
    err = capsys.readouterr().err
    assert "rate_limit" in err and "fast" in err
    assert not (corpus.parent / "downloads.json").exists()


# --- the DAG: import (SurgLaVi-β schema) -> download from loopback -> acquire -> pair -> pretrain ---------



def surglavi_db(path: Path, base_url: str) -> Path:
    """A SurgLaVi-β database (the authors' schema) of three 20 s videos at loopback URLs, one of them gone."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    con.executemany("INSERT INTO levels VALUES (?, ?)", [(1, "task"), (2, "step"), (3, "phase")])
    videos = [(1, "case a", f"{base_url}/a.mp4"), (2, "case b", f"{base_url}/b.mp4"),
              (3, "case gone", f"{base_url}/gone.mp4")]
    con.executemany("INSERT INTO videos (video_id, name, url, youtube_id, duration, title)"
                    " VALUES (?, ?, ?, '', 20.0, ?)", [(*v, v[1].title()) for v in videos])
    captions, cid = [], 0
    for vid, _name, _url in videos:
        for start, end, text in GOOD_NARRATIONS:
            cid += 1
            captions.append((cid, vid, 2, text, text.capitalize(), start, end, end - start, 1, 1))
        for start, end, step, text in GOOD_KEYSTEPS:
            cid += 1
            captions.append((cid, vid, 1, text, step, start, end, end - start, 1, 1))
        cid += 1
        captions.append((cid, vid, 3, "overview", ABSTRACT, 0.0, 20.0, 20.0, 1, 1))
    con.executemany(
        "INSERT INTO captions (caption_id, video_id, level_id, raw_narration, caption, start_time, end_time,"
        " duration, is_surgical_content, is_descriptive) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", captions)
    con.commit()
    con.close()
    return path


@pytest.mark.workflow
def test_the_public_corpus_preset_imports_downloads_pairs_and_pretrains(
    sources: dict[str, bytes], tmp_path: Path
) -> None:
    import os
    import shutil
    import subprocess
    import sys

    import yaml

    root = Path(__file__).resolve().parents[1]
    bin_dir = Path(sys.executable).parent
    project = tmp_path / "project"
    for name in ("Snakefile", "workflow", "params.yaml", ".dvc/config", ".dvcignore", ".gitignore"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (root / name).is_dir() else shutil.copy2)(root / name, project / name)
    env = {**os.environ, "HECVL_TRACKING": "off", "MLFLOW_DISABLE_TELEMETRY": "true"}

    def run(*cmd: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=900)
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted(project.glob("logs/**/*.log")))
        assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}\n{logs}"
        return proc

    small = yaml.safe_load(Path(write_params(tmp_path / "small.yaml", tmp_path / "frames")).read_text())
    with VideoServer(dict(sources)) as server:
        surglavi_db(project / "data" / "sources" / "surglavi_beta.db", server.url)
        # the preset as a user runs it, with the tests' tiny model and a smoke-sized synthetic world (targets)
        overrides = {
            "preset": "public-corpus",
            "study": {"datasets": ["cholec80"]},
            "data": {"synthetic": {"preset": "smoke"}},
            "model": {**small["model"], "text": {"encoder": "minilm", "pooling": "mean", "freeze": True},
                      "heads": {"dim": 256}},
            "train": {**small["train"], "steps": 3, "epochs": None, "checkpoint_every": 0,
                      "batch_size": {"clip": 4, "phase": 2, "video": 2}},
            "frames": small["frames"], "pairing": small["pairing"],
        }
        (project / "tiny.yaml").write_text(yaml.safe_dump(overrides))
        target = "results/models/hecvl/seed0/model.safetensors"
        snakemake = [str(bin_dir / "snakemake"), target, "--cores", "2", "--configfile", "tiny.yaml"]
        run(*snakemake)
        corpus = project / "data" / "public-corpus"
        entries = json.loads((corpus / "downloads.json").read_text())["lectures"]
        assert {k: e["status"] for k, e in entries.items()} == {
            "case_a": "downloaded", "case_b": "downloaded", "case_gone": "unavailable"}
        assert (project / target).is_file()
        report = (project / "results" / "corpus" / "availability.md").read_text()
        assert "| unavailable | 1 |" in report and "| downloaded | 2 |" in report
        stats = json.loads((project / "data" / "pairs" / "stats.json").read_text())
        assert [e["lecture"] for e in stats["lectures"]["excluded"]] == ["case_gone"]
        inventory = json.loads((project / "data" / "acquired.json").read_text())
        assert inventory["corpus"]["downloads"]["downloaded"] == 2
        # nothing left to do, and no request made to find that out
        before = len(server.requests)
        again = run(*snakemake)
        assert "Nothing to be done" in again.stdout + again.stderr
        assert len(server.requests) == before
    # DVC pins the imported corpus with its videos and manifest; git sees the pointer file
    run("git", "init", "-q")
    run(str(bin_dir / "dvc"), "add", "-q", "data/public-corpus")
    untracked = run("git", "status", "--porcelain", "--untracked-files=all").stdout.splitlines()
    assert "?? data/public-corpus.dvc" in untracked
    assert not [line for line in untracked if "data/public-corpus/" in line]  # DVC's, not git's


def test_the_import_options_are_the_typed_settings_and_flags_override_them(tmp_path: Path) -> None:
    """The importer's options are data.corpus_source's (defined once, in the config); a flag overrides one."""
    import argparse

    from hecvl.config import CorpusSource, load_params
    from hecvl.config.data import SurgAtlasImport, SurgLaViImport
    from hecvl.corpora import corpus_cli
    from hecvl.corpora.import_cli import import_options

    parser = argparse.ArgumentParser()
    corpus_cli.add_arguments(parser)
    plain = parser.parse_args(["import", "surglavi", "x.db", "--out", "o"])
    assert import_options(plain, "surglavi") == SurgLaViImport() == CorpusSource(importer="surglavi",
                                                                                  file="x.db").surglavi
    assert import_options(plain, "surgatlas") == SurgAtlasImport()
    params = tmp_path / "params.yaml"
    source = {"importer": "surglavi", "file": "x.db", "surglavi": {
        "clip_level": "step", "levels": ["step", "task"], "pair_filter": False, "max_duration": 90.5}}
    params.write_text(yaml.safe_dump({"data": {"source": "local", "corpus": "c", "corpus_source": source}}))
    typed = load_params(params).data.corpus_source.surglavi
    from_file = parser.parse_args(["import", "surglavi", "x.db", "--out", "o", "--params", str(params)])
    assert import_options(from_file, "surglavi") == typed
    flagged = parser.parse_args(["import", "surglavi", "x.db", "--out", "o", "--params", str(params),
                                 "--max-duration", "20", "--normalise", "--levels", "task"])
    assert import_options(flagged, "surglavi") == typed.replace(max_duration=20.0, normalise=True,
                                                                levels=["task"])
    with pytest.raises(HecvlError, match=r"data\.corpus_source imports surglavi, not surgatlas"):
        import_options(from_file, "surgatlas")
    preset = load_params(Path(__file__).resolve().parents[1] / "params.yaml", [{"preset": "public-corpus"}])
    assert preset.data.corpus_source.importer == "surglavi" and preset.model.visual.preset == "resnet50"
    default = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    assert default.data.corpus_source is None and default.data.corpus == "data/world/corpus"


@pytest.mark.parametrize(("data", "message"), [
    ({"corpus_source": {"importer": "surglavi"}}, r"data\.corpus_source\.file is required$"),
    ({"corpus_source": {"importer": "surglavi", "file": "x.db"}},
     r"data: corpus 'data/world/corpus' is inside the synthetic world \('data/world'\): import a public"),
    ({"corpus_source": {"importer": "other", "file": "x.db"}},
     r"data\.corpus_source\.importer must be one of"),
    ({"download": {"max_height": 0}}, r"data\.download\.max_height must be > 0, got 0$"),
])
def test_bad_corpus_settings_are_one_line_naming_the_key(data: dict, message: str) -> None:
    from hecvl.config import load_params
    from hecvl.errors import HecvlError

    with pytest.raises(HecvlError, match=message):
        load_params(Path(__file__).resolve().parents[1] / "params.yaml", [{"data": data}])
