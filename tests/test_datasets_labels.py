"""Label readers on the real published files (../shared/fixtures) and on damaged copies of them.

Expected counts are derived by hand from the files (transition frames / segment times), not from the
reader: e.g. Cholec80 video01 has 43326 frames (0..43325), so seconds 0..1733 = ceil(43326/25) rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hecvl.datasets.classes import (
    AUTOLAPARO,
    CHOLEC80,
    CLASSES,
    MULTIBYPASS140,
    multibypass_classes,
    read_phase_table,
)
from hecvl.datasets.labels import (
    LABEL_COLUMNS,
    find_label_files,
    frame_of_second,
    load_label_table,
    read_label_file,
    read_labels,
    read_tools,
    seconds_in_video,
    trim_to_video,
)
from hecvl.errors import HecvlError


def _copy_lines(src: Path, dst: Path, edit=None) -> Path:
    lines = src.read_text(encoding="utf-8").splitlines()
    if edit is not None:
        lines = edit(lines)
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


def _dtypes_ok(df: pd.DataFrame) -> None:
    assert list(df.columns) == LABEL_COLUMNS
    assert str(df["video"].dtype) == "str" and str(df["phase_name"].dtype) == "str"
    assert df["frame_sec"].dtype == "int64" and df["phase_id"].dtype == "int64"


# --- Cholec80 ------------------------------------------------------------------------------------


def test_cholec80_video01_one_row_per_second(fixtures_dir: Path) -> None:
    df = read_labels("cholec80", fixtures_dir / "cholec80" / "video01-phase.txt")
    _dtypes_ok(df)
    assert len(df) == 1734  # frames 0..43325 -> seconds 0..1733
    assert df["video"].unique().tolist() == ["video01"]
    assert df["frame_sec"].tolist() == list(range(1734))
    # Transitions in the file at frames 525, 16825, 22175, 36750, 39200, 41025 (all multiples of 25).
    counts = df.groupby("phase_name").size().to_dict()
    assert counts == {
        "Preparation": 21,  # frames 0..524 -> seconds 0..20
        "CalotTriangleDissection": 652,  # 525..16824 -> 21..672
        "ClippingCutting": 214,  # 16825..22174 -> 673..886
        "GallbladderDissection": 583,  # 22175..36749 -> 887..1469
        "GallbladderPackaging": 98,  # 36750..39199 -> 1470..1567
        "CleaningCoagulation": 73,  # 39200..41024 -> 1568..1640
        "GallbladderRetraction": 93,  # 41025..43325 -> 1641..1733
    }
    assert (df["phase_name"] == [CHOLEC80[i] for i in df["phase_id"]]).all()
    assert df.loc[21, "phase_id"] == 1 and df.loc[20, "phase_id"] == 0


def test_cholec80_real_fps_changes_sampling(fixtures_dir: Path) -> None:
    path = fixtures_dir / "cholec80" / "video01-phase.txt"
    df = read_label_file("cholec80", path, fps=30.0)
    assert len(df) == 1445  # round(30*i) <= 43325 -> i <= 1444
    # second 18 is frame 540 (Calot, >= 525); at 25 fps it is frame 450 (Preparation)
    assert df.loc[18, "phase_name"] == "CalotTriangleDissection"
    assert read_label_file("cholec80", path).loc[18, "phase_name"] == "Preparation"
    with pytest.raises(HecvlError, match="frame rate must be a positive"):
        read_label_file("cholec80", path, fps=0)


def test_frame_rule_matches_video_layer() -> None:
    assert frame_of_second([0, 1, 2], 25.0).tolist() == [0, 25, 50]
    assert frame_of_second([1], 12.5).tolist() == [13]  # halves round up
    assert seconds_in_video(43326, 25.0) == 1734 and seconds_in_video(250, 25.0) == 10
    assert seconds_in_video(0, 25.0) == 0


def test_cholec80_tools(fixtures_dir: Path) -> None:
    tools = read_tools(fixtures_dir / "cholec80")
    assert len(tools) == 1733  # frames 0, 25, ..., 43300: one row fewer than the phases
    assert tools.columns.tolist()[:2] == ["video", "frame_sec"]
    assert tools.columns.tolist()[2:] == [
        "Grasper", "Bipolar", "Hook", "Scissors", "Clipper", "Irrigator", "SpecimenBag"
    ]  # fmt: skip
    assert tools.iloc[0, 2:].tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert tools["frame_sec"].tolist() == list(range(1733))


def test_cholec80_unknown_phase_name(fixtures_dir: Path, tmp_path: Path) -> None:
    bad = _copy_lines(
        fixtures_dir / "cholec80" / "video01-phase.txt",
        tmp_path / "video01-phase.txt",
        lambda ls: [*ls[:1001], "1000\tGallbladderRemoval", *ls[1002:]],
    )
    with pytest.raises(HecvlError, match=r"line 1002: unknown phase name 'GallbladderRemoval'") as err:
        read_labels("cholec80", bad)
    assert str(bad) in str(err.value)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda ls: [*ls[:101], ls[100], *ls[101:]], r"line 102: frame number 99 is duplicated"),
        (
            lambda ls: [*ls[:101], ls[50], *ls[101:]],
            r"line 102: frame numbers are not increasing \(49 after 99\)",
        ),
        (lambda ls: [*ls[:101], *ls[103:]], r"line 102: frame numbers skip from 99 to 102"),
        (lambda ls: [ls[0], *ls[3:]], r"line 2: the first frame number is 2, expected 0"),
        (lambda ls: ["Frame,Phase", *ls[1:]], r"expected the header"),
        (lambda ls: ls[:1], r"no label rows"),
        (lambda ls: [*ls[:10], "9x\tPreparation", *ls[11:]], r"line 11: expected '<frame number><TAB>"),
    ],
)
def test_cholec80_bad_frame_numbers(fixtures_dir: Path, tmp_path: Path, edit, problem: str) -> None:
    bad = _copy_lines(fixtures_dir / "cholec80" / "video01-phase.txt", tmp_path / "video01-phase.txt", edit)
    with pytest.raises(HecvlError, match=problem) as err:
        read_labels("cholec80", tmp_path)
    assert err.value.path == bad


# --- AutoLaparo ----------------------------------------------------------------------------------


def test_autolaparo_label_01(fixtures_dir: Path) -> None:
    df = read_labels("autolaparo", fixtures_dir / "autolaparo")
    _dtypes_ok(df)
    assert len(df) == 6388  # rows 0001..6388
    assert df["video"].unique().tolist() == ["01"]
    assert df["frame_sec"].tolist() == list(range(6388))
    # runs in the file: 380x2, 360x3, 340x2, 1140x3, 1258x4, 244x7, 2306x6, 360x7 (value = id + 1)
    assert df["phase_id"].iloc[[0, 379, 380, 739, 740]].tolist() == [1, 1, 2, 2, 1]
    counts = df.groupby("phase_id").size().to_dict()
    assert counts == {1: 720, 2: 1500, 3: 1258, 5: 2306, 6: 604}
    assert df.loc[0, "phase_name"] == AUTOLAPARO[1] == "Dividing Ligament and Peritoneum"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda ls: [*ls[:5], "0005\t8", *ls[6:]], r"line 6: unknown phase 8 \(AutoLaparo phases are 1-7\)"),
        (lambda ls: [*ls[:5], "0005\t0", *ls[6:]], r"line 6: unknown phase 0"),
        (lambda ls: [*ls[:6], ls[5], *ls[6:]], r"line 7: frame number 5 is duplicated"),
        (lambda ls: [*ls[:6], ls[2], *ls[6:]], r"line 7: frame numbers are not increasing \(2 after 5\)"),
        (lambda ls: ["Frame\tPhase\tExtra", *ls[1:]], r"expected the header 'Frame  Phase'"),
        (lambda ls: [*ls[:3], "0003 2 7", *ls[4:]], r"line 4: expected '<second><TAB><phase 1-7>'"),
    ],
)
def test_autolaparo_bad_rows(fixtures_dir: Path, tmp_path: Path, edit, problem: str) -> None:
    bad = _copy_lines(fixtures_dir / "autolaparo" / "label_01.txt", tmp_path / "label_01.txt", edit)
    with pytest.raises(HecvlError, match=problem) as err:
        read_labels("autolaparo", bad)
    assert err.value.path == bad


# --- MultiBypass140 ------------------------------------------------------------------------------


def test_multibypass140_overlays_excluded_and_unlabelled_dropped(fixtures_dir: Path) -> None:
    df = read_labels(
        "multibypass140", fixtures_dir / "multibypass140", tables=fixtures_dir / "multibypass140" / "tables"
    )
    _dtypes_ok(df)
    assert df["video"].unique().tolist() == ["BBP01", "SBP01"]
    assert df["phase_id"].between(0, 11).all()
    assert not df["phase_name"].isin(["out_of_body", "severe_index"]).any()
    bbp = df[df["video"] == "BBP01"]
    # class segments run contiguously from 13301 to 5038090 ms: seconds 14..5038; the head (0..13 s)
    # and the out_of_body tail (5044730..5059331 ms) are unlabelled.
    assert bbp["frame_sec"].tolist() == list(range(14, 5039))
    by_phase = bbp.groupby("phase_name").size().to_dict()
    assert by_phase["preparation"] == 1358  # [13301, 1371912) -> 14..1371, despite 3 out_of_body overlays
    assert (
        by_phase["gastric_pouch_creation"] == 719
    )  # [1371912, 2090539) -> 1372..2090, 5 severe_index inside
    assert by_phase["disassembling"] == 53  # [4985568, 5038090) -> 4986..5038
    sbp = df[df["video"] == "SBP01"]
    assert sbp["frame_sec"].tolist() == list(range(5141))  # [0, 5140920) ms
    # gastric_pouch_creation is revisited: [247886, 1182861) + [1216425, 1337887) -> 935 + 121
    assert (sbp["phase_name"] == "gastric_pouch_creation").sum() == 1056
    assert sbp.set_index("frame_sec").loc[1216, "phase_name"] == "omentum_division"
    assert sbp.set_index("frame_sec").loc[1217, "phase_name"] == "gastric_pouch_creation"


def test_multibypass140_phase_table(fixtures_dir: Path, tmp_path: Path) -> None:
    table = read_phase_table(fixtures_dir / "multibypass140" / "tables" / "phase.csv")
    assert table[0] == "preparation" and table[11] == "other_intervention"
    assert table[12] == "out_of_body" and table[13] == "severe_index"  # last line has no newline
    assert (
        multibypass_classes(fixtures_dir / "multibypass140" / "tables")
        == MULTIBYPASS140
        == CLASSES["multibypass140"]
    )
    assert multibypass_classes(tmp_path) == MULTIBYPASS140  # a tables/ folder without phase.csv
    renamed = tmp_path / "phase.csv"
    renamed.write_text("id, name\n0, preparation\n1, omentum_division\n", encoding="utf-8")
    with pytest.raises(
        HecvlError, match="phase id 1 is 'omentum_division' here but 'gastric_pouch_creation'"
    ):
        multibypass_classes(renamed)
    (tmp_path / "bad.csv").write_text("idx,label\n0,preparation\n", encoding="utf-8")
    with pytest.raises(HecvlError, match="header 'id, name'"):
        read_phase_table(tmp_path / "bad.csv")


def test_multibypass140_tables_found_under_the_dataset_root(fixtures_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "SBP01.mp4.json").symlink_to(fixtures_dir / "multibypass140" / "SBP01.mp4.json")
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "phase.csv").write_text("id, name\n0, prep\n", encoding="utf-8")
    with pytest.raises(HecvlError, match=r"tables/phase.csv: phase id 0 is 'prep' here but 'preparation'"):
        read_labels("multibypass140", tmp_path)
    assert len(read_labels("multibypass140", tmp_path / "labels")) == 5141  # no tables there: built-in names


def _edit_json(src: Path, dst: Path, edit) -> Path:
    doc = json.loads(src.read_text(encoding="utf-8"))
    edit(doc)
    dst.write_text(json.dumps(doc), encoding="utf-8")
    return dst


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda d: d["phases"][1].update(label_name="bypass"),
            r"phases\[1\]: unknown phase name 'bypass' for id 1",
        ),
        (lambda d: d["phases"][1].update(label_id=14), r"phases\[1\]: unknown phase id 14"),
        (lambda d: d["phases"][0].update(end=-5), r"phases\[0\]: bad time range"),
        (lambda d: d["phases"][0].update(start="0"), r"start and end must be numbers"),
        (lambda d: d.pop("phases"), r"expected a JSON object with a 'phases' list"),
        (
            lambda d: d["phases"][1].update(start=200000),
            r"class segments overlap in video SBP01: preparation \[0, 247886\) ms and "
            r"gastric_pouch_creation \[200000, 1182861\) ms",
        ),
    ],
)
def test_multibypass140_bad_json(fixtures_dir: Path, tmp_path: Path, edit, problem: str) -> None:
    bad = _edit_json(fixtures_dir / "multibypass140" / "SBP01.mp4.json", tmp_path / "SBP01.mp4.json", edit)
    with pytest.raises(HecvlError, match=problem) as err:
        read_labels("multibypass140", tmp_path)
    assert err.value.path == bad


def test_multibypass140_malformed_json(fixtures_dir: Path, tmp_path: Path) -> None:
    text = (fixtures_dir / "multibypass140" / "BBP01.mp4.json").read_text(encoding="utf-8")
    bad = tmp_path / "BBP01.mp4.json"
    bad.write_text(text[: len(text) // 2], encoding="utf-8")  # truncated download
    with pytest.raises(HecvlError, match=r"BBP01\.mp4\.json: not valid JSON: .* at line 1 column"):
        read_labels("multibypass140", bad)


# --- files and folders ---------------------------------------------------------------------------


def test_folder_search_is_recursive_and_pattern_bound(fixtures_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    src = fixtures_dir / "autolaparo" / "label_01.txt"
    _copy_lines(src, tmp_path / "a" / "b" / "label_03.txt")
    _copy_lines(src, tmp_path / "label_02.txt", lambda ls: ls[:11])
    (tmp_path / "notes.txt").write_text("not a label file\n", encoding="utf-8")
    files = find_label_files("autolaparo", tmp_path)
    assert list(files) == ["02", "03"]
    df = read_labels("autolaparo", tmp_path)
    assert df.groupby("video").size().to_dict() == {"02": 10, "03": 6388}
    assert df["video"].is_monotonic_increasing
    _copy_lines(src, tmp_path / "a" / "label_02.txt")
    with pytest.raises(HecvlError, match="two autolaparo label files for video 02"):
        read_labels("autolaparo", tmp_path)


def test_missing_or_misnamed_files(fixtures_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(HecvlError, match="no such cholec80 label file or folder"):
        read_labels("cholec80", tmp_path / "nope")
    with pytest.raises(HecvlError, match=r"no cholec80 label files \(named like video41-phase.txt\) found"):
        read_labels("cholec80", tmp_path)
    with pytest.raises(HecvlError, match="not a cholec80 label file name"):
        read_labels("cholec80", fixtures_dir / "cholec80" / "video01-tool.txt")
    with pytest.raises(HecvlError, match="unknown label format 'cholec81'"):
        read_labels("cholec81", tmp_path)
    with pytest.raises(HecvlError, match="frame rate only applies to Cholec80"):
        read_labels("autolaparo", fixtures_dir / "autolaparo", fps=25)


def test_trim_to_video_tolerance(fixtures_dir: Path) -> None:
    df = read_labels("autolaparo", fixtures_dir / "autolaparo")
    label = fixtures_dir / "autolaparo" / "label_01.txt"
    assert len(trim_to_video(df, 6388, label, "01.mp4")) == 6388
    assert len(trim_to_video(df, 6387, label, "01.mp4")) == 6387  # one second over: trimmed
    with pytest.raises(HecvlError, match=r"labels run to second 6387 but the video 01.mp4 has only 6380 s"):
        trim_to_video(df, 6380, label, "01.mp4")


def test_label_table_round_trip(fixtures_dir: Path, tmp_path: Path) -> None:
    df = read_labels("autolaparo", fixtures_dir / "autolaparo")
    out = tmp_path / "labels.csv"
    df.to_csv(out, index=False)
    back = load_label_table(out)
    assert back["video"].iloc[0] == "01"  # not the integer 1
    pd.testing.assert_frame_equal(back, df)
    (tmp_path / "wrong.csv").write_text("video,second\n01,0\n", encoding="utf-8")
    with pytest.raises(HecvlError, match="expected the columns video,frame_sec,phase_id,phase_name"):
        load_label_table(tmp_path / "wrong.csv")
