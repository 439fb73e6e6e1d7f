"""TargetDataset: splits, video paths, and labels checked against real (tiny, generated) video files."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import av
import numpy as np
import pytest

from hecvl.datasets.registry import TargetDataset
from hecvl.errors import HecvlError


def _video(path: Path, frames: int, fps: int) -> Path:
    """Encode a real H.264 video of `frames` grey frames at `fps` (32x32: milliseconds to write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i % 256, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _phase_file(path: Path, phases: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("Frame\tPhase\n" + "".join(f"{i}\t{p}\n" for i, p in enumerate(phases)), encoding="utf-8")
    return path


def _params(name: str, **cfg) -> dict:
    return {"data": {"targets": {name: cfg}}}


@pytest.fixture
def cholec(tmp_path: Path) -> TargetDataset:
    root = tmp_path / "cholec80"
    ann = root / "phase_annotations"
    _video(root / "videos" / "video01.mp4", 75, 25)
    _phase_file(ann / "video01-phase.txt", ["Preparation"] * 50 + ["ClippingCutting"] * 25)
    _video(root / "videos" / "video02.mp4", 90, 30)  # not 25 fps: sampled at its own rate
    _phase_file(ann / "video02-phase.txt", ["Preparation"] * 30 + ["CalotTriangleDissection"] * 60)
    _phase_file(ann / "video03-phase.txt", ["Preparation"] * 60)  # its video is absent
    (root / "splits.json").write_text(json.dumps({"train": ["video01"], "test": ["video02", "video03"]}))
    cfg = {
        "format": "cholec80",
        "root": str(root),
        "videos": "videos/{video}.mp4",
        "labels": "phase_annotations",
    }
    return TargetDataset.from_params("cholec80", _params("cholec80", **cfg, splits="splits.json"))


def test_cholec80_labels_use_probed_fps(cholec: TargetDataset, caplog: pytest.LogCaptureFixture) -> None:
    assert cholec.classes[2] == "ClippingCutting"
    assert cholec.split("train") == ["video01"]
    assert cholec.video_path("video02") == cholec.root / "videos" / "video02.mp4"
    train = cholec.labels("train")
    assert train["frame_sec"].tolist() == [0, 1, 2]
    assert train["phase_name"].tolist() == ["Preparation", "Preparation", "ClippingCutting"]
    with caplog.at_level(logging.WARNING):
        test = cholec.labels("test")
    v2 = test[test["video"] == "video02"]
    # 30 fps: seconds at frames 0, 30, 60 (at an assumed 25 fps second 1 would be frame 25, Preparation)
    assert v2["phase_name"].tolist() == ["Preparation", "CalotTriangleDissection", "CalotTriangleDissection"]
    v3 = test[test["video"] == "video03"]
    assert v3["frame_sec"].tolist() == [0, 1, 2]  # 60 frames at the assumed 25 fps
    assert "video03.mp4 not found: assuming 25 fps" in caplog.text
    assert cholec.labels()["video"].unique().tolist() == ["video01", "video02", "video03"]
    with pytest.raises(HecvlError, match="has no split 'val'"):
        cholec.split("val")


def test_labels_longer_than_video(cholec: TargetDataset, caplog: pytest.LogCaptureFixture) -> None:
    ann = cholec.labels_dir
    _video(cholec.root / "videos" / "video04.mp4", 75, 25)  # 3 s: seconds 0..2
    _phase_file(ann / "video04-phase.txt", ["Preparation"] * 100)  # seconds 0..3: one over, trimmed
    (cholec.root / "splits.json").write_text(json.dumps({"test": ["video04"]}))
    cholec._split_cache = None
    with caplog.at_level(logging.WARNING):
        assert cholec.labels("test")["frame_sec"].tolist() == [0, 1, 2]
    assert "dropping 1 label second(s) past the end" in caplog.text
    bad = _phase_file(ann / "video04-phase.txt", ["Preparation"] * 150)  # 6 s of labels for a 3 s video
    with pytest.raises(
        HecvlError, match=r"labels run to second 5 but the video .*video04.mp4 has only 3 s"
    ) as err:
        cholec.labels("test")
    assert err.value.path == bad


def test_official_split_and_missing_label_file(cholec: TargetDataset) -> None:
    cholec.splits_spec = "official"
    cholec._split_cache = None
    assert len(cholec.split("test")) == 32 and cholec.split("test")[0] == "video49"
    with pytest.raises(HecvlError, match=r"no cholec80 label file for video\(s\) video49, video50"):
        cholec.labels("test")


def test_autolaparo_labels_against_a_short_video(fixtures_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "autolaparo"
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "label_01.txt").symlink_to(fixtures_dir / "autolaparo" / "label_01.txt")
    (root / "splits.json").write_text(json.dumps({"test": ["01"]}))
    cfg = {"format": "autolaparo", "root": str(root), "videos": "videos/{video}.mp4", "labels": "labels"}
    ds = TargetDataset.from_params("autolaparo", _params("autolaparo", **cfg, splits="splits.json"))
    assert len(ds.labels("test")) == 6388  # no video: not checked
    _video(root / "videos" / "01.mp4", 50, 25)
    with pytest.raises(
        HecvlError, match=r"label_01.txt: labels run to second 6387 but the video .* has only 2 s"
    ):
        ds.labels("test")


def test_multibypass140_centre_and_official_folds(fixtures_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "multibypass140"
    src = fixtures_dir / "multibypass140"
    for centre, vid in (("strasbourg", "SBP01"), ("bern", "BBP01")):
        folder = root / "labels" / centre / "labels_by70"
        folder.mkdir(parents=True)
        (folder / f"{vid}.mp4.json").symlink_to(src / f"{vid}.mp4.json")
    (root / "tables").mkdir()
    (root / "tables" / "phase.csv").symlink_to(src / "tables" / "phase.csv")
    (root / "splits_strasbourg.json").write_text(json.dumps({"train": ["BBP01"], "test": ["SBP01"]}))
    cfg = {
        "format": "multibypass140",
        "root": str(root),
        "videos": "videos/{video}.mp4",
        "centre": "strasbourg",
    }
    params = _params(
        "strasbypass70", **cfg, labels="labels/strasbourg/labels_by70", splits="splits_strasbourg.json"
    )
    ds = TargetDataset.from_params("strasbypass70", params)
    assert ds.classes[11] == "other_intervention"
    assert ds.split("train") == []  # BBP01 belongs to the other centre
    labels = ds.labels("test")
    assert labels["video"].unique().tolist() == ["SBP01"] and len(labels) == 5141

    # Official fold 3 from the published pickle layout, read with the restricted unpickler.
    pickles = root / "labels" / "strasbourg" / "labels_by70_splits" / "labels"
    for split, name, ids in (
        ("train", "1fps_100_3", ["SBP02"]),
        ("val", "1fps_3", ["SBP03"]),
        ("test", "1fps_3", ["SBP01"]),
    ):
        (pickles / split).mkdir(parents=True)
        (pickles / split / f"{name}.pickle").write_bytes(
            pickle.dumps({v: [{"Phase_gt": np.int64(0)}] for v in ids})
        )
    cfg.update(labels="labels/strasbourg/labels_by70", splits="official", fold=3)
    official = TargetDataset.from_params("strasbypass70", _params("strasbypass70", **cfg))
    assert official.splits() == {"train": ["SBP02"], "val": ["SBP03"], "test": ["SBP01"]}
    assert len(official.labels("test")) == 5141


def test_protocol_class_set_leaves_out_ignored_classes(fixtures_dir: Path, tmp_path: Path) -> None:
    """MultiBypass140 drops other_intervention by default (the published protocol); `ignore` names others."""
    root = tmp_path / "multibypass140"
    folder = root / "labels" / "strasbourg" / "labels_by70"
    folder.mkdir(parents=True)
    (folder / "SBP01.mp4.json").symlink_to(fixtures_dir / "multibypass140" / "SBP01.mp4.json")
    (root / "splits.json").write_text(json.dumps({"test": ["SBP01"]}))
    cfg = {"format": "multibypass140", "root": str(root), "centre": "strasbourg",
           "labels": "labels/strasbourg/labels_by70", "splits": "splits.json"}
    default = TargetDataset.from_params("s", _params("s", **cfg))
    assert default.ignored == [11] and "other_intervention" not in default.scored_classes
    assert len(default.labels("test")) == 5141  # SBP01 has no other_intervention second
    custom = TargetDataset.from_params("s", _params("s", **cfg, ignore=["preparation"]))
    labels = custom.labels("test")
    assert custom.ignored == [0] and 0 not in set(labels["phase_id"]) and 0 < len(labels) < 5141
    assert TargetDataset.from_params("s", _params("s", **cfg, ignore=[])).ignored == []
    cholec = TargetDataset.from_params("c", _params("c", **{**cfg, "format": "cholec80", "centre": None}))
    assert cholec.ignored == []
    bad = TargetDataset.from_params("s", _params("s", **cfg, ignore=["lunch"]))
    with pytest.raises(HecvlError, match=r"target s: ignore names unknown classes \['lunch'\]"):
        bad.labels("test")


def test_from_params_errors(tmp_path: Path) -> None:
    cfg = {"root": str(tmp_path), "videos": "videos/{video}.mp4", "labels": "l", "splits": "s.json"}
    with pytest.raises(HecvlError, match=r"unknown target dataset 'x' in data.targets \(known: a\)"):
        TargetDataset.from_params("x", _params("a", format="cholec80", **cfg))
    with pytest.raises(HecvlError, match=r"data\.targets\.a\.root is required \(and 2 more problems\)$"):
        TargetDataset.from_params("a", _params("a", format="cholec80"))  # root, labels, splits
    with pytest.raises(HecvlError, match=r"data\.targets\.a\.format must be one of .*, got 'cholec8'$"):
        TargetDataset.from_params("a", _params("a", format="cholec8", **cfg))
    with pytest.raises(HecvlError, match=r"data\.targets\.a\.centre must be one of 'strasbourg' or 'bern', "
                                         r"got 'paris'$"):
        TargetDataset.from_params("a", _params("a", format="multibypass140", centre="paris", **cfg))
    with pytest.raises(HecvlError, match=r"data\.targets\.a: centre is for the multibypass140 format"):
        TargetDataset.from_params("a", _params("a", format="cholec80", centre="bern", **cfg))
    with pytest.raises(HecvlError, match=r"data\.targets\.a: videos must contain '\{video\}', got 'v\.mp4'$"):
        TargetDataset.from_params("a", _params("a", format="cholec80", **{**cfg, "videos": "v.mp4"}))
