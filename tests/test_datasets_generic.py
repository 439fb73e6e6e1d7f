"""The generic dataset format: your own dataset as a folder of real H.264 videos, CSV labels, classes.yaml
and splits.json. It reads into exactly the 1 fps label table of the published formats (checked against the
Cholec80 reader on the same videos), brings its own prompts, `hecvl dataset check` lists every problem
naming the file and line, and `hecvl evaluate --dataset-dir` evaluates it end to end."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from evaluation_helpers import PHASES, write_cholec80, write_video

from hecvl.cli import main
from hecvl.config import TargetSettings
from hecvl.datasets.generic import ClassTable, check_dataset, read_generic_labels
from hecvl.datasets.labels import empty_label_table
from hecvl.datasets.registry import TargetDataset
from hecvl.errors import HecvlError
from hecvl.evaluation.prompts import prompts_for

H, W = 48, 64
COLOURS = np.array(
    [[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40], [200, 40, 200], [40, 200, 200], [120] * 3],
    np.uint8,
)
# phase of each second of each video (Cholec80 class ids)
VIDEOS = {"v01": [0, 0, 1, 1, 1, 2, 3, 3], "v02": [0, 1, 1, 2, 2, 3, 4, 4, 5], "v03": [0, 0, 1, 2, 3, 3, 6]}
SPLITS = {"train": ["v01"], "test": ["v02", "v03"]}
OWN_PROMPTS = {
    "ClippingCutting": ["A clip applier closes the cystic duct.", "Scissors cut between the clips."],
    "Preparation": "Trocars are placed.",
}


def _draw(p: int, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return np.clip(COLOURS[p].astype(int) + rng.integers(-30, 30, (h, w, 3)), 0, 255).astype(np.uint8)


def _runs(phases: list[int]) -> list[tuple[int, int, int]]:
    """(start, end, phase) of each run of equal phases, end exclusive."""
    runs, start = [], 0
    for i in range(1, len(phases) + 1):
        if i == len(phases) or phases[i] != phases[start]:
            runs.append((start, i, phases[start]))
            start = i
    return runs


def _intervals(phases: list[int], shift: float = 0.0) -> str:
    """`start,end,phase` rows; `shift` moves every inner boundary back by a fraction of a second (second i
    is labelled by the row with start <= i < end, so the seconds stay those of `phases`)."""
    rows = ["start,end,phase"]
    for start, end, p in _runs(phases):
        s = start - shift if start else 0
        e = end - shift if end < len(phases) else end - 0.3
        rows.append(f"{s:g},{e:g},{PHASES[p]}")
    return "\n".join(rows) + "\n"


def _per_second(phases: list[int]) -> str:
    """`frame_sec,phase` rows, deliberately not in time order (the reader sorts)."""
    order = list(range(len(phases)))[::-1]
    return "frame_sec,phase\n" + "".join(f"{i},{PHASES[phases[i]]}\n" for i in order)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same three videos as a Cholec80-layout dataset and as a generic one (v03 in a .mkv)."""
    root = tmp_path_factory.mktemp("generic")
    c80 = write_cholec80(root / "c80", VIDEOS, SPLITS, _draw, h=H, w=W)
    mine = root / "mine"
    (mine / "videos").mkdir(parents=True)
    for video in ("v01", "v02"):
        shutil.copy(root / "c80" / "videos" / f"{video}.mp4", mine / "videos" / f"{video}.mp4")
    write_video(mine / "videos" / "v03.mkv", VIDEOS["v03"], seed=2, draw=_draw, h=H, w=W)
    (mine / "labels").mkdir()
    (mine / "labels" / "v01.csv").write_text(_intervals(VIDEOS["v01"]))
    (mine / "labels" / "v02.csv").write_text(_per_second(VIDEOS["v02"]))
    # fractional bounds: [0, 1.5), [1.5, 2.5), ... label the same seconds
    (mine / "labels" / "v03.csv").write_text(_intervals(VIDEOS["v03"], shift=0.5))
    classes = {"classes": PHASES, "prompts": OWN_PROMPTS, "ignore": ["GallbladderRetraction"]}
    (mine / "classes.yaml").write_text(yaml.safe_dump(classes, sort_keys=False))
    (mine / "splits.json").write_text(json.dumps(SPLITS))
    return {"root": root, "c80": c80, "mine": mine}


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")


