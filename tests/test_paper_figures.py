"""The paper's figures: written, readable, deterministic, and showing what they claim (read back as
pixels: the plotted content is inside the axes); the narration-noise figure and CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from paper_helpers import run_cli, shared_tree
from PIL import Image

from hecvl.config import load_params
from hecvl.datasets.classes import CLASSES
from hecvl.datasets.registry import TargetDataset
from hecvl.errors import HecvlError
from hecvl.evaluation.metrics import score_predictions
from hecvl.paper import figures
from hecvl.paper.collect import load_results, losses_frame, read_losses, runs_frame
from hecvl.paper.figures import (
    accuracy_f1_figure,
    confusion_figure,
    confusion_panel,
    convergence_figure,
    noise_figure,
    row_normalised,
    timeline_arrays,
)

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("accuracy_f1", "per_phase_f1", "confusion", "timelines", "convergence")


@pytest.fixture(scope="module")
def paper_tree(tmp_path_factory: pytest.TempPathFactory):
    return shared_tree(tmp_path_factory)


def _check_png(path: Path, min_side: int = 300) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert min(img.shape[:2]) >= min_side
    assert float(img[..., :3].std()) > 0.05  # not a blank canvas
    return img


@pytest.mark.parametrize("name", FIGURES)
def test_build_writes_every_figure(paper_tree, name: str) -> None:
    root, _ = paper_tree
    _check_png(root / "results" / "paper" / f"{name}.png")


# --- pixels -------------------------------------------------------------------------------------------
# A pixel is "coloured" when its channels spread by more than CHROMA (0..1): white, black, the grid's and
# the unlabelled seconds' greys and anti-aliased text are not. Colours are counted as exact 8-bit RGB
# triples covering at least MIN_PIXELS pixels, so anti-aliased edges do not count as colours.
CHROMA = 0.12
MIN_PIXELS = 40
STRIP_PX = 16  # a timeline strip is at least this tall (0.16 in at the figures' 100 dpi)


@dataclass
class Drawn:
    """One figure of `paper build`: its PNG, its inputs, and where its axes lie (fractions, bottom-left)."""

    path: Path
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    axes: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)

    def rgb(self) -> np.ndarray:
        return np.asarray(Image.open(self.path).convert("RGB"), dtype=np.uint8)

    def main_axes(self) -> list[tuple[float, float, float, float]]:
        return [bounds for label, bounds in self.axes if label != "<colorbar>"]


def _recording_save(record: Callable[[Path], Drawn]) -> Callable[..., Path]:
    """figures.save_figure, then the saved figure's axes positions into `record(path)`."""
    real_save = figures.save_figure

    def recording_save(fig, path):
        written = real_save(fig, path)  # layout is final once drawn; the Figure outlives plt.close
        record(path).axes = [(ax.get_label(), ax.get_position().bounds) for ax in fig.axes]
        return written

    return recording_save


@pytest.fixture(scope="module")
def drawn(paper_tree, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Drawn]:
    """`paper build` again into a scratch folder, recording each figure's inputs and axes positions.

    The figures are deterministic, so these PNGs are the shared tree's (checked below) and the
    recorded axes say where in them the plotted content has to be.
    """
    root, _ = paper_tree
    out = tmp_path_factory.mktemp("redrawn")
    seen = {name: Drawn(out / f"{name}.png") for name in FIGURES}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HECVL_TRACKING", "off")
        mp.setattr(figures, "save_figure", _recording_save(lambda path: seen[Path(path).stem]))
        for name in FIGURES:
            real = getattr(figures, f"{name}_figure")

            def recording(*args, _real=real, _name=name, **kwargs):
                seen[_name].args, seen[_name].kwargs = args, kwargs
                return _real(*args, **kwargs)

            mp.setattr(figures, f"{name}_figure", recording)
        argv = ["paper", "build", "--params", str(root / "params.yaml"), "--out", str(out)]
        assert run_cli([*argv, "--root", str(root)]) == 0
    assert all(d.axes for d in seen.values())
    return seen


