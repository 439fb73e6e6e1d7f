"""data.synthetic.lecture_video: the synthetic lectures written at the resolution real lectures have
(1280x720, 25 fps, H.264 with libx264's default key-frame interval), their labels and pairs still on the
videos' time axis, the setting recorded in the manifest, and the default world untouched by its existence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from pairing_helpers import run_pair
from PIL import Image

from hecvl.config import SyntheticSettings
from hecvl.config.data import LectureVideoSettings
from hecvl.errors import HecvlError
from hecvl.pairing.manifest import read_manifest
from hecvl.synth.api import existing_world, generate_world
from hecvl.synth.generate import lecture_format, plan_world, world_params
from hecvl.synth.render import Renderer
from hecvl.synth.world import plan_to_dict
from hecvl.video import FrameTransform, open_video, probe

# what the paper path asks for, with short lectures so that the test renders in seconds
HD = {"size": [720, 1280], "fps": 25, "render_scale": 4, "gop": "x264", "duration_s": [12, 14]}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth-hd") / "world"
    generate_world(out, preset="smoke", seed=0, workers=2, progress=False, lecture_video=HD)
    return out


@pytest.fixture(scope="module")
def manifest(world) -> dict:
    return json.loads((world / "manifest.json").read_text())


def _lectures(manifest: dict) -> list[dict]:
    return [v for v in manifest["videos"] if v["kind"] == "lecture"]


def _x264_options(path: Path) -> dict[str, str]:
    """The encoder's settings as libx264 writes them into the stream (its SEI in the first packet)."""
    with av.open(str(path)) as container:
        packet = next(p for p in container.demux(video=0) if p.size)
        found = re.search(rb"options: ([ -~]+)", bytes(packet))
    assert found, f"{path}: no x264 settings in the first packet"
    return dict(opt.split("=", 1) for opt in found.group(1).decode().split() if "=" in opt)


def test_lectures_are_1280x720_25fps_h264_with_x264_key_frames(world, manifest):
    lectures = _lectures(manifest)
    assert len(lectures) == 3
    for video in lectures:
        path = world / video["path"]
        info = probe(path)
        assert (info.width, info.height, info.fps, info.codec) == (1280, 720, 25.0, "h264")
        assert info.num_frames == video["num_frames"] and 12 * 25 <= info.num_frames < 15 * 25
        assert (video["height"], video["width"], video["fps"], video["render_fps"]) == (720, 1280, 25, 5)
        assert video["style"]["render_scale"] == 4 and video["style"]["gop_s"] is None
        opts = _x264_options(path)
        assert (opts["keyint"], opts["keyint_min"], opts["scenecut"]) == ("250", "25", "40")  # x264's own
        assert int(opts["bframes"]) > 0  # B-frames, as a default x264 encode has
    # the target datasets are not lectures: their centres' formats are unchanged
    cholec = next(v for v in manifest["videos"] if v["dataset"] == "cholec80" and v["kind"] == "target")
    assert (cholec["height"], cholec["width"], cholec["fps"]) == (90, 160, 25)
    assert _x264_options(world / cholec["path"])["keyint"] == "50"


def test_frames_show_the_picture_of_their_time(world, manifest):
    """Frame k of a 25 fps lecture shows picture k // 5 (render_fps 5), wherever a border or scale put it."""
    lectures, _, _ = plan_world("smoke", 0, 1, HD)
    checked = 0
    for job in lectures:
        plan = job.plan
        renderer = Renderer(plan)
        reader = open_video(world / job.path, backend="pyav")
        times = np.array([0.1, 3.3, 6.5, 10.1])  # mid-picture: frames 2, 82, 162, 252
        decoded = reader.frames_at(times, FrameTransform(size=(180, 320)))
        reader.close()
        pictures = [renderer.picture(round(t * plan.render_fps - 0.5)) for t in times]
        small = [np.asarray(Image.fromarray(p).resize((320, 180), Image.BILINEAR)) for p in pictures]
        for i, frame in enumerate(decoded):
            diffs = [np.abs(frame.astype(float) - s.astype(float)).mean() for s in small]
            assert diffs[i] < 6.0, (job.plan.video_id, times[i], diffs)
            assert diffs[i] == min(diffs)
            checked += 1
    assert checked == 12


