"""Procedural frames and their H.264 encoding: drawing, scenes, looks, decodable deterministic MP4."""

from __future__ import annotations

import hashlib

import av
import numpy as np
import pytest

from hecvl.errors import HecvlError
from hecvl.synth import draw, style
from hecvl.synth.encode import write_mp4
from hecvl.synth.render import Renderer
from hecvl.synth.world import plan_video

WHITE = np.ones(3, dtype=np.float32)


def _plan(centre: str = "strasbourg", seed: int = 0, duration: int = 20):
    look = style.centre_style(centre)
    return plan_video(f"v{seed}", "target", look["procedure"], look["sequence"], centre, look, duration, seed)


@pytest.mark.parametrize(
    ("p0", "p1"), [((5.0, 10.0), (55.0, 30.0)), ((30.0, 2.0), (20.0, 60.0)), ((8, 8), (14, 12))]
)
def test_capsule_covers_points_within_radius_and_nothing_far(p0, p1):
    img = np.zeros((3, 64, 64), dtype=np.float32)
    draw.capsule(img, p0, p1, 3.0, WHITE, shade=0)
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    a, b = np.array(p0), np.array(p1)
    t = np.clip(((xs - a[0]) * (b - a)[0] + (ys - a[1]) * (b - a)[1]) / np.sum((b - a) ** 2), 0, 1)
    d = np.hypot(a[0] + t * (b - a)[0] - xs, a[1] + t * (b - a)[1] - ys)
    assert np.all(img[0][d < 2.4] > 0.99)
    assert np.all(img[0][d > 3.6] == 0)


def test_shapes_outside_the_image_are_clipped():
    img = np.zeros((3, 20, 30), dtype=np.float32)
    draw.capsule(img, (-50, -50), (-10, -40), 2, WHITE)
    draw.ellipse(img, (100, 100), (5, 5), WHITE)
    draw.capsule(img, (-40, 10), (10, 10), 2, WHITE)  # enters from the left edge
    assert img[:, :, 15:].max() == 0 and img[:, 8:12, :9].min() > 0.5


def test_pictures_are_deterministic_and_carry_the_phase():
    plan = _plan(seed=2, duration=60)
    a, b = Renderer(plan), Renderer(plan)
    idx = list(range(0, plan.n_pictures, 7))
    pics = [a.picture(i) for i in idx]
    assert all(np.array_equal(p, b.picture(i)) for p, i in zip(pics, idx, strict=True))
    assert pics[0].shape == (*plan.size, 3) and pics[0].dtype == np.uint8
    # pictures of different phases differ more than pictures within one phase
    mean = {i: p.reshape(-1, 3).mean(0) for i, p in zip(idx, pics, strict=True)}
    phase = {i: plan.phase_at(plan.picture_time(i)) for i in idx}
    oob = {i for i in idx if plan.episode_at(plan.picture_time(i), "out_of_body")}
    keep = [i for i in idx if phase[i] >= 0 and i not in oob]
    within = [np.abs(mean[i] - mean[j]).sum() for i in keep for j in keep if i < j and phase[i] == phase[j]]
    between = [np.abs(mean[i] - mean[j]).sum() for i in keep for j in keep if phase[i] != phase[j]]
    assert np.mean(between) > np.mean(within)


def test_centres_look_different():
    """The same scene through two centres' cameras: other colour balance and size."""
    means = {}
    for centre in ("cholec80", "strasbourg", "bern"):
        look = style.centre_style(centre)
        plan = plan_video("same", "target", "gastric_bypass", "strasbourg", centre, look, 20, 5)
        pic = Renderer(plan).picture(plan.render_fps * 5)
        assert pic.shape == (*look["size"], 3)
        means[centre] = pic.reshape(-1, 3).mean(0)
    assert np.abs(means["strasbourg"] - means["bern"]).max() > 3
    assert means["strasbourg"][2] - means["strasbourg"][0] > means["bern"][2] - means["bern"][0]


def test_lecture_style_has_borders_overlays_and_varies():
    looks = [style.lecture_style(np.random.default_rng(k)) for k in range(30)]
    assert any(s["border"] for s in looks) and any(not s["border"] for s in looks)
    assert any(s["overlay"] for s in looks)
    assert len({tuple(s["gains"]) for s in looks}) == 30
    look = next(s for s in looks if s["border"] and s["overlay"])
    plan = plan_video("lec", "lecture", "cholecystectomy", "lecture_cholecystectomy", "lecture", look, 30, 1)
    pic = Renderer(plan).picture(10)
    assert pic.shape == (90, 160, 3)  # 16:9, as the 103x183 resize every frame goes through


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mp4_decodes_with_decord_and_pyav_and_is_byte_identical(tmp_path):
    decord = pytest.importorskip("decord")
    plan = _plan("cholec80", seed=1, duration=6)
    pics = list(Renderer(plan).pictures())
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    for path in (a, b):
        assert (
            write_mp4(path, iter(pics), plan.fps, plan.n_frames, plan.repeat, gop=2 * plan.fps)
            == plan.n_frames
        )
    assert _sha(a) == _sha(b)
    vr = decord.VideoReader(str(a))
    assert len(vr) == plan.n_frames and vr.get_avg_fps() == pytest.approx(25.0)
    frame = vr[plan.repeat * 3].asnumpy()
    assert frame.shape == pics[3].shape
    assert np.abs(frame.astype(int) - pics[3]).mean() < 6  # lossy, but the same picture
    with av.open(str(a)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        keys = [
            float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None and p.is_keyframe
        ]
    with av.open(str(a)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == plan.n_frames
    assert keys[0] == 0.0
    assert np.diff([*sorted(keys), plan.duration]).max() <= 2.0 + 1e-9  # a keyframe at least every 2 s


def test_encoder_rejects_odd_sizes_and_leaves_nothing(tmp_path):
    path = tmp_path / "odd.mp4"
    with pytest.raises(HecvlError, match="even"):
        write_mp4(path, iter([np.zeros((9, 16, 3), np.uint8)]), 5, 1)
    assert not path.exists() and not list(tmp_path.iterdir())
