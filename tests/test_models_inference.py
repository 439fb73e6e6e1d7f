"""The model's inference fast paths: several levels from one backbone pass, and uint8 preprocessing.

Both exist for evaluation throughput (benchmarks/evaluate.py); these tests pin that they give the
numbers of the plain paths: `embed_video` per level, and the float resize of the frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hecvl.config import FramesSettings, load_params
from hecvl.models import LEVELS, build_model, visual_encoder
from hecvl.models.visual_encoder import preprocess_frames
from hecvl.video import FrameTransform, frames_setup, open_video

ROOT = Path(__file__).resolve().parents[1]
GREY = 1.0 / 255.0  # one grey level, in the [0, 1] units before normalisation


@pytest.fixture(scope="module")
def params() -> dict:
    return load_params(ROOT / "params.yaml").to_dict()


@pytest.fixture(scope="module")
def models(params) -> dict:
    shared = {**params["model"], "heads": {**params["model"]["heads"], "mode": "shared"}}
    return {
        "separate": build_model(params["model"], seed=0).eval(),
        "shared": build_model(shared, seed=0).eval(),
    }


@pytest.fixture(scope="module")
def real_frames(real_clip) -> np.ndarray:
    """Three 1080p frames of the real AutoLaparo clip (uint8, as decoded)."""
    with open_video(real_clip) as reader:
        return reader.frames_at([0.0, 4.0, 9.0])


def float_reference(frames: np.ndarray, size: int, mean, std) -> torch.Tensor:
    """The plain float path: to [0, 1], resize shorter side to S (antialiased bilinear), centre crop,
    normalise; NCHW contiguous (what preprocessing did before the uint8 path)."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        nh, nw = max(size, round(h * size / min(h, w))), max(size, round(w * size / min(h, w)))
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[:, :, top : top + size, left : left + size]
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous()


@pytest.mark.parametrize("mode", ["separate", "shared"])
def test_embed_video_levels_equals_embed_video_per_level(models, mode):
    model = models[mode]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 3, 64, 64, generator=g)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [0, 1, 1]], dtype=torch.bool)
    with torch.inference_mode():
        for m in (None, mask):
            together = model.embed_video_levels(x, LEVELS, m)
            assert list(together) == list(LEVELS)
            for level in LEVELS:
                torch.testing.assert_close(together[level], model.embed_video(x, level, m), atol=1e-6, rtol=0)
            one = model.embed_video_levels(x[:, 0], ["phase"])  # (N, 3, H, W) single frames, one level
            torch.testing.assert_close(one["phase"], model.embed_video(x[:, 0], "phase"), atol=1e-6, rtol=0)
    spread = (together["clip"] - together["video"]).abs().max().item()
    assert (spread > 1e-3) == (mode == "separate")  # separate spaces differ; shared heads are one space
    with pytest.raises(ValueError, match="level must be one of"):
        model.embed_video_levels(x, ["clip", "frame"])


def test_uint8_resize_matches_the_float_path_within_one_grey_level(models, real_frames):
    v = models["separate"].config.visual
    s = np.array(v.std).reshape(1, 3, 1, 1)
    for frames in (real_frames, real_frames[:, ::7, ::7], real_frames[:, :48, :80]):  # down- and upsampling
        ref = float_reference(frames, v.image_size, v.mean, v.std)
        fast = preprocess_frames(frames, v.image_size, v.mean, v.std)
        assert fast.shape == ref.shape == (3, 3, 64, 64) and fast.dtype == torch.float32
        grey = (fast - ref).abs().numpy() * s * 255.0  # difference in grey levels, per channel
        assert grey.max() < 1.0 and grey.mean() < 0.35, (frames.shape, grey.max(), grey.mean())
        # the float branch (other devices) is the reference up to float rounding
        flt = visual_encoder._resize_crop(torch.from_numpy(frames), v.image_size, in_uint8=False)
        x = (flt.permute(0, 3, 1, 2) / 255.0 - torch.tensor(v.mean).view(1, 3, 1, 1)) / torch.tensor(
            v.std
        ).view(1, 3, 1, 1)
        torch.testing.assert_close(x, ref, atol=1e-5, rtol=0)


def test_frames_at_the_model_size_are_only_normalised(models, monkeypatch):
    v = models["separate"].config.visual

    def no_resize(*args, **kwargs):
        raise AssertionError("frames already at the model's size were resized")

    monkeypatch.setattr(visual_encoder.F, "interpolate", no_resize)
    frames = np.random.default_rng(0).integers(0, 256, (2, 5, 64, 64, 3), dtype=np.uint8)
    out = models["separate"].preprocess(frames)
    assert out.shape == (2, 5, 3, 64, 64)
    expected = (frames.transpose(0, 1, 4, 2, 3) / 255.0 - np.reshape(v.mean, (3, 1, 1))) / np.reshape(
        v.std, (3, 1, 1)
    )
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6, rtol=0)
    with pytest.raises(AssertionError, match="resized"):  # the guard itself bites on other sizes
        models["separate"].preprocess(frames[0, :, :60])


def test_channels_last_output_embeds_like_contiguous_input(models, real_frames):
    model = models["separate"]
    x = model.preprocess(real_frames)
    assert x.is_contiguous(memory_format=torch.channels_last)  # the frames' own layout: no copy
    with torch.inference_mode():
        a = model.embed_video_levels(x.unsqueeze(1), LEVELS)
        b = model.embed_video_levels(x.contiguous().unsqueeze(1), LEVELS)
    for level in LEVELS:
        torch.testing.assert_close(a[level], b[level], atol=1e-5, rtol=0)


def test_evaluation_frames_come_at_the_model_size(params, models, real_clip, monkeypatch):
    """params.yaml's `frames.transform` crops to the model's input size: no resize at evaluation."""
    frames = load_params(ROOT / "params.yaml").frames
    assert frames == FramesSettings()  # params.yaml leaves frames to the defaults of hecvl.config
    _, transform, fps = frames_setup(frames)
    assert isinstance(transform, FrameTransform) and fps == 1.0
    assert transform.crop == models["separate"].config.visual.image_size
    with open_video(real_clip) as reader:
        small = reader.frames_at([0.0, 4.0, 9.0], transform=transform)
    assert small.shape == (3, 64, 64, 3)
    monkeypatch.setattr(visual_encoder.F, "interpolate", None)  # any resize would fail
    assert models["separate"].preprocess(small).shape == (3, 3, 64, 64)
