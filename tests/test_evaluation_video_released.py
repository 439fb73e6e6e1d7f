"""`hecvl evaluate --format surgclip|surglime`: released-size random checkpoints scored end to end.

The SurgCLIP-β file is the package's own model at the released sizes (random weights); the SurgLIME file is
written by hand in the peft layout. Both are scored on a tiny Cholec80-layout dataset with 2-frame windows
(eval.window; the protocols' 16 and 8 frames cost ~10 s a window on a CPU, and are tested at small sizes in
test_models_surgclip.py / test_models_surglime.py). The predictions must equal each model's own forward on
windows built here from the decoded frames with the authors' transforms.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from evaluation_helpers import gradient, write_cholec80
from PIL import Image
from tokenizer_helpers import read_vocab, surgclip_rule
from video_released_helpers import shared_surgclip, shared_surglime

from hecvl.cli import main
from hecvl.evaluation.prompts import load_prompts
from hecvl.released.surglime_model import load_surglime

VIDEOS = {"video01": [0, 1, 2], "video02": [3, 4, 5]}  # phase of each second


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("video_released_eval")
    ds = root / "tiny"
    tiny = write_cholec80(ds, VIDEOS, {"train": [], "test": list(VIDEOS)}, gradient, h=120, w=160)
    return {"root": root, "ds": ds, "tiny": tiny}


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")


def _params(world: dict, name: str, window: dict) -> Path:
    params = {
        "seed": 0,
        "study": {"name": "video-released-test"},
        "data": {"targets": {"tiny": world["tiny"]}},
        "frames": {"cache": str(world["root"] / "frames"), "backend": "pyav",
                   "transform": {"size": [48, 64], "crop": 32}},
        "model": {"visual": {"image_size": 32}},
        "eval": {"cache": str(world["root"] / "emb"), "batch_size": 8, "window": window},
    }  # fmt: skip
    path = world["root"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _run(world: dict, fmt: str, files: dict, window: dict) -> tuple[dict, pd.DataFrame]:
    out = world["root"] / f"out_{fmt}"
    args = ["evaluate", "--params", str(_params(world, fmt, window)), "--format", fmt,
            "--weights", str(files["ckpt"]), "--bert-dir", str(files["bert_dir"]),
            "--dataset", "tiny", "--split", "test", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return json.loads((out / "metrics.json").read_text()), pd.read_parquet(out / "predictions.parquet")


def _windows(video: Path, indices: list[list[int]], resample: Image.Resampling) -> np.ndarray:
    """(W, T, 224, 224, 3) uint8: each window's frames, decoded at full size and squashed with PIL."""
    from hecvl.video import open_video

    with open_video(video, backend="pyav") as reader:
        full = reader.frames_at(np.arange(1 + max(max(w) for w in indices), dtype=float))
    squashed = [np.asarray(Image.fromarray(f).resize((224, 224), resample)) for f in full]
    return np.stack([[squashed[i] for i in w] for w in indices])


def _pixels(windows: np.ndarray, mean: tuple, std: tuple) -> torch.Tensor:
    x = torch.from_numpy(windows).permute(0, 1, 4, 2, 3).float() / 255.0
    return (x - torch.tensor(mean).view(1, 1, 3, 1, 1)) / torch.tensor(std).view(1, 1, 3, 1, 1)


def _check_rows(pred: pd.DataFrame, video: str, phases: list[int]) -> np.ndarray:
    rows = pred[pred["video"] == video]
    assert rows["frame_sec"].tolist() == list(range(len(phases)))
    assert rows["gt_phase_id"].tolist() == phases
    scores = rows[[f"score_{k}" for k in range(7)]].to_numpy()
    assert (rows["phase_id"].to_numpy() == scores.argmax(axis=1)).all()
    return scores


