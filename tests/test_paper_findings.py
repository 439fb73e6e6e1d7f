"""findings.md says what the run's tables say, and the README's results block is exactly that file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from paper_helpers import findings_structure as _structure
from paper_helpers import shared_tree

from hecvl.cli import main
from hecvl.errors import HecvlError
from hecvl.paper.findings import BEGIN, END, readme_block, refresh_readme

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper_tree(tmp_path_factory: pytest.TempPathFactory):
    return shared_tree(tmp_path_factory)


def test_findings_state_every_paired_difference_and_its_verdict(paper_tree) -> None:
    root, study = paper_tree
    text = (root / "results/paper/findings.md").read_text(encoding="utf-8")
    paired = pd.read_csv(root / "results/paper/paired.csv")
    assert len(paired) and f"{study.main} − {study.baseline}" in text
    for r in paired.itertuples():
        diff = f"{r.mean_diff:+.1f}".replace("-", "−")
        assert diff in text  # every mean difference of paired.csv is quoted
        if not pd.isna(r.ci_low):
            interval = f"[{r.ci_low:+.1f}, {r.ci_high:+.1f}]".replace("-", "−")
            assert interval in text
    # a verdict is only claimed where the interval excludes 0
    claimed = text.count(f"| {study.main} better") + text.count(f"| {study.baseline} better")
    excludes = int(((paired["ci_low"] > 0) | (paired["ci_high"] < 0)).sum())
    assert claimed == excludes
    for label in (study.baseline, study.main, "untrained", "linear_probe"):
        assert f"| {label}" in text


def test_readme_block_is_replaced_and_nothing_else(tmp_path: Path, paper_tree) -> None:
    root, _study = paper_tree
    findings = root / "results/paper/findings.md"
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n{BEGIN}\nold numbers\n{END}\n\nafter\n", encoding="utf-8")
    assert main(["paper", "readme", "--readme", str(readme), "--findings", str(findings), "--check"]) == 1
    assert refresh_readme(readme, findings) is True
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# x\n\nbefore\n\n") and text.endswith(f"{END}\n\nafter\n")
    assert readme_block(readme) == findings.read_text(encoding="utf-8")
    assert refresh_readme(readme, findings) is False  # idempotent
    assert main(["paper", "readme", "--readme", str(readme), "--findings", str(findings), "--check"]) == 0
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(HecvlError, match="expected one"):
        refresh_readme(readme, findings)


def test_the_project_readme_block_has_the_shape_the_paper_build_writes(paper_tree) -> None:
    """The committed README block is a findings.md (not hand-edited prose): same headings and tables."""
    root, _study = paper_tree
    built = (root / "results/paper/findings.md").read_text(encoding="utf-8")
    block = readme_block(ROOT / "README.md")
    assert block.strip(), "README.md has an empty results block: run `make study && make readme`"
    assert _structure(block) == _structure(built)


def _noise_table() -> pd.DataFrame:
    rows = []
    for rel, shift in ((0.25, -5.0), (0.5, 0.0), (0.8, 3.0)):
        for seed in (0, 1, 2):
            for dataset, base in (("cholec80", 40.0), ("strasbypass70", 10.0)):
                rows.append({"relevance": rel, "method": "clip_only", "seed": seed, "dataset": dataset,
                             "accuracy": base + seed, "f1": base / 2})
                rows.append({"relevance": rel, "method": "hecvl", "seed": seed, "dataset": dataset,
                             "accuracy": base + seed + shift + 0.5 * seed, "f1": base / 2 + shift})
    return pd.DataFrame(rows)


def test_noise_findings_give_each_level_its_means_and_paired_difference() -> None:
    from hecvl.paper.findings import noise_findings_markdown

    text = noise_findings_markdown(_noise_table(), ["cholec80", "strasbypass70"], "hecvl", "clip_only", 0.5)
    # relevance 0.8: clip_only averages 25 + seed -> 26.0 ± 0.8 (population std of 25, 26, 27)
    assert "| 0.8 | 26.0 ± 0.8 / 12.5 ± 0.0 |" in text and "| 0.5 (the default world) |" in text
    # hecvl - clip_only at 0.8: 3 + 0.5 * seed -> mean +3.5, F1 exactly +3.0 (zero spread)
    assert "relevance 0.8: hecvl − clip_only, paired by seed: accuracy +3.5 [" in text
    assert "F1 +3.0 [+3.0, +3.0] (hecvl better)" in text
    assert "relevance 0.25" in text and "F1 −5.0 [−5.0, −5.0] (clip_only better)" in text


def test_the_project_readme_noise_block_is_a_noise_findings_file() -> None:
    from hecvl.paper.findings import noise_findings_markdown

    built = noise_findings_markdown(_noise_table(), ["cholec80", "strasbypass70"], "hecvl", "clip_only", 0.5)
    block = readme_block(ROOT / "README.md", "noise")
    assert block.strip(), "README.md has an empty noise block: run `snakemake narration_noise && make readme`"
    assert _structure(block) == _structure(built)
    assert [line[:14] for line in block.splitlines() if line.startswith("- relevance")] == [
        line[:14] for line in built.splitlines() if line.startswith("- relevance")]


def _paired(acc: tuple[float, float, float], f1: tuple[float, float, float], n: int = 3) -> pd.DataFrame:
    rows = [{"dataset": "average", "metric": m, "n": n, "mean_diff": v[0],
             "ci_low": v[1] if n > 1 else float("nan"), "ci_high": v[2] if n > 1 else float("nan")}
            for m, v in (("accuracy", acc), ("f1", f1))]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("acc", "f1", "n", "says"), [
    ((4.0, 1.0, 7.0), (3.0, 0.5, 5.5), 3, "Yes, on both metrics: accuracy +4.0 [+1.0, +7.0]; F1 +3.0"),
    ((4.0, 1.0, 7.0), (1.0, -2.0, 4.0), 3, "In part, on one metric only"),
    ((-4.0, -7.0, -1.0), (1.0, -2.0, 4.0), 3, "No: the baseline is better"),
    ((4.0, 1.0, 7.0), (-3.0, -5.0, -1.0), 3, "Mixed: better on one metric, worse on the other"),
    ((1.0, -2.0, 4.0), (1.0, -2.0, 4.0), 3, "Not shown: neither metric's interval excludes 0"),
    ((9.0, 0.0, 0.0), (9.0, 0.0, 0.0), 1, "Not tested: one seed gives no interval"),
])
def test_the_claim_is_read_off_the_average_intervals(acc, f1, n, says) -> None:
    from hecvl.paper.findings import _claim_sentence

    text = _claim_sentence(_paired(acc, f1, n), "hecvl", "clip_only")
    assert text.startswith("**Did the paper's claim hold?**") and says in text


def test_findings_say_whether_the_world_was_learnable(paper_tree) -> None:
    """The tree's world check has StrasBypass70's pixel probe at 58.5 %: below the 60 % criterion."""
    root, _study = paper_tree
    text = (root / "results/paper/findings.md").read_text(encoding="utf-8")
    assert ("**Is the task learnable?** `hecvl synth --check` on the world this study ran on "
            "(results/world/check.json): a linear probe on the model's input pixels reaches Cholec80 71.5, "
            "StrasBypass70 58.5 % test accuracy (criterion: at least 60 on every dataset; "
            "chance 14.3 / 9.1); 1 of 5 criteria fail: probe_at_least_60[strasbypass70].") in text


def test_class_name_overlap_counts_only_the_scored_classes() -> None:
    from hecvl.paper.overlap import class_name_overlap

    texts = ["Omentum division with the ultrasonic shears", "other intervention", "PREPARATION of the ports"]
    full = class_name_overlap("strasbypass70", texts)
    assert full.classes == 12 and full.found == ("preparation", "omentum division", "other intervention")
    scored = class_name_overlap("strasbypass70", texts, ["other_intervention"])
    assert scored.classes == 11 and scored.found == ("preparation", "omentum division")
    assert scored.sentence("StrasBypass70") == "StrasBypass70 2 of 11 (preparation, omentum division)"