def _box(img: np.ndarray, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """The pixels of a figure-fraction box (x0, y0, width, height; y from the bottom), edges left out."""
    h, w = img.shape[:2]
    x0, y0, bw, bh = bounds
    top, bottom = round(h * (1 - y0 - bh)), round(h * (1 - y0))
    left, right = round(w * x0), round(w * (x0 + bw))
    return img[top + 1 : bottom - 1, left + 1 : right - 1]


def _box_mask(shape: tuple[int, ...], bounds: tuple[float, float, float, float]) -> np.ndarray:
    mask = np.zeros(shape[:2], bool)
    _box(mask, bounds)[...] = True
    return mask


def _coloured(img: np.ndarray) -> np.ndarray:
    rgb = img.astype(np.int16)
    return (rgb.max(axis=-1) - rgb.min(axis=-1)) > CHROMA * 255


def _colours(img: np.ndarray, mask: np.ndarray) -> set[tuple[int, int, int]]:
    """The exact colours of the masked pixels that cover at least MIN_PIXELS pixels."""
    values, counts = np.unique(img[mask].reshape(-1, 3), axis=0, return_counts=True)
    return {tuple(int(c) for c in v) for v, n in zip(values, counts, strict=True) if n >= MIN_PIXELS}


def _solid(img: np.ndarray, run: int = 8) -> np.ndarray:
    """Coloured pixels in a vertical run of at least `run` pixels of their exact colour: filled strips and
    patches, not lines, text or the edges between them."""
    change = np.ones(img.shape[:2], bool)
    change[1:] = (img[1:] != img[:-1]).any(axis=-1)
    ids = np.cumsum(change.T.ravel())  # column by column: a run never spans two columns
    lengths = np.bincount(ids)[ids].reshape(img.shape[1], img.shape[0]).T
    return (lengths >= run) & _coloured(img)


def _border_is_blank(img: np.ndarray, width: int = 3) -> bool:
    """Only the white background in the outer `width` pixels: nothing drawn runs off the canvas."""
    ring = np.ones(img.shape[:2], bool)
    ring[width:-width, width:-width] = False
    return bool((img[ring] == 255).all())


def _axes_area(d: Drawn) -> float:
    return sum(w * h for _, _, w, h in d.main_axes())


def _rgb8(colour) -> tuple[int, int, int]:
    return tuple(round(255 * float(c)) for c in colour[:3])


@pytest.mark.parametrize("name", FIGURES)
def test_redrawn_figures_are_the_built_ones(paper_tree, drawn, name: str) -> None:
    """Byte-identical builds: the recorded axes positions are those of the built PNGs."""
    root, _ = paper_tree
    assert drawn[name].path.read_bytes() == (root / "results" / "paper" / f"{name}.png").read_bytes()


def test_accuracy_figure_shows_a_bar_per_method(drawn) -> None:
    """Both panels hold filled bars in every method's colour (seaborn draws bars at saturation 0.75)."""
    d = drawn["accuracy_f1"]
    img = d.rgb()
    methods = list(dict.fromkeys(d.args[0]["method"]))
    colours = figures.palette(methods)
    assert len(d.main_axes()) == 2 and _axes_area(d) > 0.4
    for bounds in d.main_axes():
        box = _box(img, bounds)
        assert _coloured(box).mean() > 0.15  # bars up to each mean accuracy/F1 on a 0-100 axis
        bars = _colours(box, _solid(box))
        assert len(bars) >= len(methods)
        assert {_rgb8(sns.desaturate(colours[m], 0.75)) for m in methods} <= bars


@pytest.mark.parametrize("name", ["per_phase_f1", "confusion"])
def test_heatmaps_fill_their_axes(drawn, name: str) -> None:
    """Per-phase F1 (viridis, every defined cell coloured) and confusion (Blues, dark where counted)."""
    d = drawn[name]
    img = d.rgb()
    datasets = d.args[1] if name == "per_phase_f1" else d.args[0]  # names, or (dataset, counts, classes)
    assert len(d.main_axes()) == len(datasets) and _axes_area(d) > 0.25
    share = 0.5 if name == "per_phase_f1" else 0.04  # Blues: near-zero fractions stay near white
    for bounds in d.main_axes():
        box = _box(img, bounds)
        assert _coloured(box).mean() > share
        assert len(_colours(box, _coloured(box))) >= 4


def test_built_confusion_figure_keeps_its_labels_inside(drawn) -> None:
    """The study's confusion figure: nothing drawn on the border rows/columns (no label cut off)."""
    img = drawn["confusion"].rgb()
    assert _border_is_blank(img)


def test_convergence_draws_accuracy_and_loss_curves_per_method(drawn) -> None:
    """Top row: a validation-accuracy panel per dataset plus their mean; bottom row: a loss panel per level;
    every panel holds the line colour of each method it shows, and the last quarter is shaded."""
    d = drawn["convergence"]
    img = d.rgb()
    validation, losses = d.args[0], d.args[1]
    colours = figures.palette(list(dict.fromkeys([*validation["method"], *losses["method"]])))
    datasets = list(dict.fromkeys(validation["dataset"]))
    levels = [lvl for lvl in ("clip", "phase", "video") if lvl in set(losses["level"])]
    boxes = d.main_axes()
    assert "average" in datasets and len(boxes) == len(datasets) + len(levels) and _axes_area(d) > 0.3
    tops = sorted(boxes, key=lambda b: -b[1])
    top_row, bottom_row = tops[: len(datasets)], tops[len(datasets):]
    assert min(b[1] for b in top_row) > max(b[1] + b[3] for b in bottom_row)  # two rows, not overlapping
    for bounds, dataset in zip(sorted(top_row), datasets, strict=True):
        box = _box(img, bounds)
        methods = set(validation.loc[validation["dataset"] == dataset, "method"])
        assert {_rgb8(colours[m]) for m in methods} <= _colours(box, _coloured(box))
        shade = np.abs(box.astype(int) - round(0.92 * 255)).max(axis=-1) <= 1
        assert shade.mean() > 0.05  # the last quarter's band
    for bounds, level in zip(sorted(bottom_row), levels, strict=True):
        box = _box(img, bounds)
        assert _coloured(box).mean() > 0.01
        methods = set(losses.loc[losses["level"] == level, "method"])
        assert {_rgb8(colours[m]) for m in methods} <= _colours(box, _coloured(box))


def _check_timelines(d: Drawn) -> None:
    """Ground truth and prediction of every panel as filled strips at least STRIP_PX tall, one colour per
    phase present, each the legend's colour of that phase; the legend lists every phase of each dataset."""
    img = d.rgb()
    panels = d.args[0]
    boxes = d.main_axes()
    assert len(boxes) == len(panels) and _axes_area(d) > 0.15
    solid = _solid(img, run=STRIP_PX)
    # the strip area: from the top of the first panel to the bottom of the last, across the strips
    x0, y_top = boxes[0][0], boxes[0][1] + boxes[0][3]
    x1, y_bottom = boxes[0][0] + boxes[0][2], boxes[-1][1]
    strip_area = (x0, y_bottom, x1 - x0, y_top - y_bottom)
    area = _box(solid, strip_area)
    assert area.size > 0.2 * solid.size
    assert area.mean() > 0.25, "strips cover the strip area, apart from titles, time axes and gaps"
    for bounds in boxes:  # both strips of each panel are filled across the panel (grey: unlabelled)
        box = _box(img, bounds)
        grey = np.abs(box.astype(int) - 211).max(axis=-1) <= 2  # matplotlib's "lightgrey"
        assert box.size and (_box(solid, bounds) | grey).mean() > 0.95
    present: set[int] = set()
    for _, _, pred, _ in panels:
        present |= set(pred["phase_id"]) | set(pred["gt_phase_id"].dropna())
    strip_colours = _colours(img, solid & _box_mask(img.shape, strip_area))
    assert len(strip_colours) >= len(present)
    legend = np.zeros(img.shape[:2], bool)
    legend[:, round(img.shape[1] * x1) + 2 :] = True
    legend_colours = _colours(img, legend & _solid(img, run=5))
    assert strip_colours <= legend_colours
    for classes in {tuple(c) for *_, c in panels}:
        assert {_rgb8(c) for c in figures.phase_colours(len(classes))} <= legend_colours
    assert {_rgb8(figures.phase_colours(max(present) + 1)[p]) for p in present} <= strip_colours


def test_timelines_draw_a_coloured_strip_per_video(drawn) -> None:
    _check_timelines(drawn["timelines"])


def test_timelines_keep_their_strips_beside_long_legends(drawn, tmp_path: Path) -> None:
    """Eight panels of four datasets with 7- and 12-phase legends, as in the study: the legends, taller
    than their panels, once squeezed every strip to a pixel (tight_layout made room for them)."""
    shown = drawn["timelines"].args[0]
    by_ds = {
        ds: [(v, pred) for d, v, pred, _ in shown if d == ds] for ds in dict.fromkeys(p[0] for p in shown)
    }
    short, long_ = by_ds["cholec80"], by_ds["strasbypass70"]
    panels = [
        *[(ds, v, pred, CLASSES[ds]) for ds in ("cholec80", "autolaparo") for v, pred in short],
        *[
            (ds, v, pred, CLASSES["multibypass140"])
            for ds in ("strasbypass70", "bernbypass70")
            for v, pred in long_
        ],
    ]
    seen = Drawn(tmp_path / "timelines.png", (panels,))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "save_figure", _recording_save(lambda _: seen))
        figures.timelines_figure(panels, seen.path, "t")
    _check_timelines(seen)