def _target(name: str, **cfg) -> TargetDataset:
    return TargetDataset.from_params(name, {"data": {"targets": {name: cfg}}})


def _copy(world: dict, dest: Path) -> Path:
    shutil.copytree(world["mine"], dest)
    return dest


def _check(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    rc = main(["dataset", "check", str(folder)])
    return rc, capsys.readouterr().out.splitlines()


def _line_with(lines: list[str], *parts: str) -> str:
    hits = [line for line in lines if all(p in line for p in parts)]
    assert hits, f"no line with {parts} in:\n" + "\n".join(lines)
    return hits[0]


# --- the label table ------------------------------------------------------------------------------


def test_both_label_styles_give_the_published_formats_table(world: dict) -> None:
    """Same videos, same phases: the generic reader's table is the Cholec80 reader's, row for row."""
    generic = _target("mine", format="generic", root=str(world["mine"]), ignore=[])
    cholec = TargetDataset.from_settings("c80", TargetSettings(**world["c80"]))
    assert generic.video_path("v03").name == "v03.mkv" and generic.video_path("v01").name == "v01.mp4"
    assert generic.splits() == SPLITS and generic.classes == PHASES
    for split in ("train", "test", None):
        mine, theirs = generic.labels(split), cholec.labels(split)
        pd.testing.assert_frame_equal(mine, theirs)
    table = generic.labels()
    assert list(table.columns) == list(empty_label_table().columns)
    assert table.dtypes.equals(empty_label_table().dtypes)
    for video, phases in VIDEOS.items():  # row i = second i, the id the class's place in classes.yaml
        rows = table[table["video"] == video]
        assert rows["frame_sec"].tolist() == list(range(len(phases)))
        assert rows["phase_id"].tolist() == phases
        assert rows["phase_name"].tolist() == [PHASES[p] for p in phases]
    # both styles of one video's labels read the same
    tmp = world["root"] / "styles"
    tmp.mkdir(exist_ok=True)
    (tmp / "v02.csv").write_text(_intervals(VIDEOS["v02"]))
    per_second = read_generic_labels(world["mine"] / "labels" / "v02.csv", PHASES)
    pd.testing.assert_frame_equal(read_generic_labels(tmp / "v02.csv", PHASES), per_second)


def test_ignored_classes_and_the_defaults_of_the_format(world: dict) -> None:
    ds = _target("mine", format="generic", root=str(world["mine"]))  # videos, labels, splits: the layout
    assert (ds.videos, ds.labels_dir, ds.splits_spec) == ("videos/{video}.*", world["mine"] / "labels",
                                                          "splits.json")
    assert ds.ignored == [6] and "GallbladderRetraction" not in ds.scored_classes
    test = ds.labels("test")
    assert 6 not in set(test["phase_id"])
    assert test[test["video"] == "v03"]["frame_sec"].tolist() == [0, 1, 2, 3, 4, 5]  # second 6 not scored
    with pytest.raises(ValueError, match="a generic dataset has no official split"):
        TargetSettings(format="generic", root="x", splits="official")


def test_labels_past_the_video_end_are_trimmed_within_a_second_else_refused(
    world: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _copy(world, tmp_path / "long")
    labels = folder / "labels" / "v02.csv"
    labels.write_text(labels.read_text() + "9,Preparation\n")  # v02 has 9 s: seconds 0-8
    ds = _target("long", format="generic", root=str(folder))
    with caplog.at_level(logging.WARNING):
        assert ds.labels("test")["frame_sec"].max() == 8
    assert "dropping 1 label second(s) past the end" in caplog.text
    labels.write_text(labels.read_text() + "10,Preparation\n")
    ds = _target("long", format="generic", root=str(folder))
    too_long = r"v02.csv: labels run to second 10 but the video .*v02.mp4 has only 9 s"
    with pytest.raises(HecvlError, match=too_long):
        ds.labels("test")


# --- prompts --------------------------------------------------------------------------------------


def test_own_prompts_drive_zero_shot_and_class_names_fill_in(world: dict, tmp_path: Path) -> None:
    ds = _target("mine", format="generic", root=str(world["mine"]))
    dec = prompts_for(ds, "decomposed")
    assert dec.classes == PHASES and dec.source == world["mine"] / "classes.yaml"
    assert dec.texts[2] == OWN_PROMPTS["ClippingCutting"] and dec.texts[0] == ["Trocars are placed."]
    assert dec.texts[3] == ["GallbladderDissection"]  # no prompt of its own: its name
    import hashlib

    assert dec.sha256 == hashlib.sha256((world["mine"] / "classes.yaml").read_bytes()).hexdigest()
    assert prompts_for(ds, "class_name").texts[2] == ["ClippingCutting"]
    ens = prompts_for(ds, "ensemble")
    assert len(ens.texts[2]) == 3 and all("ClippingCutting" in t for t in ens.texts[2])
    # without prompts: the class names, underscores read as spaces
    bare = ClassTable(["out_of_body", "suturing"], path=tmp_path / "classes.yaml")
    from hecvl.evaluation.prompts import generic_prompts

    assert generic_prompts(bare, "decomposed", "x").texts == [["out of body"], ["suturing"]]
    # an explicit prompt file still wins (and must match the classes)
    with pytest.raises(HecvlError, match="do not match the dataset's classes"):
        prompts_for(ds, "decomposed", prompt_file="autolaparo")


# --- hecvl dataset check --------------------------------------------------------------------------


def test_check_passes_a_clean_dataset(world: dict, capsys: pytest.CaptureFixture[str]) -> None:
    rc, lines = _check(world["mine"], capsys)
    assert rc == 0, lines
    assert lines == [
        f"warning: {world['mine'] / 'classes.yaml'}: prompts: none for CalotTriangleDissection, "
        "GallbladderDissection, GallbladderPackaging, CleaningCoagulation: zero-shot uses the class name for "
        "them",
        "3 video(s), 3 label file(s), 7 class(es): 0 error(s), 1 warning(s): ready to evaluate",
    ]


def test_check_lists_every_problem_with_its_file_and_line(
    world: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _copy(world, tmp_path / "broken")
    classes = {"classes": [*PHASES, "Preparation"], "prompts": {"Clipping": ["x"]}, "ignore": ["Nope"]}
    (ds / "classes.yaml").write_text(yaml.safe_dump(classes, sort_keys=False))
    (ds / "labels" / "v01.csv").write_text(
        "start,end,phase\n"
        "0,2,Preparation\n"  # line 2
        "1,5,CalotTriangleDissection\n"  # line 3: overlaps line 2
        "-1,0,Preparation\n"  # line 4: negative
        "6,5,ClippingCutting\n"  # line 5: backwards
        "5,8,clippingcutting\n"  # line 6: unknown name
    )
    (ds / "labels" / "v02.csv").write_text("frame_sec,phase\n0,Preparation\n1,Preparation\n1,Preparation\n"
                                           "x,Preparation\n")
    (ds / "labels" / "v03.csv").write_text("start,end,phase\n0,3,Preparation\n3,12,Preparation\n")  # 7 s
    (ds / "labels" / "ghost.csv").write_text("frame_sec,phase\n0,Preparation\n")
    shutil.copy(ds / "videos" / "v01.mp4", ds / "videos" / "v05.mp4")  # in a split, no labels
    shutil.copy(ds / "videos" / "v01.mp4", ds / "videos" / "v06.mp4")  # in no split, no labels
    (ds / "videos" / "notes.txt").write_text("not a video")
    splits = {"train": ["v01"], "test": ["v02", "v03", "v01", "v05", "v09"]}
    (ds / "splits.json").write_text(json.dumps(splits))
    rc, lines = _check(ds, capsys)
    assert rc == 1
    cy, sj, lab = ds / "classes.yaml", ds / "splits.json", ds / "labels"
    expected = [
        ("error", cy, "classes[7]: 'Preparation' is listed twice (also classes[0])"),
        ("error", cy, "ignore: 'Nope' is not a class"),
        ("error", cy, "prompts: 'Clipping' is not a class (did you mean 'ClippingCutting'?)"),
        ("error", lab / "v01.csv", "line 3: the interval [1, 5) CalotTriangleDissection overlaps line 2's"),
        ("error", lab / "v01.csv", "line 4: negative time in the interval [-1, 0)"),
        ("error", lab / "v01.csv", "line 5: end <= start in the interval [6, 5)"),
        ("error", lab / "v01.csv", "line 6: unknown phase 'clippingcutting' (did you mean 'ClippingCutting'?)"
                                   " (classes: Preparation, CalotTriangleDissection, ClippingCutting,"),
        ("error", lab / "v02.csv", "line 4: second 1 is labelled twice (also line 3)"),
        ("error", lab / "v02.csv", "line 5: frame_sec must be a whole number of seconds, got 'x'"),
        ("error", lab / "v03.csv", "line 3: labels run to second 11 but the video"),
        ("error", lab / "ghost.csv", "labels for a video that does not exist"),
        ("error", ds / "videos" / "v05.mp4", "no labels (labels/v05.csv)"),
        ("warning", ds / "videos" / "v06.mp4", "no labels (labels/v06.csv), and in no split"),
        ("warning", ds / "videos" / "notes.txt", "not a video file"),
        ("error", sj, "split 'test' item 2: video v01 is listed in both 'train' and 'test'"),
        ("error", sj, "split 'test' item 4: no video v09 in videos/"),
    ]
    for severity, path, message in expected:
        _line_with(lines, f"{severity}: {path}: {message}")
    assert "has only 7 s (5 s too long" in _line_with(lines, "v03.csv: line 3")
    assert lines[-1].startswith("5 video(s), 4 label file(s), 7 class(es): 14 error(s), 2 warning(s)")
    assert len(lines) == 17  # exactly these problems and the summary
    # evaluation reads through the same code: it refuses the first of them, naming the file and line
    with pytest.raises(HecvlError, match=r"classes.yaml: classes\[7\]: 'Preparation' is listed twice"):
        _ = _target("broken", format="generic", root=str(ds)).classes
    (ds / "classes.yaml").write_text(yaml.safe_dump({"classes": PHASES}))
    with pytest.raises(HecvlError, match=r"splits.json: video v01 is listed in both 'train' and 'test'"):
        _target("broken", format="generic", root=str(ds)).labels("train")
    (ds / "splits.json").write_text(json.dumps(SPLITS))
    with pytest.raises(HecvlError, match=r"v01.csv: line 3: the interval \[1, 5\)"):
        _target("broken", format="generic", root=str(ds)).labels("train")


def test_check_reports_missing_and_unreadable_files(
    world: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _copy(world, tmp_path / "unreadable")
    (ds / "classes.yaml").write_text("classes: [a, b\n")
    (ds / "splits.json").write_text('{"train": ["v01"],\n "test": [v02]}')
    (ds / "labels" / "v01.csv").write_bytes(b"start,end,phase\n0,3,Pr\xe9paration\n")
    (ds / "labels" / "v02.csv").write_text("begin,finish,phase\n0,3,Preparation\n")
    (ds / "videos" / "v03.mkv").write_bytes(b"\x00" * 1000)
    rc, lines = _check(ds, capsys)
    assert rc == 1
    _line_with(lines, f"error: {ds / 'classes.yaml'}: not valid YAML")
    _line_with(lines, f"error: {ds / 'splits.json'}: not valid JSON", "at line 2 column")
    _line_with(lines, f"error: {ds / 'labels' / 'v01.csv'}: not UTF-8 text")
    _line_with(lines, f"error: {ds / 'labels' / 'v02.csv'}: line 1: expected the header start,end,phase "
                      "or frame_sec,phase, got 'begin,finish,phase'")
    _line_with(lines, f"error: {ds / 'videos' / 'v03.mkv'}: cannot read the video")
    _line_with(lines, f"warning: {ds / 'labels'}: phase names not checked")
    (ds / "classes.yaml").unlink()
    shutil.rmtree(ds / "labels")
    rc, lines = _check(ds, capsys)
    assert rc == 1
    _line_with(lines, f"error: {ds / 'classes.yaml'}: no classes.yaml")
    _line_with(lines, f"error: {ds / 'labels'}: no labels folder")
    # splits.json unreadable: a video without labels may be in a split, so it is an error
    assert _line_with(lines, f"{ds / 'videos' / 'v01.mp4'}: no labels").startswith("error: ")
    assert not any("in no split" in line for line in lines)
    rc, lines = _check(tmp_path / "nowhere", capsys)
    assert rc == 1 and lines[0] == f"error: {tmp_path / 'nowhere'}: dataset folder not found"


def test_warnings_alone_pass_the_check(
    world: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = _copy(world, tmp_path / "warned")
    (ds / "classes.yaml").write_text(yaml.safe_dump({"classes": PHASES, "notes": "x"}))
    (ds / "splits.json").write_text(json.dumps({"train": ["v01", "v02"]}))
    rc, lines = _check(ds, capsys)
    assert rc == 0, lines
    _line_with(lines, f"warning: {ds / 'classes.yaml'}: unknown key(s) notes ignored")
    _line_with(lines, f"warning: {ds / 'splits.json'}: no 'test' split")
    _line_with(lines, f"warning: {ds / 'videos' / 'v03.mkv'}: in no split of splits.json")
    assert check_dataset(ds).errors == 0


def test_a_file_wrong_everywhere_is_listed_in_a_screen(tmp_path: Path) -> None:
    from hecvl.datasets.generic import MAX_ROW_PROBLEMS, parse_labels

    path = tmp_path / "v01.csv"
    rows = "".join(f"{i},x,Preparation\n" for i in range(30))
    path.write_text("start,end,phase\n0,1e9,Preparation\n" + rows)
    table, issues = parse_labels(path, "v01", PHASES)
    assert issues[0] == ("error", "line 2: the interval [0, 1e9) ends past 48 h: a typo?")
    assert len(issues) == MAX_ROW_PROBLEMS + 1 and table is not None and table.empty
    assert issues[-1] == ("error", f"{31 - MAX_ROW_PROBLEMS} more problem(s) in this file not listed")


# --- hecvl evaluate --dataset-dir -----------------------------------------------------------------


def test_evaluate_a_dataset_folder_with_one_command(
    world: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = {
        "seed": 0,
        "study": {"name": "generic-test"},
        "frames": {"cache": str(tmp_path / "frames"), "transform": {"size": [H, W], "crop": 32}},
        "model": {"visual": {"preset": "small", "image_size": 32}, "heads": {"dim": 32}},
        "eval": {"cache": str(tmp_path / "emb"), "batch_size": 8},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    out = tmp_path / "out"
    args = ["evaluate", "--params", str(path), "--untrained", "--dataset-dir", str(world["mine"])]
    assert main([*args, "--out", str(out)]) == 0
    assert "untrained mine/test" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    run = m["run"]
    assert (run["dataset"], run["videos"], run["prompts"]) == ("mine", ["v02", "v03"], "decomposed")
    assert run["ignored_classes"] == ["GallbladderRetraction"]
    assert run["prompt_file"] == str(world["mine"] / "classes.yaml")
    prompts = json.loads((out / "prompts.json").read_text())
    assert prompts["classes"]["ClippingCutting"] == OWN_PROMPTS["ClippingCutting"]
    assert prompts["classes"]["GallbladderDissection"] == ["GallbladderDissection"]
    pred = pd.read_parquet(out / "predictions.parquet")
    for video in ("v02", "v03"):
        rows = pred[pred["video"] == video]
        assert rows["frame_sec"].tolist() == list(range(len(VIDEOS[video])))
        gt = [p if p != 6 else None for p in VIDEOS[video]]  # the ignored class is not scored
        assert [None if pd.isna(g) else int(g) for g in rows["gt_phase_id"]] == gt
    assert 6 not in set(pred["phase_id"])  # and never predicted
    assert m["num_videos"] == 2 and 0.0 <= m["accuracy_mean"] <= 100.0
    # a folder whose name another target already has is refused, not silently replaced
    params["data"] = {"targets": {"mine": {"format": "generic", "root": str(tmp_path)}}}
    path.write_text(yaml.safe_dump(params))
    assert main([*args, "--out", str(tmp_path / "again")]) == 2
    assert "the name 'mine' (the folder's) is already taken" in capsys.readouterr().err
