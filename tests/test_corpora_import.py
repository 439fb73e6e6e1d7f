"""`hecvl corpus import surglavi|surgatlas` and `hecvl corpus inspect` on fixtures written here in the
corpora's schemas: files and manifests, determinism, filters, level choice, bad files, and that the
imported folder validates and pairs once real videos are put in."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from corpora_helpers import SCHEMA
from pairing_helpers import make_video, run_pair

from hecvl.cli import main
from hecvl.io import sha256_file

# --- SurgLaVi-beta fixture: the tables and columns of the authors' schema --------------------------

# Level ids do not follow the span order on purpose: 2 is the finest, 1 the middle, 3 the coarsest.
LEVELS = [(1, "task"), (2, "step"), (3, "phase")]
VIDEOS = [  # video_id, name, youtube_id, url, duration, description, procedure_type
    (1, "Lap Chole: case #1", "dQw4w9WgXcQ", None, 20.0, "Uploaded by a surgeon.", "cholecystectomy"),
    (2, "case-2", "https://youtu.be/abcdefghijk", None, 20.0, "", "gastrectomy"),
    (3, "no captions", "zzzzzzzzzzz", None, 30.0, None, None),
    (4, "no url", None, None, 20.0, None, None),
    (5, "Lap Chole, case 1", "", "https://example.org/v5.mp4", None, "Second upload.", None),
]
# caption_id, video_id, level_id, raw_narration, caption, start, end, duration, surgical, descriptive
CAPTIONS = [
    (
        1,
        1,
        2,
        "we open the peritoneum with the hook",
        "The surgeon opens the peritoneum.",
        0.5,
        3.0,
        2.5,
        1,
        1,
    ),
    (2, 1, 2, "now the grasper holds the gallbladder", "The gallbladder is grasped.", 3.0, 5.5, 2.5, 1, 1),
    (3, 1, 2, "um so as you can see", "Chatter.", 6.0, 8.5, 2.5, 1, 0),
    (4, 1, 2, "the camera is being cleaned", "Camera cleaning.", 9.0, 11.0, 2.0, 0, 1),
    (5, 1, 2, "the clip applier places two clips", "Two clips are applied.", 12.0, 14.5, 2.5, 1, 1),
    (6, 1, 2, "scissors divide the cystic duct", "The duct is divided.", 15.0, 17.5, 2.5, 1, 1),
    (7, 1, 2, None, "A caption without narration.", 18.0, 19.0, 1.0, 1, 1),
    (8, 1, 1, "opening talk", "Dissection of the triangle of Calot.", 0.0, 6.0, 6.0, 1, 1),
    (9, 1, 1, "clipping talk", "Clipping of the cystic duct and artery.", 12.0, 18.0, 6.0, 1, 1),
    (10, 1, 3, "whole video talk", "A laparoscopic cholecystectomy.", 0.0, 20.0, 20.0, 1, 1),
    (11, 1, 3, "too long", "A span longer than the authors' maximum.", 0.0, 600.0, 600.0, 1, 1),
    (12, 2, 2, "the stapler fires across the stomach", "The stomach is stapled.", 2.0, 6.0, 4.0, 1, 1),
    (13, 2, 2, "we check the staple line", "The staple line is checked.", 8.0, 10.5, 2.5, 1, 1),
    (14, 2, 1, "stapling talk", "Stapling of the stomach.", 1.0, 11.0, 10.0, 1, 1),
    (15, 4, 2, "a video nobody can fetch", "Unfetchable.", 1.0, 4.0, 3.0, 1, 1),
    (16, 5, 2, "the second upload begins", "It begins.", 1.0, 4.0, 3.0, 1, 1),
    (17, 5, 3, "second upload overview", "An overview of the second upload.", 0.0, 15.0, 15.0, 1, 1),
]


def make_surglavi(path: Path, captions=CAPTIONS, schema: str = SCHEMA) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(schema)
    con.executemany("INSERT INTO levels VALUES (?, ?)", LEVELS)
    con.executemany(
        "INSERT INTO videos (video_id, name, youtube_id, url, duration, description, procedure_type, title)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*v, f"Title {v[0]}") for v in VIDEOS],
    )
    con.executemany(
        "INSERT INTO captions (caption_id, video_id, level_id, raw_narration, caption, start_time, end_time,"
        " duration, is_surgical_content, is_descriptive) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        captions,
    )
    con.execute("INSERT INTO transcriptions VALUES (1, 1, 'transcriptions/v1.json', 'we open ...')")
    con.commit()
    con.close()
    return path


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch):
    monkeypatch.setenv("HECVL_TRACKING", "off")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_surglavi(tmp_path / "src" / "surglavi_beta.db")


def surglavi(db: Path, out: Path, *options: str) -> int:
    return main(["corpus", "import", "surglavi", str(db), "--out", str(out), *options])


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_surglavi_default_import(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "corpus"
    assert surglavi(db, out) == 0
    printed = capsys.readouterr().out
    # Per level: the caption count and median span, whatever the level ids, and the role it was given.
    assert "level 2 'step': 11 captions, median span 2.5 s -> narration.csv" in printed
    assert "level 1 'task': 3 captions, median span 6 s -> keysteps.csv" in printed
    assert "level 3 'phase': 3 captions, median span 20 s -> abstract.txt" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "Lap_Chole_case_1-1",
        "Lap_Chole_case_1-5",
        "case-2",
        "import.json",
    ]
    lec = out / "Lap_Chole_case_1-1"
    assert lines(lec / "narration.csv") == [
        "start,end,text",
        "0.5,3.0,we open the peritoneum with the hook",
        "3.0,5.5,now the grasper holds the gallbladder",
        "12.0,14.5,the clip applier places two clips",
        "15.0,17.5,scissors divide the cystic duct",
    ]  # 3 not descriptive, 4 not surgical, 7 has no raw narration
    assert lines(lec / "keysteps.csv") == [
        "start,end,step,text",
        "0.0,6.0,Dissection of the triangle of Calot.,",
        "12.0,18.0,Clipping of the cystic duct and artery.,",
    ]
    assert (lec / "abstract.txt").read_text() == "A laparoscopic cholecystectomy.\n"  # 600 s span dropped
    meta = json.loads((lec / "meta.json").read_text())
    assert (
        meta["url"] == "https://www.youtube.com/watch?v=dQw4w9WgXcQ" and meta["youtube_id"] == "dQw4w9WgXcQ"
    )
    assert meta["expected_duration"] == 20.0 and meta["licence"] == "CC BY-NC-SA 4.0"
    assert "non-commercial" in meta["licence_note"]
    assert meta["source"] == {
        "corpus": "SurgLaVi-beta",
        "file": "surglavi_beta.db",
        "sha256": sha256_file(db),
    }
    assert meta["ids"] == {"video_id": 1, "video_name": "Lap Chole: case #1"}
    assert meta["abstract_derived"] is True and meta["levels"]["abstract.txt"]["level"] == "phase"
    assert meta["levels"]["narration.csv"] == {
        "level": "step",
        "level_id": 2,
        "text": "raw_narration",
        "segments": 4,
    }
    assert meta["levels"]["keysteps.csv"]["level"] == "task"
    assert meta["filters"] == {
        "min_duration": 0.0,
        "max_duration": 500.0,
        "levels": "all",
        "require_descriptive_and_surgical": True,
    }
    assert meta["procedure"] == "cholecystectomy" and meta["transcription_files"] == [
        "transcriptions/v1.json"
    ]
    # A full link in youtube_id gives the bare id; a non-YouTube url is kept as it is.
    assert json.loads((out / "case-2" / "meta.json").read_text())["youtube_id"] == "abcdefghijk"
    other = json.loads((out / "Lap_Chole_case_1-5" / "meta.json").read_text())
    assert other["url"] == "https://example.org/v5.mp4" and "youtube_id" not in other
    assert "expected_duration" not in other
    record = json.loads((out / "import.json").read_text())
    assert record["videos"] == {
        "in_source": 5,
        "imported": 3,
        "merged": 0,
        "dropped": {"no_clip_captions": 1, "no_url": 1},
    }
    assert record["duplicate_youtube_ids"] == {"count": 0, "ids": {}}
    assert record["roles"] == {"narration.csv": "step", "keysteps.csv": "task", "abstract.txt": "phase"}
    step = record["levels"]["step"]
    assert step["dropped"] == {
        "not_descriptive": 1,
        "not_surgical_content": 1,
        "empty_text": 1,
        "video_dropped": 1,
    }
    for level in record["levels"].values():  # every caption is either kept or dropped for one reason
        assert level["kept"] + sum(level["dropped"].values()) == level["captions"]
    assert record["levels"]["phase"]["dropped"] == {"duration_max": 1}
    assert record["lecture_ids_differing_from_name"] == {"1": "Lap_Chole_case_1-1", "5": "Lap_Chole_case_1-5"}


def test_surglavi_reimport_is_byte_identical_and_keeps_videos(db: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert surglavi(db, first) == 0 and surglavi(db, second) == 0
    assert tree(first) == tree(second)
    lec = first / "case-2"
    make_video(lec / "video.mp4", 2.0)
    video = (lec / "video.mp4").read_bytes()
    (lec / "keysteps.csv").write_text("start,end,step\n0,1,stale\n")  # an edited text file is rewritten
    before = (lec / "narration.csv").stat().st_mtime_ns
    assert surglavi(db, first) == 0
    assert (lec / "video.mp4").read_bytes() == video
    assert (lec / "narration.csv").stat().st_mtime_ns == before  # unchanged bytes are not rewritten
    assert {k: v for k, v in tree(first).items() if not k.endswith("video.mp4")} == tree(second)
    # A narrower re-import removes the text files a level no longer feeds, never the video.
    assert surglavi(db, first, "--phase-level", "none", "--abstract", "none") == 0
    assert sorted(p.name for p in lec.iterdir()) == ["meta.json", "narration.csv", "video.mp4"]


def test_surglavi_reimport_leaves_lectures_it_no_longer_has(db: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "corpus"
    assert surglavi(db, out) == 0
    make_video(out / "case-2" / "video.mp4", 2.0)
    con = sqlite3.connect(db)  # a newer release without video 2's captions
    con.execute("DELETE FROM captions WHERE video_id = 2")
    con.commit()
    con.close()
    assert surglavi(db, out) == 0
    assert (out / "case-2" / "video.mp4").is_file() and (out / "case-2" / "narration.csv").is_file()
    assert "1 lecture folder(s) from an earlier SurgLaVi-beta import are not in this one" in caplog.text
    assert "(case-2)" in caplog.text


@pytest.mark.parametrize(
    ("options", "level", "kept", "dropped"),
    [
        (
            [],
            "step",
            7,
            {"not_descriptive": 1, "not_surgical_content": 1, "empty_text": 1, "video_dropped": 1},
        ),
        (["--no-pair-filter"], "step", 9, {"empty_text": 1, "video_dropped": 1}),
        (["--min-duration", "2.5"], "step", 2, {"duration_min": 8, "video_dropped": 1}),
        (["--max-duration", "15"], "phase", 1, {"duration_max": 2}),
        (["--max-duration", "1000"], "phase", 3, {}),
        (["--levels", "step", "task"], "phase", 0, {"level_not_selected": 3}),
    ],
)
def test_surglavi_filters(
    db: Path, tmp_path: Path, options: list[str], level: str, kept: int, dropped: dict
) -> None:
    out = tmp_path / "corpus"
    assert surglavi(db, out, *options) == 0
    entry = json.loads((out / "import.json").read_text())["levels"][level]
    assert (entry["kept"], entry["dropped"]) == (kept, dropped)


def test_surglavi_level_and_text_choices(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "c1"
    assert surglavi(db, out, "--clip-text", "caption", "--phase-level", "3", "--abstract", "description") == 0
    lec = out / "Lap_Chole_case_1-1"
    assert lines(lec / "narration.csv")[1:3] == [
        "0.5,3.0,The surgeon opens the peritoneum.",
        "3.0,5.5,The gallbladder is grasped.",
    ]
    assert lines(lec / "keysteps.csv") == ["start,end,step,text", "0.0,20.0,A laparoscopic cholecystectomy.,"]
    assert (lec / "abstract.txt").read_text() == "Uploaded by a surgeon.\n"
    meta = json.loads((lec / "meta.json").read_text())
    assert (
        meta["levels"]["abstract.txt"]["column"] == "videos.description" and meta["abstract_derived"] is True
    )
    assert not (out / "case-2" / "abstract.txt").exists()  # empty description: no abstract
    # --normalise: lower case, punctuation and a leading "the surgeon" dropped.
    out = tmp_path / "c2"
    assert (
        surglavi(
            db,
            out,
            "--clip-text",
            "caption",
            "--normalise",
            "--phase-level",
            "none",
            "--abstract",
            "none",
            "--id-from",
            "video_id",
        )
        == 0
    )
    assert lines(out / "video_1" / "narration.csv")[1] == "0.5,3.0,opens the peritoneum."
    assert not (out / "video_1" / "keysteps.csv").exists() and not (out / "video_1" / "abstract.txt").exists()
    assert json.loads((out / "video_1" / "meta.json").read_text())["abstract_derived"] is False


def test_surglavi_import_reads_its_options_from_params(db: Path, tmp_path: Path) -> None:
    """`--params`: data.corpus_source.surglavi is what the import applies and records; a flag overrides it."""
    params = tmp_path / "params.yaml"
    options = {"max_duration": 15.0, "id_from": "video_id"}
    source = {"importer": "surglavi", "file": str(db), "surglavi": options}
    params.write_text(yaml.safe_dump({"data": {"source": "local", "corpus": "c", "corpus_source": source}}))
    out = tmp_path / "corpus"
    assert surglavi(db, out, "--params", str(params)) == 0
    record = json.loads((out / "import.json").read_text())
    assert (record["options"]["max_duration"], record["options"]["id_from"]) == (15.0, "video_id")
    assert record["levels"]["phase"]["dropped"] == {"duration_max": 2} and (out / "video_1").is_dir()
    out = tmp_path / "flagged"
    assert surglavi(db, out, "--params", str(params), "--max-duration", "1000") == 0
    record = json.loads((out / "import.json").read_text())
    assert (record["options"]["max_duration"], record["options"]["id_from"]) == (1000.0, "video_id")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--phase-level", "stage"],
            "phase level 'stage' is not in table levels (levels: 1 'task', 2 'step'",
        ),
        (["--phase-level", "step"], "the phase level and the clip level are both 2 'step'"),
        (["--levels", "step", "--phase-level", "task"], "the keysteps.csv level 1 'task' is not among"),
    ],
)
def test_surglavi_bad_level_choice(db: Path, tmp_path: Path, options, message, capsys) -> None:
    assert surglavi(db, tmp_path / "out", *options) == 2
    err = capsys.readouterr().err
    assert str(db) in err and message in err


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        ("DROP TABLE levels", "missing table levels (tables found: captions, transcriptions, videos)"),
        ("column end_time", "table captions: missing column(s) end_time (columns found: caption_id"),
        ("column youtube_id", "table videos: missing column(s) youtube_id"),
        (
            "UPDATE captions SET end_time = 2.0 WHERE caption_id = 5",
            "table captions, caption_id 5: end_time 2.0 <= start_time 12.0",
        ),
        (
            "UPDATE captions SET start_time = 'soon' WHERE caption_id = 9",
            "table captions, caption_id 9: start_time is not a number ('soon')",
        ),
        (
            "UPDATE captions SET is_descriptive = 'maybe' WHERE caption_id = 2",
            "table captions, caption_id 2: is_descriptive is not a boolean 0/1 ('maybe')",
        ),
        (
            "UPDATE captions SET level_id = 7 WHERE caption_id = 3",
            "caption_id 3: level_id 7 is not in table levels",
        ),
        (
            "UPDATE captions SET video_id = 9 WHERE caption_id = 3",
            "caption_id 3: video_id 9 is not in table videos",
        ),
    ],
)
def test_surglavi_bad_database(db: Path, tmp_path: Path, mutate: str, message: str, capsys) -> None:
    if mutate.startswith("column "):
        table = "videos" if mutate.endswith("youtube_id") else "captions"
        con = sqlite3.connect(db)
        con.execute(f"ALTER TABLE {table} DROP COLUMN {mutate.split()[1]}")
        con.commit()
        con.close()
    else:
        con = sqlite3.connect(db)
        con.execute(mutate)
        con.commit()
        con.close()
    out = tmp_path / "out"
    assert surglavi(db, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"hecvl corpus: error: {db}: ") and message in err, err
    assert not out.exists()  # nothing written from a bad source


def test_surglavi_not_a_database(tmp_path: Path, capsys) -> None:
    fake = tmp_path / "surglavi_beta.db"
    fake.write_text("video_id,name\n1,a\n")
    assert surglavi(fake, tmp_path / "out") == 2
    assert "not an SQLite database" in capsys.readouterr().err
    assert surglavi(tmp_path / "nowhere.db", tmp_path / "out") == 2
    assert "SurgLaVi database not found" in capsys.readouterr().err


def put_videos(corpus: Path, seconds: float = 20.0) -> None:
    for lecture in sorted(p for p in corpus.iterdir() if p.is_dir()):
        make_video(lecture / "video.mp4", seconds)


def test_surglavi_import_validates_and_pairs(db: Path, tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "corpus"
    assert surglavi(db, corpus) == 0
    put_videos(corpus)
    capsys.readouterr()
    assert main(["corpus", "validate", str(corpus)]) == 0, capsys.readouterr().out
    out = tmp_path / "pairs"
    assert run_pair(corpus, out) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert {lv: stats["levels"][lv]["pairs"] > 0 for lv in ("clip", "phase", "video")} == {
        "clip": True,
        "phase": True,
        "video": True,
    }


def test_surglavi_drops_exact_duplicate_captions(tmp_path: Path, capsys) -> None:
    again = [
        (18, *CAPTIONS[0][1:]),
        (19, 1, 1, "opening talk, again", "Dissection of the triangle of Calot.", 0.0, 6.0, 6.0, 1, 1),
        (20, 1, 2, "we open the peritoneum with the hook", "Other caption.", 0.5, 3.0, 2.5, 1, 1),
        (21, 1, 2, "we open the peritoneum with the hook", "Later.", 0.5, 3.5, 3.0, 1, 1),  # other end
    ]
    db = make_surglavi(tmp_path / "surglavi_beta.db", CAPTIONS + again)
    out = tmp_path / "corpus"
    assert surglavi(db, out) == 0
    # 18 repeats 1 and 20 repeats 1's written text (raw_narration) on the same span; 19 repeats 8's
    # keysteps text (caption) on the same span: each is dropped once, at import. 21 ends later: kept.
    assert "kept 8 (dropped: not_descriptive 1, not_surgical_content 1, empty_text 1, duplicate 2," in (
        capsys.readouterr().out
    )
    lec = out / "Lap_Chole_case_1-1"
    assert lines(lec / "narration.csv")[1:3] == [
        "0.5,3.0,we open the peritoneum with the hook",
        "0.5,3.5,we open the peritoneum with the hook",
    ]
    assert lines(lec / "keysteps.csv")[1:] == [
        "0.0,6.0,Dissection of the triangle of Calot.,",
        "12.0,18.0,Clipping of the cystic duct and artery.,",
    ]
    levels = json.loads((out / "import.json").read_text())["levels"]
    assert (levels["step"]["dropped"]["duplicate"], levels["task"]["dropped"]) == (2, {"duplicate": 1})
    for level in levels.values():
        assert level["kept"] + sum(level["dropped"].values()) == level["captions"]


def test_surglavi_sub_millisecond_caption_keeps_end_after_start(tmp_path: Path, capsys) -> None:
    tiny = (18, 1, 2, "a blink", "A blink.", 19.5001, 19.5004, None, 1, 1)
    db = make_surglavi(tmp_path / "surglavi_beta.db", [*CAPTIONS, tiny])
    corpus = tmp_path / "corpus"
    assert surglavi(db, corpus) == 0
    # Millisecond rounding would write 19.5,19.5; the row keeps every digit instead.
    assert lines(corpus / "Lap_Chole_case_1-1" / "narration.csv")[-1] == "19.5001,19.5004,a blink"
    assert lines(corpus / "case-2" / "narration.csv")[1] == "2.0,6.0,the stapler fires across the stomach"
    put_videos(corpus)
    capsys.readouterr()
    assert main(["corpus", "validate", str(corpus)]) == 0, capsys.readouterr().out


@pytest.mark.parametrize(
    ("blob", "written", "error"),
    [
        ("gefäß öffnen".encode(), "gefäß öffnen", None),
        (
            b"cut \xff here",
            None,
            "table captions, caption_id 2: raw_narration is a BLOB that is not valid UTF-8 (byte 4",
        ),
    ],
    ids=["utf8", "not_utf8"],
)
def test_surglavi_blob_text(tmp_path: Path, blob: bytes, written, error, capsys) -> None:
    db = make_surglavi(tmp_path / "surglavi_beta.db")
    con = sqlite3.connect(db)
    con.execute("UPDATE captions SET raw_narration = ? WHERE caption_id = 2", (blob,))
    con.execute("UPDATE videos SET title = ? WHERE video_id = 1", ("Titel ä".encode(),))
    con.commit()
    con.close()
    out = tmp_path / "corpus"
    if error is None:
        assert surglavi(db, out) == 0
        lec = out / "Lap_Chole_case_1-1"
        assert lines(lec / "narration.csv")[2] == f"3.0,5.5,{written}"
        assert json.loads((lec / "meta.json").read_text())["title"] == "Titel ä"
    else:
        assert surglavi(db, out) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith(f"hecvl corpus: error: {db}: ") and error in err, err
        assert not out.exists()


def test_surglavi_same_youtube_id_is_one_lecture(tmp_path: Path, caplog, capsys) -> None:
    db = make_surglavi(tmp_path / "surglavi_beta.db")
    con = sqlite3.connect(db)  # video 6: a second row for video 1's YouTube video (as a full link)
    con.execute(
        "INSERT INTO videos (video_id, name, youtube_id, duration) VALUES "
        "(6, 'chole again', 'https://www.youtube.com/watch?v=dQw4w9WgXcQ', 20.0)"
    )
    con.executemany(
        "INSERT INTO captions (caption_id, video_id, level_id, raw_narration, caption, start_time, end_time,"
        " duration, is_surgical_content, is_descriptive) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (30, 6, 2, "we open the peritoneum with the hook", "Same as caption 1.", 0.5, 3.0, 2.5, 1, 1),
            (31, 6, 2, "the cystic artery is clipped", "New.", 17.5, 19.0, 1.5, 1, 1),
        ],
    )
    con.execute("INSERT INTO transcriptions VALUES (2, 6, 'transcriptions/v6.json', '...')")
    con.commit()
    con.close()
    out = tmp_path / "corpus"
    assert surglavi(db, out) == 0
    assert "merged into a lecture of the same YouTube id: 1)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "Lap_Chole_case_1-1",
        "Lap_Chole_case_1-5",
        "case-2",
    ]
    lec = out / "Lap_Chole_case_1-1"
    assert lines(lec / "narration.csv")[1:] == [
        "0.5,3.0,we open the peritoneum with the hook",  # caption 30 repeats it: dropped as a duplicate
        "3.0,5.5,now the grasper holds the gallbladder",
        "12.0,14.5,the clip applier places two clips",
        "15.0,17.5,scissors divide the cystic duct",
        "17.5,19.0,the cystic artery is clipped",
    ]
    meta = json.loads((lec / "meta.json").read_text())
    assert meta["ids"] == {"video_id": 1, "video_name": "Lap Chole: case #1", "merged_video_ids": [6]}
    assert meta["transcription_files"] == ["transcriptions/v1.json", "transcriptions/v6.json"]
    record = json.loads((out / "import.json").read_text())
    assert record["duplicate_youtube_ids"] == {"count": 1, "ids": {"dQw4w9WgXcQ": [1, 6]}}
    assert record["videos"] == {
        "in_source": 6,
        "imported": 3,
        "merged": 1,
        "dropped": {"no_clip_captions": 1, "no_url": 1},
    }
    assert record["levels"]["step"]["dropped"]["duplicate"] == 1
    assert "1 YouTube id(s) given by several videos" in caplog.text
    assert "dQw4w9WgXcQ (video_id 1, 6)" in caplog.text


# --- SurgAtlas: the default map's shape, and a flat JSON Lines shape through a custom map ----------


def atlas_default(path: Path) -> Path:
    """One file in the shape the shipped map guesses: {"videos": [{..., segments, phases, steps}]}."""
    videos = [
        {
            "video_id": "sa_001",
            "youtube_id": "AAAAAAAAAAA",
            "title": "Lap chole",
            "procedure": "cholecystectomy",
            "duration": 20.0,
            "description": "A laparoscopic cholecystectomy in a 50-year-old patient.",
            "segments": [
                {"start": 12.0, "end": 15.5, "caption": "Clips are placed on the cystic duct."},
                {"start": 0.5, "end": 4.0, "caption": "The peritoneum is opened with the hook."},
                {"start": 5.0, "end": 9.0, "caption": "The gallbladder is retracted."},
                {"start": 16.0, "end": 19.0, "caption": "  "},
            ],
            "phases": [
                {
                    "start": 0.0,
                    "end": 10.0,
                    "name": "Dissection",
                    "description": "Calot's triangle is dissected.",
                },
                {"start": 10.0, "end": 20.0, "description": "The duct is clipped and cut."},
            ],
            "steps": [{"start": 12.0, "end": 15.5, "name": "Clipping", "description": "clip the duct"}],
        },
        {
            "video_id": "sa_002",
            "url": "https://www.youtube.com/watch?v=BBBBBBBBBBB&t=3",
            "segments": [{"start": 1, "end": 4, "caption": "Port placement."}],
        },
        {"video_id": "sa_003", "segments": [{"start": 1, "end": 4, "caption": "No link anywhere."}]},
        {"video_id": "sa_004", "youtube_id": "CCCCCCCCCCC", "segments": []},
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "1.0", "videos": videos}, indent=1), encoding="utf-8")
    return path


def atlas(path: Path, out: Path, *options: str) -> int:
    return main(["corpus", "import", "surgatlas", str(path), "--out", str(out), *options])


def test_surgatlas_default_map(tmp_path: Path, capsys) -> None:
    src = atlas_default(tmp_path / "ann" / "surgatlas.json")
    out = tmp_path / "corpus"
    assert atlas(src, out) == 0
    printed = capsys.readouterr().out
    assert "segments: 6 items -> narration.csv; kept 4 (dropped: empty_text 1, video_dropped 1)" in printed
    assert sorted(p.name for p in out.iterdir()) == ["import.json", "sa_001", "sa_002"]
    lec = out / "sa_001"
    assert lines(lec / "narration.csv") == [
        "start,end,text",
        "0.5,4.0,The peritoneum is opened with the hook.",
        "5.0,9.0,The gallbladder is retracted.",
        "12.0,15.5,Clips are placed on the cystic duct.",
    ]
    assert lines(lec / "keysteps.csv") == [
        "start,end,step,text",
        "0.0,10.0,Dissection,Calot's triangle is dissected.",
        "10.0,20.0,The duct is clipped and cut.,",
    ]
    assert (lec / "abstract.txt").read_text() == "A laparoscopic cholecystectomy in a 50-year-old patient.\n"
    meta = json.loads((lec / "meta.json").read_text())
    assert (meta["url"], meta["youtube_id"], meta["expected_duration"]) == (
        "https://www.youtube.com/watch?v=AAAAAAAAAAA",
        "AAAAAAAAAAA",
        20.0,
    )
    assert meta["licence"] == "CC BY 4.0 (annotations)" and meta["abstract_derived"] is False
    assert meta["source"] == {"corpus": "SurgAtlas", "file": "surgatlas.json", "sha256": sha256_file(src)}
    assert meta["map"]["file"] == "surgatlas_map.yaml"
    assert json.loads((out / "sa_002" / "meta.json").read_text())["youtube_id"] == "BBBBBBBBBBB"
    record = json.loads((out / "import.json").read_text())
    assert record["videos"] == {"in_source": 4, "imported": 2, "dropped": {"no_segments": 1, "no_url": 1}}
    again = tmp_path / "again"
    assert atlas(src, again) == 0 and tree(out) == tree(again)
    assert atlas(src, tmp_path / "steps", "--keysteps", "steps") == 0
    assert lines(tmp_path / "steps" / "sa_001" / "keysteps.csv")[1:] == ["12.0,15.5,Clipping,clip the duct"]
    put_videos(out)
    capsys.readouterr()
    assert main(["corpus", "validate", str(out)]) == 0, capsys.readouterr().out
    assert run_pair(out, tmp_path / "pairs") == 0


FLAT_MAP = """
records: .
times: milliseconds
video:
  id: clip.video
  url: clip.link?
  title: clip.title?
  abstract: summary?
