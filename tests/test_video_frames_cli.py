"""`hecvl frames`: cache entries for listed videos or a dataset's split, the manifest, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_video_reader import frame_ids, make_video

from hecvl.cli import main
from hecvl.errors import HecvlError
from hecvl.video import FrameCache, FrameTransform


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("videos")
    return [make_video(folder / "a.mp4", n=50), make_video(folder / "b.mp4", n=80)]


def test_frames_for_listed_videos(videos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "manifest.json"
    argv = ["frames", *map(str, videos), "--cache", str(tmp_path / "c"), "--size", "48", "80", "--crop", "40"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "2 video(s), 6 frames at 1 fps (48x80-bilinear-c40)" in capsys.readouterr().out
    manifest = json.loads(out.read_text())
    entry = manifest["videos"][str(videos[1])]
    assert entry["shape"] == [4, 40, 40, 3] and manifest["transform"] == "48x80-bilinear-c40"
    arr = np.load(entry["frames"], mmap_mode="r")
    assert frame_ids(arr) == [0, 25, 50, 75]
    served = FrameCache(tmp_path / "c").get(videos[1], FrameTransform((48, 80), 40))
    np.testing.assert_array_equal(served, arr)


def test_missing_video_is_one_line_error_and_exit_2(
    videos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "nope.mp4"
    rc = main(["frames", str(videos[0]), str(missing), "--cache", str(tmp_path / "c"), "--size", "48", "80"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"hecvl frames: error: {missing}: video file not found"
    assert main(["frames", "--cache", str(tmp_path / "c")]) == 2
    assert "no videos" in capsys.readouterr().err
    assert main(["frames", str(videos[0])]) == 2
    assert "give --cache" in capsys.readouterr().err
    too_big = ["--size", "48", "80", "--crop", "60"]
    assert main(["frames", str(videos[0]), "--cache", str(tmp_path / "c"), *too_big]) == 2
    assert "invalid frame transform: crop 60 is larger" in capsys.readouterr().err


def test_truncated_video_fails_cleanly_and_damages_nothing(
    videos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, cache = tmp_path / "manifest.json", tmp_path / "c"
    base = ["frames", "--cache", str(cache), "--size", "48", "80", "--out", str(out)]
    assert main([*base, str(videos[0])]) == 0
    before = out.read_bytes()
    entries = sorted(p for p in cache.rglob("*.npy"))
    data = videos[1].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main([*base, str(videos[0]), str(cut)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hecvl frames: error: {cut}: not a readable video")
    assert out.read_bytes() == before  # the earlier manifest is intact
    assert sorted(p for p in cache.rglob("*.npy")) == entries  # no entry, no temporary file added
    with pytest.raises(HecvlError):
        main(["--debug", *base, str(cut)])  # --debug: the exception itself, with its traceback


def test_frames_for_a_dataset_split_from_params(
    videos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("hecvl.datasets.registry")
    root = tmp_path / "autolaparo"
    (root / "videos").mkdir(parents=True)
    (root / "labels").mkdir()
    for vid, src in zip(["01", "02", "03"], [videos[0], videos[1], videos[0]], strict=True):
        (root / "videos" / f"{vid}.mp4").write_bytes(src.read_bytes())
    (root / "splits.json").write_text(json.dumps({"train": ["01", "02"], "test": ["03"]}))
    params = {
        "frames": {"fps": 1, "transform": {"size": [48, 80], "crop": 32}, "cache": str(tmp_path / "cache")},
        "model": {"visual": {"image_size": 32}},  # training crops must fit the resized frames
        "data": {
            "targets": {
                "autolaparo": {
                    "format": "autolaparo",
                    "root": str(root),
                    "videos": "videos/{video}.mp4",
                    "labels": "labels",
                    "splits": "splits.json",
                }
            }
        },
    }
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    base = ["frames", "--params", str(params_file), "--dataset", "autolaparo"]
    out = tmp_path / "test.json"
    assert main([*base, "--out", str(out)]) == 0  # default split: test
    assert list(json.loads(out.read_text())["videos"]) == ["03"]
    out_all = tmp_path / "all.json"
    assert main([*base, "--split", "all", "--crop", "40", "--out", str(out_all)]) == 0
    manifest = json.loads(out_all.read_text())
    assert list(manifest["videos"]) == ["01", "02", "03"] and manifest["transform"] == "48x80-bilinear-c40"
    assert manifest["videos"]["02"]["shape"] == [4, 40, 40, 3]
    assert manifest["videos"]["01"]["frames"] == manifest["videos"]["03"]["frames"]  # same bytes, one entry
    assert main([*base, "--split", "val"]) == 2
    assert "no split 'val'" in capsys.readouterr().err