@pytest.mark.slow  # a 0.9 GB random checkpoint written and scored: ~1 min on 2 shared cores
def test_surgclip_end_to_end_equals_the_package(
    world: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    files = shared_surgclip(tmp_path_factory)
    m, pred = _run(world, "surgclip", files, {"frames": 2, "start": -1, "ends": "shift"})
    run = m["run"]
    assert run["format"] == "surgclip" and run["space"] == "joint"
    assert run["variant"] == "released_surgclip_beta"
    assert run["transform"] == "224x224-pil-bicubic" and run["weights"] == str(files["ckpt"])

    ref = files["model"]  # the package's SurgCLIP: its text tower on its tokenizer's ids, vision, get_sim
    texts = load_prompts("cholec80").flat()
    ids, mask = surgclip_rule(texts, read_vocab(files["bert_dir"]))  # [CLS] + pieces, no [SEP]
    with torch.no_grad():
        text = ref.text_proj(ref.text_encoder(ids, attention_mask=mask).last_hidden_state[:, 0])
        for video, phases in VIDEOS.items():
            shift = [[0, 1], [0, 1], [1, 2]]  # 2-frame windows from one before, moved inside the video
            x = _pixels(_windows(world["ds"] / "videos" / f"{video}.mp4", shift, Image.Resampling.BICUBIC),
                        (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # fmt: skip
            vision = ref.vision_proj(ref.encode_vision(x)[1])
            logits, _ = ref.get_sim(vision, text, temp=ref.temp)
            frames = F.normalize(vision, dim=-1)
            scores = _check_rows(pred, video, phases)
            # 100 x cos(m/|m|, text) = 100 x temp x logits / |m|: the argmax is the package's
            rescaled = 100 * ref.temp * logits / frames.mean(1).norm(dim=-1, keepdim=True)
            np.testing.assert_allclose(scores, rescaled.numpy(), rtol=0, atol=2e-3)
            assert (scores.argmax(1) == logits.argmax(1).numpy()).all()


@pytest.mark.slow  # a 0.9 GB random checkpoint written and scored: ~1 min on 2 shared cores
def test_surglime_end_to_end_equals_the_model(
    world: dict, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hecvl.released import surglime_model as surglime

    files = shared_surglime(tmp_path_factory)
    loaded: list = []  # the model the command loads (its forward: the literal one, test_models_surglime)

    def recording_load(*args, **kwargs):
        loaded.append(load_surglime(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(surglime, "load_surglime", recording_load)
    m, pred = _run(world, "surglime", files, {"frames": 2, "start": -1, "ends": "anchor"})
    run = m["run"]
    assert run["format"] == "surglime" and run["variant"] == "released_surglime"
    assert run["transform"] == "224x224-pil"
    [model] = loaded
    text = model.embed_texts(load_prompts("cholec80").flat())
    for video, phases in VIDEOS.items():
        anchor = [[0, 0], [0, 1], [1, 2]]  # one before; outside the video: the scored frame itself
        x = _pixels(_windows(world["ds"] / "videos" / f"{video}.mp4", anchor, Image.Resampling.BILINEAR),
                    (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # fmt: skip
        expected = 100 * model.encode_windows(x) @ text.T
        np.testing.assert_allclose(_check_rows(pred, video, phases), expected.numpy(), rtol=0, atol=2e-3)


@pytest.mark.parametrize("fmt", ["surgclip", "surglime"])
def test_bad_requests_are_one_line_errors(
    world: dict, fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    params = _params(world, "bad", {"frames": 1})
    base = ["evaluate", "--params", str(params), "--format", fmt, "--dataset", "tiny",
            "--out", str(tmp_path / "o")]  # fmt: skip
    weights = tmp_path / "x.pth"
    weights.write_bytes(b"")
    assert main([*base, "--weights", str(weights)]) != 0
    assert f"--format {fmt} needs --bert-dir" in capsys.readouterr().err
    assert main([*base, "--weights", str(weights), "--bert-dir", str(tmp_path), "--space", "clip"]) != 0
    assert f"--space does not apply to --format {fmt}" in capsys.readouterr().err
    assert main([*base, "--weights", str(tmp_path), "--bert-dir", str(tmp_path)]) != 0
    assert "takes the .pth file itself" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bicubic_transform_is_pil_bicubic_and_its_own_cache_entry() -> None:
    from hecvl.video.transform import FrameTransform

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 120, 160, 3), dtype=np.uint8)
    bicubic = FrameTransform((224, 224), resample="pil-bicubic")
    bilinear = FrameTransform((224, 224), resample="pil")
    for transform, method in ((bicubic, Image.Resampling.BICUBIC), (bilinear, Image.Resampling.BILINEAR)):
        expected = np.stack([np.asarray(Image.fromarray(f).resize((224, 224), method)) for f in frames])
        np.testing.assert_array_equal(transform.finish(frames), expected)
    assert not np.array_equal(bicubic.finish(frames), bilinear.finish(frames))
    assert bicubic.key() == "224x224-pil-bicubic" != bilinear.key() == "224x224-pil"
    assert bicubic.decoder_size is None  # full-size frames from the decoder, resized by PIL
