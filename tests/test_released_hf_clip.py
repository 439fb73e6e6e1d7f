"""`--format hf-clip`: Hugging Face CLIP and SigLIP folders scored by the same pipeline as every other model.

Tiny random models written with `save_pretrained` (a few layers, 32 px images, a character-level CLIP
tokenizer built here: nothing is downloaded). Their embeddings must be transformers' own
`get_image_features` / `get_text_features`, the scores of `hecvl evaluate` 100 x the cosine of those, and
the protocol sweep must take them like any model.
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
from evaluation_helpers import PHASES, gradient, small_model_params, write_cholec80
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPTokenizer,
    SiglipConfig,
    SiglipModel,
)
from transformers.convert_slow_tokenizer import bytes_to_unicode

from hecvl.cli import main
from hecvl.evaluation.formats import FAMILIES
from hecvl.evaluation.prompts import load_prompts
from hecvl.evaluation.sources import ModelSource, ScoredModel, SourceRequest
from hecvl.video import FrameCache, FrameTransform

MEAN, STD = (0.4, 0.45, 0.5), (0.25, 0.26, 0.27)  # the CLIP folder's preprocessor_config.json
POSITIONS = 200  # character tokens: every shipped prompt fits, nothing is truncated
VIDEOS = {"video01": [0, 0, 1, 2], "video02": [1, 3, 3, 4, 5], "video03": [2, 4, 6], "video04": [0, 5, 5]}
TEXTS = ["the gallbladder is cut.", "Calot's triangle dissection", "clipping"]


def _tokenizer() -> CLIPTokenizer:
    """CLIP's byte-level BPE with no merges: one token per character (the end-of-word form last)."""
    chars = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]:
        vocab.setdefault(token, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[])


def _towers(vocab: int) -> tuple[dict, dict]:
    text = {"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": POSITIONS}
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 2}
    return text, vision  # fmt: skip


