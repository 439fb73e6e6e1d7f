"""`hecvl paper table` and `hecvl paper build`: values, labels and well-formed files, on a results tree
whose metrics come from EVAL's scoring code (tests/paper_helpers.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from paper_helpers import ablation_rows, run_cli, shared_tree, study_params

from hecvl.config import load_params
from hecvl.paper.published import load_published
from hecvl.paper.tables import latex_escape, markdown_table, seed_summary

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
    assert list(table.columns[:4]) == ["ablation", "label", "dataset", "n_seeds"]
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
    assert "not comparable number for number" in md and "protocol.md" in md


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


@pytest.mark.parametrize("name", ["main_table", "ablation_table"])
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
    text = (root / "results/paper/protocol.md").read_text()
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
    assert first in err and "not a readable metrics JSON" in err


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