def test_labels_and_pairs_follow_the_videos_time(world, manifest, tmp_path):
    for video in _lectures(manifest):
        folder = (world / video["path"]).parent
        duration = probe(world / video["path"]).duration_s
        assert video["duration_s"] == pytest.approx(duration)
        keysteps = pd.read_csv(folder / "keysteps.csv")
        segments = video["segments"]
        assert list(keysteps["start"]) == pytest.approx([s["start"] for s in segments])
        assert list(keysteps["end"]) == pytest.approx([s["end"] for s in segments])
        assert all(abs(s["start"] * 5 - round(s["start"] * 5)) < 1e-6 for s in segments)  # on picture times
        narration = pd.read_csv(folder / "narration.csv")
        assert narration["start"].min() >= 0 and narration["end"].max() <= duration + 1e-6
    pairs = tmp_path / "pairs"
    assert run_pair(world / "corpus", pairs) == 0
    by_id = {v["id"]: v for v in _lectures(manifest)}
    phases = read_manifest(pairs, "phase").to_pylist()
    assert phases
    for pair in phases:  # a keystep's frames fall in its phase segment
        segment = next(s for s in by_id[pair["lecture_id"]]["segments"]
                       if s["start"] == pytest.approx(pair["start"]))
        assert all(segment["start"] - 1e-6 <= t <= segment["end"] + 1e-6 for t in pair["frame_times"])
    for pair in read_manifest(pairs, "video").to_pylist():
        assert pair["end"] == pytest.approx(by_id[pair["lecture_id"]]["duration_s"])


def test_the_setting_is_recorded_and_a_change_regenerates(world, manifest):
    recorded = {"size": [720, 1280], "fps": 25, "render_scale": 4, "gop": "x264", "duration_s": [12, 14]}
    assert manifest["params"]["lecture_video"] == recorded
    assert existing_world(world, world_params("smoke", 0, 1, 0.5, HD)) is not None
    assert existing_world(world, world_params("smoke", 0, 1, 0.5)) is None  # the default lectures differ
    assert existing_world(world, world_params("smoke", 0, 1, 0.5, {**HD, "gop": "world"})) is None


def test_no_override_is_the_default_world_exactly():
    """Nulls, the default gop, or nothing: the same plans, key frames and recorded settings as before."""
    base = world_params("smoke", 0, 1, 0.5)
    assert base == {"preset": "smoke", "seed": 0, "scale": 1, "narration_relevance": 0.5}
    defaults = SyntheticSettings().lecture_video.to_dict()
    assert world_params("smoke", 0, 1, 0.5, defaults) == base
    assert world_params("smoke", 0, 1, 0.5, {"gop": "world"}) == base

    def plans(lecture_video):
        lectures, targets, splits = plan_world("default", 0, 1, lecture_video)
        return [(plan_to_dict(j.plan), j.path, j.gop) for j in lectures + targets], splits

    reference = plans(None)
    assert plans(defaults) == reference
    assert [gop for _, _, gop in reference[0][:3]] == [8, 8, 8]  # world.yaml: gop_s 2 at 4 fps
    style = reference[0][0][0]["style"]
    assert style["gop_s"] == 2.0 and style["render_scale"] == 1


def test_derived_rates_and_invalid_settings():
    assert lecture_format(None)["render_fps"] == 4  # world.yaml draws every frame at 4 fps
    assert lecture_format({"fps": 25})["render_fps"] == 5  # the divisor of 25 nearest 4
    assert lecture_format({"fps": 30})["render_fps"] == 5  # 3 and 5 tie: the higher
    assert lecture_format({"fps": 24, "render_fps": 8})["render_fps"] == 8
    assert lecture_format({"gop": "x264"})["gop_s"] is None
    with pytest.raises(ValueError, match="even"):
        LectureVideoSettings(size=(721, 1280))
    with pytest.raises(ValueError, match="must divide fps 25"):
        LectureVideoSettings(fps=25, render_fps=4)
    with pytest.raises(ValueError, match="shortest, longest"):
        LectureVideoSettings(duration_s=(40, 30))
    with pytest.raises(HecvlError, match="render_fps 3 does not divide fps 4"):
        world_params("smoke", 0, 1, 0.5, {"render_fps": 3})  # world.yaml's 4 fps
    with pytest.raises(HecvlError, match=r"lecture_video\.gop"):
        world_params("smoke", 0, 1, 0.5, {"gop": "fast"})
    with pytest.raises(HecvlError, match="below 8 px"):
        world_params("smoke", 0, 1, 0.5, {"render_scale": 16})
