"""Lecture corpus: transcript importers, strict loading, and the validator that reports every problem."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from hecvl.cli import main
from hecvl.corpora.corpus import iter_lectures, load_lecture
from hecvl.corpora.transcripts import (
    import_transcript,
    read_keysteps,
    read_narrations,
    read_srt,
    read_webvtt,
)
from hecvl.corpora.validate import summary, validate_corpus
from hecvl.errors import HecvlError

SRT = """1
00:00:00,500 --> 00:00:02,000
Here we see the <i>gallbladder</i>.

2
00:00:02,000 --> 00:00:04,250
We place clips on the
cystic duct &amp; artery.

3
00:00:05,000 --> 00:00:05,500
[music]

"""

VTT = """WEBVTT - lecture 12
Kind: captions

NOTE this is a comment
that spans lines

STYLE
::cue { color: white }

intro
00:00.000 --> 00:01.500 align:start position:10%
<v Surgeon>Let us <c.yellow>begin</c>.</v>

01:00:01.000 --> 01:00:03.000
<00:00:01.500>One hour in.
"""


def _video(path: Path, seconds: int = 4, fps: int = 25) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(seconds * fps):
            container.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), i, np.uint8), format="rgb24"))
            )
        container.mux(stream.encode())
    return path


def _lecture(root: Path, name: str, **files: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for fname, text in files.items():
        (folder / fname.replace("_", ".")).write_text(text, encoding="utf-8")
    return folder


# --- importers -----------------------------------------------------------------------------------


def test_srt_import(tmp_path: Path) -> None:
    path = tmp_path / "talk.srt"
    path.write_text("\ufeff" + SRT, encoding="utf-8")  # with a byte-order mark, as editors write them
    df = read_srt(path)
    assert df["start"].tolist() == [0.5, 2.0, 5.0] and df["end"].tolist() == [2.0, 4.25, 5.5]
    assert df["text"].tolist() == [
        "Here we see the gallbladder.",
        "We place clips on the cystic duct & artery.",
        "[music]",
    ]


def test_webvtt_import(tmp_path: Path) -> None:
    path = tmp_path / "talk.vtt"
    path.write_text(VTT, encoding="utf-8")
    df = read_webvtt(path)
    assert df["start"].tolist() == [0.0, 3601.0] and df["end"].tolist() == [1.5, 3603.0]
    assert df["text"].tolist() == ["Let us begin.", "One hour in."]
    (tmp_path / "x.vtt").write_text("00:00.000 --> 00:01.000\nhi\n", encoding="utf-8")
    with pytest.raises(HecvlError, match="not a WebVTT file"):
        read_webvtt(tmp_path / "x.vtt")


def test_whisper_json_import_and_dispatch(tmp_path: Path) -> None:
    path = tmp_path / "talk.json"
    doc = {
        "text": "...",
        "segments": [
            {"id": 0, "start": 0.0, "end": 3.2, "text": " Hello  there."},
            {"start": 3.2, "end": 5, "text": "Next."},
        ],
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    df = import_transcript(path)
    assert df.to_dict("list") == {"start": [0.0, 3.2], "end": [3.2, 5.0], "text": ["Hello there.", "Next."]}
    with pytest.raises(HecvlError, match=r"unknown transcript format '\.txt'"):
        import_transcript(tmp_path / "talk.txt")


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("a.srt", "1\n00:00:01,000 -> 00:00:02,000\nhi\n", r"line 1: expected a cue with a timing line"),
        ("b.srt", "1\n00:00:01,000 --> 00:0x:02,000\nhi\n", r"line 2: malformed timing line"),
        ("c.srt", "1\n00:00:03,000 --> 00:00:02,000\nhi\n", r"end <= start in 1 cue \(cue 1\)"),
        ("d.srt", "", r"empty transcript: no cue with text"),
        ("e.srt", "1\n00:00:01,000 --> 00:00:02,000\n\n", r"empty transcript"),
        ("f.json", '{"segments": [{"start": 0, "end": 1, "text": "x"}', r"not valid JSON: .* line 1 column"),
        (
            "g.json",
            '{"segments": [{"start": 0, "text": "x"}]}',
            r"segments\[0\]: expected an object with start, end and text",
        ),
        ("h.json", '{"segments": []}', r"empty transcript: no segment with text"),
        ("i.json", '[{"start": 0, "end": 1, "text": "x"}]', r"expected a JSON object with a 'segments' list"),
    ],
)
def test_bad_transcripts(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HecvlError, match=problem) as err:
        import_transcript(path)
    assert err.value.path == path
    with pytest.raises(HecvlError, match="transcript not found"):
        import_transcript(tmp_path / "missing.srt")


# --- narration / keystep CSVs --------------------------------------------------------------------


def test_narration_and_keystep_csv(tmp_path: Path) -> None:
    nar = tmp_path / "narration.csv"
    nar.write_text('start,end,text\n0,3.5,"we open, carefully"\n3.5,7,next\n', encoding="utf-8")
    df = read_narrations(nar)
    assert df["start"].dtype == "float64" and df["text"].tolist() == ["we open, carefully", "next"]
    ks = tmp_path / "keysteps.csv"
    ks.write_text("start,end,step\n0,60,Calot triangle dissection\n", encoding="utf-8")
    steps = read_keysteps(ks)
    assert steps.columns.tolist() == ["start", "end", "step", "text"] and steps["text"].tolist() == [""]
    nar.write_text("start,end,text\n", encoding="utf-8")
    with pytest.raises(HecvlError, match=r"narration.csv: no segments \(empty file\)"):
        read_narrations(nar)
    nar.write_text("begin,end,text\n0,1,x\n", encoding="utf-8")
    with pytest.raises(HecvlError, match=r"missing column.* start: expected the header start,end,text"):
        read_narrations(nar)


# --- lectures and the validator ------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    good = _lecture(
        root,
        "L01",
        narration_csv="start,end,text\n0,2,we start\n2,3.5,the hook\n",
        keysteps_csv="start,end,step,text\n0,3.5,Dissection,the whole thing\n",
        abstract_txt="A laparoscopic cholecystectomy.\n",
        meta_json='{"procedure": "cholecystectomy"}',
    )
    _video(good / "video.mp4")
    _lecture(  # every row fault at once, and no video, keysteps or abstract
        root,
        "L02",
        narration_csv="start,end,text\nzero,1,a\n-1,2,b\n5,4,c\n6,7,\n10,12,d\n8,9,e\n11.5,13,f\n",
    )
    l03 = _lecture(
        root, "L03", narration_csv="start,end,text\n", meta_json="{oops", keysteps_csv="a,b\n1,2\n"
    )
    _video(l03 / "video.mp4", seconds=1)
    _video(l03 / "video.mkv", seconds=1)
    l04 = _lecture(
        root,
        "L04",
        narration_csv="start,end,text\n0,2,x\n3,6,beyond the end\n9,10,after it\n",
        abstract_txt="  \n",
    )
    _video(l04 / "video.mp4", seconds=4)
    _lecture(root, "L05", video_txt="not a video")
    l06 = _lecture(
        root,
        "L06",
        narration_csv="start,end,text\n0,1,x\n",
        keysteps_csv="start,end,step\n",
        abstract_txt="A.",
    )
    (l06 / "video.mp4").write_bytes(_video(tmp_path / "v.mp4").read_bytes()[:600])  # truncated download
    (root / ".cache").mkdir()  # hidden: not a lecture
    return root


def test_load_lecture(corpus: Path) -> None:
    lecture = load_lecture(corpus / "L01")
    assert lecture.id == "L01" and lecture.video.name == "video.mp4"
    assert lecture.narrations["text"].tolist() == ["we start", "the hook"]
    assert lecture.keysteps["step"].tolist() == ["Dissection"] and lecture.keysteps["text"].tolist() == [
        "the whole thing"
    ]
    assert lecture.abstract == "A laparoscopic cholecystectomy." and lecture.meta == {
        "procedure": "cholecystectomy"
    }
    with pytest.raises(HecvlError, match=r"L02: no video file video\.\{mp4/mkv/webm/avi/mov\}"):
        load_lecture(corpus / "L02")
    with pytest.raises(HecvlError, match=r"L03: several video files \(video.mkv, video.mp4\)"):
        load_lecture(corpus / "L03")
    (corpus / "L03" / "video.mkv").unlink()
    with pytest.raises(HecvlError, match=r"L03/narration.csv: no segments \(empty file\)"):
        load_lecture(corpus / "L03")
    with pytest.raises(HecvlError, match="L02: no video file"):
        list(iter_lectures(corpus))


def test_validate_reports_every_problem(corpus: Path) -> None:
    problems = validate_corpus(corpus)
    lines = [str(p) for p in problems]
    by = [(p.lecture, p.path.name, p.severity, p.message) for p in problems]
    expected_errors = [
        ("L02", "L02", "no video file"),
        ("L02", "narration.csv", "start is not a number"),
        ("L02", "narration.csv", "start is negative"),
        ("L02", "narration.csv", "end <= start"),
        ("L02", "narration.csv", "empty text"),
        ("L03", "L03", "several video files"),
        ("L03", "narration.csv", "no segments (empty file)"),
        (
            "L03",
            "keysteps.csv",
            "missing column(s) start, end, step: expected the header start,end,step,[text]",
        ),
        (
            "L03",
            "meta.json",
            "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        ("L04", "narration.csv", "segments start after the video ends (4.0 s)"),
        ("L05", "L05", "no video file video.{mp4/mkv/webm/avi/mov} (found video.txt: unsupported extension)"),
        ("L05", "narration.csv", "file not found"),
        ("L06", "video.mp4", "cannot read the video: "),
    ]
    for lecture, fname, message in expected_errors:
        assert any(
            p[0] == lecture and p[1] == fname and p[2] == "error" and p[3].startswith(message) for p in by
        ), (
            lecture,
            fname,
            message,
            lines,
        )
    expected_warnings = [
        ("L02", "narration.csv", "segments out of order"),
        ("L02", "narration.csv", "segments overlap the previous one"),
        ("L02", "keysteps.csv", "no keysteps.csv"),
        ("L02", "abstract.txt", "no abstract.txt"),
        ("L04", "narration.csv", "segments end after the video (4.0 s), to be clipped"),
        ("L04", "abstract.txt", "the abstract is empty"),
        ("L06", "keysteps.csv", "no segments (empty file)"),
    ]
    for lecture, fname, message in expected_warnings:
        assert any(
            p[0] == lecture and p[1] == fname and p[2] == "warning" and p[3].startswith(message) for p in by
        ), (
            lecture,
            fname,
            message,
            lines,
        )
    assert not [p for p in problems if p.lecture == "L01"]
    assert all("\n" not in line for line in lines)
    assert "rows (row 1, 2, 3)" not in " ".join(lines)  # each fault names only its own rows
    assert any("end <= start in 1 row (row 3)" in line for line in lines)
    assert any(
        "segments out of order (start before the previous start) in 1 row (row 6)" in line for line in lines
    )
    assert any("segments overlap the previous one in 1 row (row 7)" in line for line in lines)
    errors = sum(p.severity == "error" for p in problems)
    assert (
        summary(problems, 6)
        == f"6 lecture(s): {errors} error(s) in 5 lecture(s), {len(problems) - errors} warning(s)"
    )


def test_cli_validate_and_import(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["corpus", "validate", str(corpus), "--no-probe"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("6 lecture(s): ") and any(line.startswith("error: L02: ") for line in out)
    good = tmp_path / "good"
    good.mkdir()
    (corpus / "L01").rename(good / "L01")
    assert main(["corpus", "validate", str(good)]) == 0
    assert capsys.readouterr().out.strip() == "1 lecture(s): 0 error(s) in 0 lecture(s), 0 warning(s)"

    srt = tmp_path / "talk.srt"
    srt.write_text(SRT, encoding="utf-8")
    out_csv = good / "L01" / "narration.csv"
    assert main(["corpus", "import", str(srt), "--out", str(out_csv)]) == 0
    assert out_csv.read_text(encoding="utf-8").splitlines()[:2] == [
        "start,end,text",
        "0.5,2.0,Here we see the gallbladder.",
    ]
    assert len(load_lecture(good / "L01").narrations) == 3
    before = out_csv.read_bytes()
    srt.write_text("1\n00:00:03,000 --> 00:00:02,000\nbackwards\n", encoding="utf-8")
    assert main(["corpus", "import", str(srt), "--out", str(out_csv)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"hecvl corpus: error: {srt}: end <= start in 1 cue (cue 1)"
    assert out_csv.read_bytes() == before  # the existing narration is untouched
    assert main(["corpus", "validate", str(tmp_path / "nowhere")]) == 2
    assert "lecture corpus folder not found" in capsys.readouterr().err
