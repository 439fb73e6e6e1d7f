"""Named protocols: what each resolves to (against its source's settings), their windows, and
`hecvl evaluate --protocol` end to end on a small Cholec80-layout dataset of real H.264 videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from evaluation_helpers import small_model_params, write_cholec80

from hecvl.cli import main
from hecvl.config import Params, load_params
from hecvl.config.evaluation import WindowSettings
from hecvl.errors import HecvlError
from hecvl.evaluation.protocols import apply_protocol, describe, protocol_split, protocols
from hecvl.evaluation.windows import pool_windows, window_indices

VIDEOS = ["video01", "video02", "video03", "video04", "video05"]


def _draw(p: int, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]], np.uint8)[p % 4]
    return np.clip(base.astype(int) + rng.integers(-30, 30, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("protocols")
    videos = {v: [0, 0, 1, 1, 1, 2, 2, 3, 3, 3][: 7 + i] for i, v in enumerate(VIDEOS)}
    splits = {"train": VIDEOS[:2], "val": VIDEOS[2:3], "test": VIDEOS[3:]}
    tiny = write_cholec80(root / "tiny", videos, splits, _draw, h=48, w=64)
    params = small_model_params(root, "protocol-test", tiny)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return {"root": root, "params": path}


@pytest.fixture(autouse=True)
def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HECVL_TRACKING", "off")


def _evaluate(world: dict, out: Path, *extra: str) -> dict:
    args = ["evaluate", "--params", str(world["params"]), "--dataset", "tiny", "--out", str(out),
            "--untrained", *extra]
    assert main(args) == 0
    return json.loads((out / "metrics.json").read_text())


# --- what each protocol fixes, against its source (docs/evaluation_protocols.md) ------------------------


def test_every_named_protocol_is_listed_with_its_version_and_hash(capsys: pytest.CaptureFixture) -> None:
    assert main(["protocols"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert names == ["hecvl", "surgvlp", "peskavlp-table1", "surgclip", "surglime"]
    hashes = [line.split()[2] for line in lines]
    assert len(set(hashes)) == 5 and all(len(h) == 12 for h in hashes)


def _resolved(name: str) -> dict:
    return describe(name, load_params("params.yaml"))


def test_surgvlp_is_the_authors_single_frame_crop_protocol() -> None:
    r = _resolved("surgvlp")["cholec80"]
    s = r["settings"]
    assert r["applied"]["split"] == "test"  # videos 49-80
    assert s["window"]["frames"] == 1
    assert s["transform"] == {"size": [360, 640], "crop": 224, "resample": "pil"}
    assert s["normalise"] == "imagenet" and s["metric"] == "video" and s["fps"] == 1.0
    assert s["prompts"]["supplied"] == "user"


def test_peskavlp_table1_records_its_bypass_fold() -> None:
    s = _resolved("peskavlp-table1")["strasbypass70"]["settings"]
    assert s["fold"] == 0 and s["metric"] == "video"
    assert s["transform"] == {"size": [360, 640], "crop": 224, "resample": "pil"}


def test_surgclip_is_a_centred_16_frame_squash_with_half_normalisation() -> None:
    s = _resolved("surgclip")["cholec80"]["settings"]
    assert s["window"] == {"frames": 16, "start": -8, "ends": "shift"}
    assert s["transform"] == {"size": [224, 224], "crop": None, "resample": "pil-bicubic"}
    assert s["normalise"] == "half" and s["metric"] == "both"


def test_surglime_tests_cholec80_41_to_80_with_an_8_frame_anchor_window() -> None:
    r = _resolved("surglime")
    assert r["cholec80"]["applied"]["split"] == "val+test"  # videos 41-80
    assert r["autolaparo"]["applied"]["split"] == "test"  # 15-21
    s = r["cholec80"]["settings"]
    assert s["window"] == {"frames": 8, "start": -3, "ends": "anchor"}
    assert s["transform"] == {"size": [224, 224], "crop": None, "resample": "pil"}
    assert s["normalise"] == "imagenet" and s["metric"] == "both"


def test_the_study_protocol_takes_every_choice_from_params() -> None:
    params = load_params("params.yaml")
    s = describe("hecvl", params)["cholec80"]["settings"]
    assert s["transform"] == params.frames.transform.to_dict()
    assert s["prompts"]["style"] == params.eval.prompts and s["window"]["frames"] == 1
    changed = params.updated({"eval": {"prompts": "class_name"}})
    assert describe("hecvl", changed)["cholec80"]["hash"] != describe("hecvl", params)["cholec80"]["hash"]


def test_applying_a_protocol_sets_the_evaluation_and_frames_sections() -> None:
    params = apply_protocol(load_params("params.yaml"), "surglime")
    assert params.eval.protocol == "surglime" and params.eval.window.frames == 8
    assert params.frames.transform.size == (224, 224) and params.frames.transform.crop is None
    assert protocol_split(params, "cholec80") == "val+test"
    with pytest.raises(HecvlError, match=r"unknown protocol 'nope'.*surgclip"):
        apply_protocol(params, "nope")


def test_the_shipped_protocols_cover_the_issue_list() -> None:
    assert {"hecvl", "surgvlp", "peskavlp-table1", "surgclip", "surglime"} <= set(protocols())
    assert all(p.source for p in protocols().values())


# --- windows: each placement against a literal loop over the sources' descriptions -----------------


def _literal(n: int, size: int, first: int, ends: str) -> np.ndarray:
    rows = []
    for anchor in range(n):
        if ends == "shift":  # SurgCLIP: start clamped at 0, window shifted back from the end, padded
            start = max(0, anchor + first)
            if start + size > n:
                start = max(0, n - size)
            rows.append([min(start + k, n - 1) for k in range(size)])
        elif ends == "clamp":
            rows.append([min(max(anchor + first + k, 0), n - 1) for k in range(size)])
        else:  # SurgLIME: a neighbour outside the video is the anchor itself
            rows.append([i if 0 <= i < n else anchor for i in (anchor + first + k for k in range(size))])
    return np.array(rows)


@pytest.mark.parametrize("ends", ["shift", "clamp", "anchor"])
@pytest.mark.parametrize(
    ("n", "size", "start"), [(40, 16, -8), (10, 16, -8), (30, 8, -3), (5, 8, -3), (9, 4, -3)]
)
def test_window_indices_follow_the_sources(ends: str, n: int, size: int, start: int) -> None:
    window = WindowSettings(frames=size, start=start, ends=ends)
    np.testing.assert_array_equal(window_indices(n, window), _literal(n, size, start, ends))


def test_surglime_window_edges_use_the_scored_frame() -> None:
    idx = window_indices(10, WindowSettings(frames=8, start=-3, ends="anchor"))
    assert idx[0].tolist() == [0, 0, 0, 0, 1, 2, 3, 4]
    assert idx[9].tolist() == [6, 7, 8, 9, 9, 9, 9, 9]


def test_pooled_window_is_the_renormalised_mean_of_its_frames() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(12, 5)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    window = WindowSettings(frames=4, ends="clamp")
    pooled = pool_windows(emb, window)
    mean = emb[[4, 5, 6, 7]].mean(axis=0)  # second 6: offsets -2..+1
    np.testing.assert_allclose(pooled[6], mean / np.linalg.norm(mean), rtol=1e-5)
    assert pool_windows(emb, WindowSettings()) is emb


# --- end to end --------------------------------------------------------------------------------------


def test_evaluate_under_a_protocol_applies_and_records_it(world: dict) -> None:
    m = _evaluate(world, world["root"] / "surglime", "--protocol", "surglime")
    run = m["run"]
    assert m["protocol"] == "surglime" and m["protocol_version"] == 1 and len(m["protocol_hash"]) == 12
    assert run["protocol"]["hash"] == m["protocol_hash"]
    assert run["split"] == "val+test" and run["videos"] == ["video03", "video04", "video05"]
    assert run["transform"] == "224x224-pil"
    assert {"accuracy_mean", "f1_mean", "accuracy_pooled", "f1_pooled"} <= set(m)
    # the frames were decoded at the protocol's transform and embedded once, with its normalisation
    folders = {p.name for p in (world["root"] / "emb").glob("*/tiny/*")}
    assert "224x224-pil" in folders  # imagenet is this model's own normalisation too: same embeddings


def test_normalisation_and_window_change_the_scores_and_the_hash(world: dict) -> None:
    clip = _evaluate(world, world["root"] / "surgclip", "--protocol", "surgclip")
    assert clip["run"]["transform"] == "224x224-pil-bicubic" and clip["run"]["split"] == "test"
    assert any(p.name == "224x224-pil-bicubic-nhalf" for p in (world["root"] / "emb").glob("*/tiny/*"))
    study = _evaluate(world, world["root"] / "study")
    assert study["protocol"] == "hecvl" and study["protocol_hash"] != clip["protocol_hash"]
    again = _evaluate(world, world["root"] / "surgclip-again", "--protocol", "surgclip")
    assert again["protocol_hash"] == clip["protocol_hash"]
    assert again["accuracy_mean"] == clip["accuracy_mean"] and again["f1_pooled"] == clip["f1_pooled"]


def test_a_protocol_split_the_dataset_lacks_is_named(world: dict, tmp_path: Path) -> None:
    params = yaml.safe_load(world["params"].read_text())
    splits = Path(params["data"]["targets"]["tiny"]["root"]) / "splits.json"
    table = json.loads(splits.read_text())
    other = tmp_path / "tiny"
    other.mkdir()
    (other / "splits.json").write_text(json.dumps({"train": table["train"], "test": table["test"]}))
    for name in ("videos", "phase_annotations"):
        (other / name).symlink_to(splits.parent / name)
    params["data"]["targets"]["tiny"]["root"] = str(other)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    args = ["evaluate", "--params", str(path), "--dataset", "tiny", "--out", str(tmp_path / "o"),
            "--untrained", "--protocol", "surglime"]
    assert main(args) == 2
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_sensitivity_sweep_scores_every_protocol_and_each_choice(world: dict) -> None:
    import pandas as pd

    out = world["root"] / "sweep"
    assert main(["evaluate", "--params", str(world["params"]), "--dataset", "tiny", "--untrained",
                 "--sensitivity", "--out", str(out)]) == 0
    table = pd.read_csv(out / "sensitivity.csv")
    full = table[table["choice"] == "all"].set_index("protocol")
    assert list(full.index) == ["hecvl", "surgvlp", "peskavlp-table1", "surgclip", "surglime"]
    # one-choice rows exist where a protocol differs from the study's in more than one choice
    ones = set(zip(table["protocol"], table["choice"], strict=True)) - {(p, "all") for p in full.index}
    assert {("surglime", "split"), ("surglime", "window"), ("surglime", "transform"), ("surgclip", "window"),
            ("surgclip", "normalise"), ("surgclip", "transform")} <= ones
    # ImageNet is this model's own normalisation: no row for that choice alone
    assert ("surglime", "normalise") not in ones and ("surgvlp", "normalise") not in ones
    assert ("surgvlp", "transform") not in ones  # its only difference: the full row shows it
    split_row = table[(table["protocol"] == "surglime") & (table["choice"] == "split")].iloc[0]
    assert split_row["split"] == "val+test" and split_row["protocol_label"] == "hecvl v1"
    assert split_row["protocol_hash"] != full.loc["hecvl", "protocol_hash"]
    # a protocol's full row is exactly what `hecvl evaluate --protocol` gives
    direct = _evaluate(world, world["root"] / "surgclip-direct", "--protocol", "surgclip")
    assert full.loc["surgclip", "protocol_hash"] == direct["protocol_hash"]
    assert full.loc["surgclip", "accuracy_mean"] == pytest.approx(direct["accuracy_mean"])
    assert full.loc["surgclip", "f1_pooled"] == pytest.approx(direct["f1_pooled"])
    assert not (out / "surgclip" / "tiny" / "confusion.png").exists()  # sweeps skip the per-run figure
    # the paper's table and figure of the sweep
    paper = world["root"] / "paper"
    assert main(["paper", "sensitivity", "--params", str(world["params"]), "--out", str(paper),
                 str(out / "sensitivity.csv")]) == 0
    md = (paper / "protocol_sensitivity.md").read_text()
    assert "| surgclip (all) |" in md and "| surglime: split |" in md and "| metric: frame-pooled |" in md
    assert "averaged over tiny," in md
    rows = pd.read_csv(paper / "protocol_sensitivity.csv", dtype={"protocol_hash": str})
    assert len(rows) == len(table)
    from PIL import Image

    pixels = np.asarray(Image.open(paper / "protocol_sensitivity.png").convert("L"))
    assert pixels.shape[0] > 300 and (pixels < 128).mean() > 0.01  # bars and text, not an empty canvas


def test_temporal_released_models_get_their_authors_window_under_the_study_protocol() -> None:
    from hecvl.evaluation.formats import FAMILIES
    from hecvl.evaluation.protocols import resolve_protocol
    from hecvl.evaluation.sources import SourceRequest

    params = load_params("params.yaml")

    def own(fmt: str) -> WindowSettings | None:
        request = SourceRequest(params, weights=Path(f"{fmt}.pth"), bert_dir=Path("bert"))
        return FAMILIES[fmt].build(request).window

    def window(p: Params, fmt: str, protocol: str | None = None) -> WindowSettings:
        return resolve_protocol(p, protocol, own_window=own(fmt)).params.eval.window

    assert window(params, "surgclip") == WindowSettings(frames=16, start=-8, ends="shift")
    assert window(params, "surglime") == WindowSettings(frames=8, start=-3, ends="anchor")
    assert window(params, "surgvlp").frames == 1 and own("surgvlp") is None  # one frame: its own
    chosen = params.updated({"eval": {"window": {"frames": 2}}})
    assert window(chosen, "surgclip").frames == 2  # a window set in params is kept
    assert window(params, "surgclip", "surgvlp").frames == 1  # so is a protocol's
