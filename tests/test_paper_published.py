"""published.yaml: method.md §8 as data, with its source, checked on load."""

from __future__ import annotations

from pathlib import Path

import pytest

from hecvl.errors import HecvlError
from hecvl.paper.published import AVERAGE, default_path, load_published


def test_published_table_matches_protocol_section_8() -> None:
    pub = load_published()
    assert pub.label == "published (PeskaVLP paper, Table 1)"
    assert "2410.00263" in pub.source and "Table 1" in pub.short_source
    assert "real datasets" in pub.data
    assert pub.methods == ["MIL-NCE", "CLIP", "SurgVLP", "HecVL", "PeskaVLP"]
    assert pub.datasets == ["cholec80", "autolaparo", "strasbypass70", "bernbypass70"]
    rows = pub.rows.set_index(["method", "dataset"])
    assert len(rows) == 5 * 5
    assert tuple(rows.loc[("HecVL", "bernbypass70"), ["accuracy", "f1"]]) == (22.8, 13.6)
    assert tuple(rows.loc[("PeskaVLP", AVERAGE), ["accuracy", "f1"]]) == (41.0, 27.1)
    assert tuple(rows.loc[("MIL-NCE", "cholec80"), ["accuracy", "f1"]]) == (7.8, 7.3)
    # the released-weights re-evaluations are kept as notes, not rows
    cholec = pub.other_reports[pub.other_reports["dataset"] == "cholec80"]
    assert sorted(cholec["accuracy"]) == [44.5, 44.8, 47.5, 51.4]
    assert pub.supervised_accuracy == {"cholec80": 90.0, "autolaparo": 82.0}


def test_a_transcription_slip_is_caught_by_the_average(tmp_path: Path) -> None:
    text = default_path().read_text(encoding="utf-8")
    slipped = text.replace("cholec80: [41.7, 26.3]", "cholec80: [14.7, 26.3]")
    assert slipped != text
    bad = tmp_path / "published.yaml"
    bad.write_text(slipped, encoding="utf-8")
    with pytest.raises(HecvlError, match="HecVL: published accuracy average") as err:
        load_published(bad)
    assert err.value.path == bad


def test_malformed_published_file_names_itself(tmp_path: Path) -> None:
    bad = tmp_path / "published.yaml"
    bad.write_text("table: {id: x}\n", encoding="utf-8")
    with pytest.raises(HecvlError, match="malformed published results") as err:
        load_published(bad)
    assert err.value.path == bad
    missing = default_path().read_text(encoding="utf-8").replace("        average: [6.4, 5.1]\n", "")
    bad.write_text(missing, encoding="utf-8")
    with pytest.raises(HecvlError, match="MIL-NCE: results for"):
        load_published(bad)