segments:
  list: .
  where: {kind: segment}
  start: span.from
  end: span.to
  text: said
phases:
  list: .
  where: {kind: phase}
  start: span.from
  end: span.to
  title: label
  text: said?
"""


def atlas_flat(path: Path) -> Path:
    """A different shape: JSON Lines, one record per item, mixed kinds, times in ms or clock strings."""
    rows = [
        {
            "kind": "video",
            "clip": {"video": 7, "link": "https://youtu.be/DDDDDDDDDDD", "title": "Sleeve"},
            "summary": "A sleeve gastrectomy.",
        },
        {
            "kind": "segment",
            "clip": {"video": 7},
            "span": {"from": 1500, "to": 4000},
            "said": "we divide the omentum",
        },
        {
            "kind": "segment",
            "clip": {"video": 7},
            "span": {"from": "00:00:05.0", "to": "00:00:09.5"},
            "said": "the stapler is fired",
        },
        {"kind": "phase", "clip": {"video": 7}, "span": {"from": 0, "to": 12000}, "label": "Stapling"},
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_surgatlas_custom_map_on_another_shape(tmp_path: Path) -> None:
    src = atlas_flat(tmp_path / "flat" / "part-0.jsonl")
    fmap = tmp_path / "flat_map.yaml"
    fmap.write_text(FLAT_MAP)
    out = tmp_path / "corpus"
    assert atlas(src.parent, out, "--map", str(fmap)) == 0
    lec = out / "7"
    assert lines(lec / "narration.csv") == [
        "start,end,text",
        "1.5,4.0,we divide the omentum",
        "5.0,9.5,the stapler is fired",
    ]
    assert lines(lec / "keysteps.csv") == ["start,end,step,text", "0.0,12.0,Stapling,"]
    assert (lec / "abstract.txt").read_text() == "A sleeve gastrectomy.\n"
    meta = json.loads((lec / "meta.json").read_text())
    assert meta["youtube_id"] == "DDDDDDDDDDD" and meta["source"]["file"] == "part-0.jsonl"
    assert meta["map"] == {"file": "flat_map.yaml", "sha256": sha256_file(fmap)}
    # The default map does not fit this shape: the first record says which field is missing.
    assert atlas(src.parent, tmp_path / "x") == 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["videos"][1]["segments"][0].pop("end"),
            "record videos[1] (video 'sa_002'): missing field 'segments[0].end' (map: segments.end = 'end')",
        ),
        (
            lambda d: d["videos"][0].pop("video_id"),
            "record videos[0]: missing field 'video_id' (map: video.id",
        ),
        (
            lambda d: d["videos"][0]["segments"][2].update(end=4.0),
            "record videos[0] (video 'sa_001'): 'segments[2].end' 4 <= 'segments[2].start' 5",
        ),
        (
            lambda d: d["videos"][0]["phases"][1].update(start="ten"),
            "field 'phases[1].start' is not a time ('ten') (map: phases.start)",
        ),
        (lambda d: d.update(videos={"a": 1}), "'videos' is a dict, not a list of records (map: records)"),
    ],
)
def test_surgatlas_map_does_not_fit(tmp_path: Path, edit, message: str, capsys) -> None:
    src = atlas_default(tmp_path / "surgatlas.json")
    doc = json.loads(src.read_text())
    edit(doc)
    src.write_text(json.dumps(doc))
    assert atlas(src, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"hecvl corpus: error: {src}: ") and message in err, err


def test_bad_field_map(tmp_path: Path, capsys) -> None:
    src = atlas_default(tmp_path / "surgatlas.json")
    fmap = tmp_path / "map.yaml"
    fmap.write_text(
        "video: {id: video_id, url: url}\nsegments: {list: segments, start: start, text: caption}\n"
    )
    assert atlas(src, tmp_path / "out", "--map", str(fmap)) == 2
    assert f"{fmap}: segments.end: missing" in capsys.readouterr().err
    fmap.write_text("video: {id: video_id, url: url}\nsegment: {}\n")
    assert atlas(src, tmp_path / "out", "--map", str(fmap)) == 2
    assert "unknown key(s) segment" in capsys.readouterr().err


def test_inspect(tmp_path: Path, db: Path, capsys) -> None:
    src = atlas_default(tmp_path / "ann" / "surgatlas.json")
    assert main(["corpus", "inspect", str(src)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "surgatlas.json: a dict"
    by_path = {line.split()[0]: line for line in printed[1:]}
    assert "list 1" in by_path["videos"] and "object 4" in by_path["videos[]"]
    assert (
        "float 4" in by_path["videos[].segments[].start"] and "int 2" in by_path["videos[].segments[].start"]
    )
    assert (
        "str 2" in by_path["videos[].youtube_id"] and "e.g. 'AAAAAAAAAAA'" in by_path["videos[].youtube_id"]
    )
    assert main(["corpus", "inspect", str(db)]) == 0
    printed = capsys.readouterr().out
    assert "captions: 17 row(s)" in printed and "start_time  FLOAT" in printed


def test_transcript_import_still_works(tmp_path: Path) -> None:
    srt = tmp_path / "talk.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:02,000\nHello.\n", encoding="utf-8")
    out = tmp_path / "narration.csv"
    assert main(["corpus", "import", str(srt), "--out", str(out)]) == 0
    assert lines(out) == ["start,end,text", "0.5,2.0,Hello."]
    assert main(["corpus", "import", "surgatlas", "--out", str(tmp_path / "x")]) == 2  # needs a path