def test_no_temporary_files_are_left(paper_tree) -> None:
    root, _ = paper_tree
    leftovers = [p.name for p in (root / "results").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_convergence_reads_the_level_totals_and_is_deterministic(paper_tree, tmp_path: Path) -> None:
    root, study = paper_tree
    e = next(e for e in study.main_entries() if e.label == study.main)
    path = root / study.model_dir(e.variant, e.seed) / "losses.csv"
    raw = pd.read_csv(path)
    long = read_losses(path)
    assert set(long["level"]) == {"clip", "phase", "video"}
    clip_steps = raw.loc[raw["clip/total"].notna(), "step"].tolist()
    assert long.loc[long["level"] == "clip", "step"].tolist() == clip_steps  # only the steps that trained it
    frame = losses_frame({("hecvl", 0): path, ("hecvl", 1): path})
    val = pd.DataFrame({"method": "hecvl", "seed": [0, 0, 1, 1], "step": [0, 40, 0, 40],
                        "dataset": "average", "accuracy": [10.0, 30.0, 12.0, 31.0]})
    a = convergence_figure(val, frame, 30, tmp_path / "a.png", "t")
    b = convergence_figure(val, frame, 30, tmp_path / "b.png", "t")
    assert a.read_bytes() == b.read_bytes()


def test_accuracy_figure_is_deterministic(paper_tree, tmp_path: Path) -> None:
    """Seed dots are drawn without seaborn's random jitter: identical inputs, identical bytes."""
    root, study = paper_tree
    runs = runs_frame(load_results(study.main_entries(), root))
    runs = runs.rename(columns={"label": "method", "accuracy_mean": "accuracy", "f1_mean": "f1"})
    a = accuracy_f1_figure(runs, tmp_path / "a.png", "t")
    b = accuracy_f1_figure(runs, tmp_path / "b.png", "t")
    assert a.read_bytes() == b.read_bytes()


def test_losses_without_level_columns_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "losses.csv"
    bad.write_text("step,loss\n1,2.0\n")
    with pytest.raises(HecvlError, match="<level>/total") as err:
        read_losses(bad)
    assert err.value.path == bad


def test_timeline_arrays_mark_unlabelled_seconds() -> None:
    pred = pd.DataFrame(
        {
            "frame_sec": [0, 1, 2, 3],
            "phase_id": [1, 1, 2, 0],
            "gt_phase_id": pd.array([None, 1, 2, 2], "Int64"),
        }
    )
    gt, pr = timeline_arrays(pred)
    assert np.isnan(gt[0]) and gt[1:].tolist() == [1, 2, 2]
    assert pr.tolist() == [1, 1, 2, 0]


def test_confusion_rows_are_normalised_and_empty_input_refused(tmp_path: Path) -> None:
    cm = np.array([[3, 1], [0, 0]])
    assert row_normalised(cm).tolist() == [[0.75, 0.25], [0.0, 0.0]]
    with pytest.raises(HecvlError, match="no confusion matrix"):
        confusion_figure([], tmp_path / "c.png", "t")


def _scored_metrics(ds: TargetDataset) -> dict[str, Any]:
    """metrics.json of `hecvl evaluate` on `ds`: ignored classes neither labelled nor predicted."""
    scored = [i for i in range(len(ds.classes)) if i not in ds.ignored]
    rng = np.random.default_rng(0)
    gt = np.repeat(scored, 20)
    pred = np.where(rng.random(gt.size) < 0.3, rng.choice(scored, gt.size), gt)
    frames = pd.DataFrame({"video": np.arange(gt.size) % 3, "gt": gt, "pred": pred})
    metrics = score_predictions(frames, class_names=ds.classes)
    metrics["run"] = {"ignored_classes": [ds.classes[i] for i in ds.ignored]}  # as evaluate.py records
    return metrics


def test_confusion_panel_keeps_exactly_the_scored_classes() -> None:
    """MultiBypass140's other_intervention is not scored: the figure's matrix has no row or column for it."""
    ds = TargetDataset.from_params("strasbypass70", load_params(ROOT / "params.yaml"))
    assert ds.ignored == [ds.classes.index("other_intervention")]
    metrics = _scored_metrics(ds)
    cm = np.asarray(metrics["confusion_matrix"])
    name, counts, classes = confusion_panel("strasbypass70", metrics)
    assert name == "strasbypass70" and classes == ds.scored_classes and len(classes) == 11
    assert counts.tolist() == np.delete(np.delete(cm, ds.ignored, 0), ds.ignored, 1).tolist()
    assert int(counts.sum()) == metrics["num_frames"]  # no scored frame is lost with the dropped class
    del metrics["run"]  # `hecvl score` records no ignored classes: it scored all of them
    assert confusion_panel("strasbypass70", metrics)[2] == ds.classes


def test_confusion_panel_refuses_an_ignored_class_with_frames(tmp_path: Path) -> None:
    ds = TargetDataset.from_params("strasbypass70", load_params(ROOT / "params.yaml"))
    metrics = _scored_metrics(ds)
    metrics["confusion_matrix"][0][ds.ignored[0]] = 4
    source = tmp_path / "metrics.json"
    framed = r"strasbypass70: ignored class\(es\) other_intervention have frames"
    with pytest.raises(HecvlError, match=framed) as err:
        confusion_panel("strasbypass70", metrics, source)
    assert err.value.path == source
    metrics["run"]["ignored_classes"] = ["other"]
    with pytest.raises(HecvlError, match=r"ignored class\(es\) other are not among"):
        confusion_panel("strasbypass70", metrics, source)


@pytest.mark.parametrize("datasets", [["cholec80", "strasbypass70"], ["strasbypass70"], ["cholec80"] * 3])
def test_confusion_figure_keeps_every_label_inside_the_image(tmp_path: Path, datasets: list[str]) -> None:
    """Nothing drawn touches the image border: the rotated class names and the x label once ran off the
    bottom of the canvas (cut off in the HTML report). All 12 MultiBypass140 names, the longest set."""
    panels = []
    for dataset in datasets:
        k = len(CLASSES["multibypass140" if dataset == "strasbypass70" else dataset])
        cm = np.random.default_rng(k).integers(0, 9, (k, k)) + np.diag(np.full(k, 40))
        panels.append((dataset, cm, CLASSES["multibypass140" if dataset == "strasbypass70" else dataset]))
    img = np.asarray(Image.open(confusion_figure(panels, tmp_path / "c.png", "t")).convert("RGB"))
    assert _border_is_blank(img), "drawn pixels touch the image border: a label is cut off"
    assert _coloured(img).mean() > 0.03  # the matrices are drawn (their dark diagonals at least)


def _noise_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for relevance in (0.25, 0.5, 0.8):
        for method, gain in (("clip_only", 10.0), ("hecvl", 25.0)):
            for seed in (0, 1, 2):
                for ds in ("cholec80", "autolaparo"):
                    acc = 20 + gain * relevance + rng.normal(0, 2)
                    rows.append((relevance, method, seed, ds, acc, acc * 0.6))
    return pd.DataFrame(rows, columns=["relevance", "method", "seed", "dataset", "accuracy", "f1"])


def test_noise_figure_and_cli(tmp_path: Path, capsys) -> None:
    df = _noise_table()
    _check_png(noise_figure(df, tmp_path / "direct.png"))
    csv = tmp_path / "sweep.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "paper" / "narration_noise.png"
    assert run_cli(["paper", "noise", "--from-table", "--table", str(csv), "--out", str(out)]) == 0
    _check_png(out)
    df.drop(columns=["f1"]).to_csv(csv, index=False)
    assert (
        run_cli(["paper", "noise", "--from-table", "--table", str(csv), "--out", str(tmp_path / "x.png")])
        == 2
    )
    err = capsys.readouterr().err
    assert str(csv) in err and "lacks column(s) f1" in err
    assert not (tmp_path / "x.png").exists()