def _save(model: torch.nn.Module, tokenizer: CLIPTokenizer, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    tokenizer = _tokenizer()
    text, vision = _towers(len(tokenizer))
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(text_config={**text, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
                                vision_config=vision, projection_dim=16))  # fmt: skip
    clip_dir = _save(clip, tokenizer, root / "tiny-clip.v1")
    CLIPImageProcessor(image_mean=list(MEAN), image_std=list(STD)).save_pretrained(clip_dir)
    siglip = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    return {"clip": clip_dir, "siglip": _save(siglip, tokenizer, root / "tiny-siglip")}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("hfworld")
    splits = {"train": ["video01"], "val": ["video02"], "test": ["video03", "video04"]}
    tiny = write_cholec80(root / "tiny", VIDEOS, splits, gradient, h=48, w=64)
    params = small_model_params(root, "hf-test", tiny)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return {"root": root, "params": path, "cfg": params, "tiny": tiny}


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")


def _source(world: dict, folder: Path) -> ModelSource:
    from hecvl.config import load_params

    return FAMILIES["hf-clip"].build(SourceRequest(load_params(world["params"]), weights=folder))


def _pixels(frames: np.ndarray, mean: tuple, std: tuple) -> torch.Tensor:
    x = torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_embeddings_are_transformers_own(world: dict, folders: dict, kind: str) -> None:
    source = _source(world, folders[kind])
    model, key, description = source.load(torch.device("cpu"))
    assert isinstance(source, ModelSource) and isinstance(model, ScoredModel) and not model.temporal
    assert len(key) == 16 and description.startswith("CLIPModel" if kind == "clip" else "SiglipModel")
    reference = (CLIPModel if kind == "clip" else SiglipModel).from_pretrained(folders[kind]).eval()
    mean, std = (MEAN, STD) if kind == "clip" else ((0.5,) * 3, (0.5,) * 3)
    assert model.normalisation == (mean, std)

    frames = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    x = model.preprocess(frames)
    torch.testing.assert_close(x.contiguous(), _pixels(frames, mean, std), rtol=0, atol=1e-6)
    got = model.embed_video_levels(x.unsqueeze(1), ["joint"])["joint"]
    with torch.no_grad():
        expected = reference.get_image_features(pixel_values=_pixels(frames, mean, std)).pooler_output
    torch.testing.assert_close(got, F.normalize(expected, dim=-1), rtol=0, atol=1e-5)
    # a window of frames: the mean of their image features, unit length
    window = model.embed_video_levels(x.view(2, 3, 3, 32, 32), ["joint"])["joint"]
    pooled = F.normalize(expected.view(2, 3, -1).mean(1), dim=-1)
    torch.testing.assert_close(window, pooled, rtol=0, atol=1e-5)

    tokenizer = CLIPTokenizer.from_pretrained(folders[kind])
    padding = "longest" if kind == "clip" else "max_length"  # SigLIP pools the last position: as trained
    tokens = tokenizer(TEXTS, padding=padding, max_length=POSITIONS, truncation=True, return_tensors="pt")
    with torch.no_grad():
        expected = reference.get_text_features(**tokens).pooler_output
    text = model.embed_text(TEXTS, "joint")
    torch.testing.assert_close(text, F.normalize(expected, dim=-1), rtol=0, atol=1e-5)
    for i, sentence in enumerate(TEXTS):  # batching (padding) changes no text's embedding
        torch.testing.assert_close(model.embed_text([sentence], "joint")[0], text[i], rtol=0, atol=1e-5)
    assert model.truncated_prompts(load_prompts("cholec80").flat()) == []
    assert model.truncated_prompts(["x" * POSITIONS]) == [("x" * POSITIONS, POSITIONS + 2)]


def test_evaluate_scores_a_clip_folder_with_its_own_embeddings(world: dict, folders: dict) -> None:
    out = world["root"] / "clip"
    argv = ["evaluate", "--params", str(world["params"]), "--format", "hf-clip",
            "--weights", str(folders["clip"]), "--dataset", "tiny", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    run = json.loads((out / "metrics.json").read_text())["run"]
    assert run["format"] == "hf-clip" and run["weights"] == str(folders["clip"]) and "bert_dir" not in run
    assert run["space"] == "joint" and run["levels"] == ["joint"] and run["variant"] == "hf_tiny_clip_v1"
    assert run["method"] == "zeroshot" and run["transform"] == "48x64-bilinear-c32"  # the study's frames
    assert run["videos"] == ["video03", "video04"] and run["truncated_prompts"] == 0

    # every score is 100 x cos(transformers' image features of the cached frame, the class's text features)
    reference = CLIPModel.from_pretrained(folders["clip"]).eval()
    tokenizer = CLIPTokenizer.from_pretrained(folders["clip"])
    with torch.no_grad():
        tokens = tokenizer(load_prompts("cholec80").flat(), padding=True, return_tensors="pt")
        classes = F.normalize(reference.get_text_features(**tokens).pooler_output, dim=-1)
    pred = pd.read_parquet(out / "predictions.parquet")
    cache = FrameCache(world["cfg"]["frames"]["cache"], backend="pyav")
    for video in run["videos"]:
        frames = cache.get(Path(world["tiny"]["root"]) / "videos" / f"{video}.mp4",
                           FrameTransform((48, 64), 32), fps=1.0)  # fmt: skip
        with torch.no_grad():
            pixels = _pixels(np.asarray(frames), MEAN, STD)
            image = reference.get_image_features(pixel_values=pixels).pooler_output
        expected = 100 * F.normalize(image, dim=-1) @ classes.T
        rows = pred[pred["video"] == video]
        assert rows["gt_phase_id"].tolist() == VIDEOS[video]
        got = rows[[f"score_{k}" for k in range(len(PHASES))]].to_numpy()
        np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-3)
        assert (rows["phase_id"].to_numpy() == got.argmax(1)).all()


def test_protocol_sweep_takes_clip_and_siglip(world: dict, folders: dict) -> None:
    for kind in ("clip", "siglip"):
        out = world["root"] / f"sweep-{kind}"
        argv = ["evaluate", "--params", str(world["params"]), "--format", "hf-clip", "--weights",
                str(folders[kind]), "--name", kind, "--dataset", "tiny", "--sensitivity", "--out", str(out)]
        assert main(argv) == 0
        table = pd.read_csv(out / "sensitivity.csv")
        assert set(table["model"]) == {f"hf_{kind}"}
        full = table[table["choice"] == "all"].set_index("protocol")
        assert list(full.index) == ["hecvl", "surgvlp", "peskavlp-table1", "surgclip", "surglime"]
        assert full.loc["surglime", "split"] == "val+test" and full.loc["hecvl", "split"] == "test"
        run = json.loads((out / "surgclip" / "tiny" / "metrics.json").read_text())["run"]
        assert run["transform"] == "224x224-pil-bicubic" and run["format"] == "hf-clip"
        assert table[["accuracy_mean", "f1_mean"]].notna().all().all()
    # SigLIP normalises with mean = std = 0.5 itself: the surgclip protocol's normalisation alone is no row
    siglip = pd.read_csv(world["root"] / "sweep-siglip" / "sensitivity.csv")
    clip = pd.read_csv(world["root"] / "sweep-clip" / "sensitivity.csv")
    assert ("surgclip", "normalise") in set(zip(clip["protocol"], clip["choice"], strict=True))
    assert ("surgclip", "normalise") not in set(zip(siglip["protocol"], siglip["choice"], strict=True))


def test_bad_requests_are_one_line_errors(world: dict, folders: dict, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    base = ["evaluate", "--params", str(world["params"]), "--format", "hf-clip", "--dataset", "tiny",
            "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(base) == 2
    assert "--format hf-clip needs --weights" in capsys.readouterr().err
    assert main([*base, "--weights", str(tmp_path)]) == 2
    assert "a local CLIPModel or SiglipModel folder" in capsys.readouterr().err
    assert main([*base, "--weights", str(folders["clip"]), "--space", "clip"]) == 2
    assert "--space does not apply to --format hf-clip" in capsys.readouterr().err
    assert main([*base, "--weights", str(folders["clip"]), "--bert-dir", str(tmp_path)]) == 2
    assert "--bert-dir applies to --format surgvlp, surgclip, surglime only" in capsys.readouterr().err
    assert main([*base, "--weights", str(folders["clip"]), "--linear-probe"]) == 2
    assert "--linear-probe is not offered for --format hf-clip" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
