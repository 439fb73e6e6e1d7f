"""`hecvl paper table` and `hecvl paper build`: values, labels and well-formed files, on a results tree
whose metrics come from EVAL's scoring code (tests/paper_helpers.py)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from paper_helpers import PROTOCOL_HASH, ablation_rows, run_cli, shared_tree, study_params

from hecvl.config import load_params
from hecvl.paper.collect import load_results, runs_frame
from hecvl.paper.published import load_published
from hecvl.paper.tables import (
    PAIRED_COLUMNS,
    latex_escape,
    markdown_table,
    paired_differences,
    seed_summary,
    t_quantile,
    write_paired_table,
)

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_LABEL = "published (PeskaVLP paper, Table 1)"


@pytest.fixture(scope="module")
def paper_tree(tmp_path_factory: pytest.TempPathFactory):
    return shared_tree(tmp_path_factory)


def _metric(root: Path, entry, key: str) -> float:
    return json.loads((root / entry.path).read_text())[key]


def _row(df: pd.DataFrame, **where) -> pd.Series:
    sel = np.ones(len(df), bool)
    for k, v in where.items():
        sel &= (df[k] == v).to_numpy()
    assert sel.sum() == 1, (where, df)
    return df[sel].iloc[0]


def test_ablation_csv_is_mean_and_population_std_across_seeds(paper_tree) -> None:
    root, study = paper_tree
    table = pd.read_csv(root / study.ablation_table("heads"), dtype={"seeds": str})
    assert list(table.columns[:5]) == ["ablation", "label", "protocol", "dataset", "n_seeds"]
    assert set(table["protocol"]) == {f"hecvl v1 ({PROTOCOL_HASH})"}
    entries = study.ablation_entries("heads")
    for label in ("hecvl", "shared_heads"):
        per_seed = {}
        for ds in study.datasets:
            es = [e for e in entries if e.label == label and e.dataset == ds]
            accs = np.array([_metric(root, e, "accuracy_mean") for e in es])
            f1s = np.array([_metric(root, e, "f1_mean") for e in es])
            vstd = np.mean([_metric(root, e, "accuracy_std") for e in es])
            per_seed[ds] = dict(zip([e.seed for e in es], accs, strict=True))
            row = _row(table, label=label, dataset=ds)
            assert row["n_seeds"] == 2 and row["seeds"] == "0 1"
            assert row["accuracy_mean"] == pytest.approx(accs.mean(), abs=1e-4)
            assert row["accuracy_std"] == pytest.approx(accs.std(ddof=0), abs=1e-4)
            assert row["accuracy_std"] > 0  # two seeds really differ: the std is not a constant
            assert row["f1_mean"] == pytest.approx(f1s.mean(), abs=1e-4)
            assert row["f1_std"] == pytest.approx(f1s.std(ddof=0), abs=1e-4)
            assert row["accuracy_video_std"] == pytest.approx(vstd, abs=1e-4)
        # average column: datasets averaged per seed first, then mean and std across seeds
        seed_avgs = np.array([np.mean([per_seed[ds][s] for ds in study.datasets]) for s in (0, 1)])
        avg = _row(table, label=label, dataset="average")
        assert avg["accuracy_mean"] == pytest.approx(seed_avgs.mean(), abs=1e-4)
        assert avg["accuracy_std"] == pytest.approx(seed_avgs.std(ddof=0), abs=1e-4)


def test_single_seed_rows_show_the_spread_over_videos(paper_tree) -> None:
    root, study = paper_tree
    table = pd.read_csv(root / study.ablation_table("references"), dtype={"seeds": str})
    e = next(e for e in study.ablation_entries("references") if e.label == "untrained")
    row = _row(table, label="untrained", dataset=e.dataset)
    assert row["n_seeds"] == 1 and row["accuracy_std"] == 0.0
    assert row["accuracy_video_std"] == pytest.approx(_metric(root, e, "accuracy_std"), abs=1e-4)
    assert row["accuracy_video_std"] > 0
    md = (root / "results/paper/ablation_table.md").read_text()
    cell = f"{row['accuracy_mean']:.1f} ± {row['accuracy_video_std']:.1f}†"
    assert cell in md and "† one seed only" in md


def test_main_table_has_labelled_published_rows_and_our_rows_say_their_data(paper_tree) -> None:
    root, study = paper_tree
    table = pd.read_csv(root / "results/paper/main_table.csv", dtype={"seeds": str})
    published = table[table["group"] == "published"]
    assert sorted({m.split(",")[0] for m in published["method"]}) == sorted(load_published().methods)
    assert all(m.endswith(PUBLISHED_LABEL) for m in published["method"])
    assert all("real datasets" in d for d in published["data"])
    hec = _row(table, method=f"HecVL, {PUBLISHED_LABEL}", dataset="cholec80")
    assert (hec["accuracy_mean"], hec["f1_mean"]) == (41.7, 26.3)
    # the study shows two of the paper's four datasets: the published average is over those two
    avg = _row(table, method=f"HecVL, {PUBLISHED_LABEL}", dataset="average")
    assert avg["accuracy_mean"] == pytest.approx((41.7 + 26.9) / 2, abs=1e-4)
    assert "recomputed" in avg["source"]

    ours = table[table["group"] == "ours"]
    assert list(dict.fromkeys(ours["method"])) == ["clip_only (ours, synthetic)", "hecvl (ours, synthetic)"]
    assert all(d.startswith("synthetic world") for d in ours["data"])
    for e_label in ("clip_only", "hecvl"):
        es = [e for e in study.main_entries() if e.label == e_label and e.dataset == "strasbypass70"]
        accs = np.array([_metric(root, e, "accuracy_mean") for e in es])
        row = _row(table, method=f"{e_label} (ours, synthetic)", dataset="strasbypass70")
        assert row["n_seeds"] == len(study.seeds) == 2
        assert row["accuracy_mean"] == pytest.approx(accs.mean(), abs=1e-4)
        assert row["accuracy_std"] == pytest.approx(accs.std(ddof=0), abs=1e-4)
    refs = table[table["group"] == "reference"]
    assert set(refs["method"]) == {"untrained (reference, synthetic)", "linear_probe (reference, synthetic)"}

    md = (root / "results/paper/main_table.md").read_text()
    assert f"| HecVL, {PUBLISHED_LABEL} |" in md and "41.7 / 26.3" in md
    assert "not comparable number for number" in md and "run_protocol.md" in md
    # every row names the protocol it was scored under, and the table says which that was
    assert set(table[table["group"] != "published"]["protocol"]) == {f"hecvl v1 ({PROTOCOL_HASH})"}
    assert set(published["protocol"]) == {"published (the paper's own)"}
    assert f"Evaluation protocol of this study's rows: hecvl v1 ({PROTOCOL_HASH})" in md


def _markdown_tables(text: str) -> list[list[str]]:
    blocks, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def _cells(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line)) - 1


@pytest.mark.parametrize("name", ["main_table", "ablation_table", "paired"])
def test_markdown_tables_are_well_formed(paper_tree, name: str) -> None:
    root, _ = paper_tree
    blocks = _markdown_tables((root / f"results/paper/{name}.md").read_text())
    assert blocks
    for block in blocks:
        assert len(block) >= 3
        assert re.fullmatch(r"\|(---\|)+", block[1])
        assert {_cells(line) for line in block} == {_cells(block[0])}
        assert all(line.endswith(" |") or line.endswith("|") for line in block)


def _strip_escaped(tex: str) -> str:
    return re.sub(r"\\[{}&%$#_]", "", tex)


@pytest.mark.parametrize("name", ["main_table", "ablation_table"])
def test_latex_tables_are_well_formed(paper_tree, name: str) -> None:
    root, _ = paper_tree
    tex = (root / f"results/paper/{name}.tex").read_text()
    plain = _strip_escaped(tex)
    assert plain.count("{") == plain.count("}")
    for env in ("table", "tabular"):
        assert tex.count(f"\\begin{{{env}}}") == tex.count(f"\\end{{{env}}}") == 1
    spec = re.search(r"\\begin\{tabular\}\{([lc]+)\}", tex).group(1)
    body = tex.split("\\toprule", 1)[1].split("\\bottomrule", 1)[0]
    rows = [r for r in body.splitlines() if r.endswith("\\\\") and "\\multicolumn" not in r]
    assert len(rows) >= 3
    for r in rows:
        assert _strip_escaped(r).count("&") == len(spec) - 1, r
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert rule in tex
    assert "±" not in tex and "†" not in tex  # converted to math, not left as raw Unicode


def test_latex_escape_and_markdown_pipes() -> None:
    assert latex_escape("a_b & 50% #1 {x} ± §8") == r"a\_b \& 50\% \#1 \{x\} $\pm$ \S{}8"
    md = markdown_table(["a", "b"], [["x|y", "z"]])
    assert "x\\|y" in md and _cells(md.splitlines()[2]) == 2


def test_protocol_note_states_splits_videos_and_seeds(paper_tree) -> None:
    root, _ = paper_tree
    text = (root / "results/paper/run_protocol.md").read_text()
    assert "| Cholec80 | cholec80 | splits.json | test | 3 | 171 | 7 |" in text
    assert "StrasBypass70: SBP01, SBP02, SBP03" in text
    crop = load_params(ROOT / "params.yaml").frames.transform.crop
    assert "main comparison [0, 1]" in text and f"centre crop {crop}" in text
    assert "clip 120, phase 30, video 4 from 4 lectures" in text
    assert "settings digest" in text


def test_missing_metrics_file_is_one_clear_error_and_output_untouched(tmp_path: Path, capsys) -> None:
    params = tmp_path / "params.yaml"
    import yaml

    params.write_text(yaml.safe_dump(study_params()))
    from hecvl.config import load_params
    from hecvl.study import Study

    study = Study(load_params(params))
    out = tmp_path / "heads.csv"
    out.write_text("previous\n")
    argv = ["paper", "table", "--params", str(params), "--name", "heads", "--out", str(out)]
    argv += ["--root", str(tmp_path), *ablation_rows(study, "heads")]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err.strip()
    first = study.ablation_entries("heads")[0].path
    assert err.startswith("hecvl paper: error:") and first in err and "not found" in err
    assert len(err.splitlines()) == 1
    assert out.read_text() == "previous\n"

    bad = tmp_path / first
    bad.parent.mkdir(parents=True)
    bad.write_text('{"accuracy_mean": 1.0')
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert first in err and "not valid JSON" in err


def test_a_row_the_study_does_not_define_is_refused(paper_tree, capsys) -> None:
    root, study = paper_tree
    e = study.ablation_entries("heads")[0]
    argv = ["paper", "table", "--params", str(root / "params.yaml"), "--name", "heads"]
    argv += ["--out", str(root / "unused.csv"), "--root", str(root), f"wrong_label={e.path}"]
    assert run_cli(argv) == 2
    assert "is not a row of ablation 'heads'" in capsys.readouterr().err
    assert not (root / "unused.csv").exists()


def test_same_inputs_give_identical_bytes(paper_tree, tmp_path: Path) -> None:
    root, study = paper_tree
    again = tmp_path / "heads.csv"
    argv = ["paper", "table", "--params", str(root / "params.yaml"), "--name", "heads", "--out", str(again)]
    assert run_cli([*argv, "--root", str(root), *ablation_rows(study, "heads")]) == 0
    assert again.read_bytes() == (root / study.ablation_table("heads")).read_bytes()


def test_seed_summary_refuses_duplicates_and_foreign_datasets() -> None:
    runs = pd.DataFrame(
        {
            "label": ["a", "a"],
            "seed": [0, 0],
            "dataset": ["x", "x"],
            "accuracy_mean": [1.0, 2.0],
            "accuracy_std": [0.0, 0.0],
            "f1_mean": [1.0, 2.0],
            "f1_std": [0.0, 0.0],
        }
    )
    from hecvl.errors import HecvlError

    with pytest.raises(HecvlError, match="two results"):
        seed_summary(runs, ["x"])
    with pytest.raises(HecvlError, match="outside the study"):
        seed_summary(runs.iloc[:1], ["y"])


# --- paired differences (paired.csv / paired.md) ----------------------------------------------------
def _runs(values: dict[tuple[str, int, str], float]) -> pd.DataFrame:
    """A runs frame from {(label, seed, dataset): accuracy}; F1 = accuracy - 10 (main) / - 5 (base)."""
    rows = [
        {"label": lab, "seed": s, "dataset": ds, "accuracy_mean": acc,
         "f1_mean": acc - (10.0 if lab == "m" else 5.0), "accuracy_std": 1.0, "f1_std": 1.0}
        for (lab, s, ds), acc in values.items()
    ]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3)  # the input order must not matter


def test_paired_differences_match_a_hand_computation_with_three_seeds() -> None:
    acc = {
        ("m", 0, "x"): 50.0, ("m", 1, "x"): 54.0, ("m", 2, "x"): 58.0,
        ("b", 0, "x"): 40.0, ("b", 1, "x"): 42.0, ("b", 2, "x"): 47.0,
        ("m", 0, "y"): 30.0, ("m", 1, "y"): 30.0, ("m", 2, "y"): 36.0,
        ("b", 0, "y"): 32.0, ("b", 1, "y"): 26.0, ("b", 2, "y"): 30.0,
        ("m", 3, "x"): 99.0,  # no baseline run with seed 3: nothing to pair it with, left out
    }
    table = paired_differences(_runs(acc), ["x", "y"], main="m", baseline="b")
    assert list(table.columns) == PAIRED_COLUMNS
    assert list(zip(table["dataset"], table["metric"], strict=True)) == [
        (d, m) for d in ("x", "y", "average") for m in ("accuracy", "f1")
    ]
    assert set(table["main"]) == {"m"} and set(table["baseline"]) == {"b"} and set(table["n"]) == {3}
    # by hand: differences per seed, mean, sd (ddof=1), mean ± t(0.975, 2) sd / sqrt(3), t = 4.302653
    # x accuracy [10, 12, 11]: 11 ± 4.302653 * 1 / sqrt(3) = 11 ± 2.4841
    # y accuracy [-2, 4, 6]: 2.6667 ± 4.302653 * 4.163332 / sqrt(3) = 2.6667 ± 10.3423
    # average accuracy, per seed ((10 - 2) / 2, (12 + 4) / 2, (11 + 6) / 2) = [4, 8, 8.5]: 6.8333 ± 6.1270
    # F1 is accuracy - 10 for m and - 5 for b: every difference 5 lower, same spread
    expected = {
        ("x", "accuracy"): (11.0, 8.5159, 13.4841),
        ("x", "f1"): (6.0, 3.5159, 8.4841),
        ("y", "accuracy"): (2.6667, -7.6756, 13.0090),
        ("y", "f1"): (-2.3333, -12.6756, 8.0090),
        ("average", "accuracy"): (6.8333, 0.7064, 12.9603),
        ("average", "f1"): (1.8333, -4.2936, 7.9603),
    }
    for (ds, metric), (mean, low, high) in expected.items():
        row = _row(table, dataset=ds, metric=metric)
        assert (row["mean_diff"], row["ci_low"], row["ci_high"]) == pytest.approx((mean, low, high), abs=1e-4)


def test_paired_interval_is_left_empty_with_one_seed(tmp_path: Path) -> None:
    acc = {("m", 4, "x"): 50.0, ("b", 4, "x"): 40.0, ("m", 4, "y"): 30.0, ("b", 4, "y"): 35.0}
    table = paired_differences(_runs(acc), ["x", "y"], main="m", baseline="b")
    assert set(table["n"]) == {1}
    assert table["ci_low"].isna().all() and table["ci_high"].isna().all()
    assert _row(table, dataset="average", metric="accuracy")["mean_diff"] == pytest.approx(2.5)
    paths = write_paired_table(table, tmp_path, ["a note"])
    assert [p.name for p in paths] == ["paired.csv", "paired.md"]
    lines = paths[0].read_text().splitlines()
    assert lines[0] == "dataset,metric,n,mean_diff,ci_low,ci_high,main,baseline"
    assert "x,accuracy,1,10.0,,,m,b" in lines and "average,f1,1,-2.5,,,m,b" in lines
    md = paths[1].read_text()
    assert "| x | accuracy | 1 | +10.0 | — (one seed) |" in md and "- a note" in md


@pytest.mark.parametrize(
    ("df", "value"), [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (10, 2.228), (29, 2.045), (30, 2.042)]
)
def test_t_quantile_known_values(df: int, value: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(value, abs=5e-4)
    assert t_quantile(0.025, df) == -t_quantile(0.975, df)


@pytest.mark.parametrize("p", [0.55, 0.9, 0.975, 0.995, 0.9995])
def test_t_quantile_closed_forms_and_normal_limit(p: float) -> None:
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)  # Cauchy
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-10)
    # large df: the normal quantile (1.959964 at 0.975), approached from above
    normal = {0.55: 0.125661, 0.9: 1.281552, 0.975: 1.959964, 0.995: 2.575829, 0.9995: 3.290527}[p]
    assert t_quantile(p, 1e7) == pytest.approx(normal, abs=1e-5)
    assert t_quantile(p, 100) > t_quantile(p, 1e7)
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)
    assert t_quantile(0.5, 3) == 0.0


def test_paired_csv_of_the_build_pairs_the_metrics_files_by_seed(paper_tree, tmp_path: Path) -> None:
    root, study = paper_tree
    path = root / "results/paper/paired.csv"
    table = pd.read_csv(path, keep_default_na=False)
    assert list(table.columns) == PAIRED_COLUMNS
    assert set(table["main"]) == {study.main} == {"hecvl"}
    assert set(table["baseline"]) == {study.baseline} == {"clip_only"}
    entries = {(e.label, e.seed, e.dataset): e for e in study.main_entries()}

    def diffs(key: str, ds: str | None) -> np.ndarray:
        sets = [study.datasets] if ds is None else [[ds]]
        return np.array([
            np.mean([_metric(root, entries[(study.main, s, d)], key)
                     - _metric(root, entries[(study.baseline, s, d)], key) for d in sets[0]])
            for s in study.seeds
        ])

    t1 = 12.706204736  # t(0.975, 1): two seeds
    for ds in [*study.datasets, "average"]:
        for metric in ("accuracy", "f1"):
            d = diffs(f"{metric}_mean", None if ds == "average" else ds)
            half = t1 * d.std(ddof=1) / math.sqrt(len(d))
            row = _row(table, dataset=ds, metric=metric)
            assert row["n"] == len(study.seeds) == 2
            assert float(row["mean_diff"]) == pytest.approx(d.mean(), abs=1e-4)
            assert float(row["ci_low"]) == pytest.approx(d.mean() - half, abs=1e-4)
            assert float(row["ci_high"]) == pytest.approx(d.mean() + half, abs=1e-4)
    assert _row(table, dataset="cholec80", metric="accuracy")["mean_diff"] > 0  # fewer mistakes: better
    # the same inputs give the same bytes
    runs = runs_frame(load_results(study.main_entries(), root))
    again = paired_differences(runs, study.datasets, study.main, study.baseline)
    write_paired_table(again, tmp_path, [])
    assert (tmp_path / "paired.csv").read_bytes() == path.read_bytes()
    md = (root / "results/paper/paired.md").read_text()
    assert "hecvl − clip_only" in md and "Student-t" in md and "settings digest" in md
