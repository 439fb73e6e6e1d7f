"""`hecvl labels` end to end: the label table on the real fixtures, and bad input through the CLI
(one-line error naming the file, exit status 2, no traceback unless --debug, --out left intact)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hecvl.cli import main
from hecvl.config import load_params
from hecvl.datasets.labels import load_label_table
from hecvl.datasets.registry import TargetDataset
from hecvl.errors import HecvlError

ROOT = Path(__file__).resolve().parents[1]


def test_labels_command_writes_the_table(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "mbp.csv"
    tables = fixtures_dir / "multibypass140" / "tables"
    assert (
        main(
            [
                "labels",
                "multibypass140",
                str(fixtures_dir / "multibypass140"),
                "--out",
                str(out),
                "--tables",
                str(tables),
            ]
        )
        == 0
    )
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "video,frame_sec,phase_id,phase_name"
    assert lines[1] == "BBP01,14,0,preparation"  # the unlabelled first 13 s of BBP01 are dropped
    assert len(lines) == 1 + 5025 + 5141
    out = tmp_path / "al.csv"
    assert (
        main(["labels", "autolaparo", str(fixtures_dir / "autolaparo" / "label_01.txt"), "--out", str(out)])
        == 0
    )
    assert out.read_text(encoding="utf-8").splitlines()[1] == "01,0,1,Dividing Ligament and Peritoneum"
    out = tmp_path / "c80.csv"
    assert main(["labels", "cholec80", str(fixtures_dir / "cholec80"), "--out", str(out), "--fps", "25"]) == 0
    table = load_label_table(out)
    assert len(table) == 1734 and table["phase_id"].max() == 6


def test_bad_label_file_keeps_existing_output(
    fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "labels.csv"
    assert main(["labels", "autolaparo", str(fixtures_dir / "autolaparo"), "--out", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    bad = tmp_path / "bad" / "label_02.txt"
    bad.parent.mkdir()
    bad.write_text("Frame  Phase\n0001\t2\n0002\t9\n", encoding="utf-8")
    assert main(["labels", "autolaparo", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"hecvl labels: error: {bad}: line 3: unknown phase 9 (AutoLaparo phases are 1-7)\n"
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "labels.csv"]  # no temporary file left
    with pytest.raises(
        HecvlError, match="unknown phase 9"
    ):  # --debug: the exception (and traceback) surfaces
        main(["--debug", "labels", "autolaparo", str(bad), "--out", str(out)])
    assert out.read_bytes() == before


def test_console_script_error_has_no_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hecvl.cli",
            "labels",
            "cholec80",
            str(missing),
            "--out",
            str(tmp_path / "o.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"hecvl labels: error: {missing}: no such cholec80 label file or folder"
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.csv").exists()


def test_params_yaml_targets_are_well_formed() -> None:
    params = load_params(ROOT / "params.yaml")
    for name, cfg in params.data.targets.items():
        ds = TargetDataset.from_params(name, params)
        assert ds.fmt == cfg.format and ds.video_path("X").name.startswith("X")
        assert len(ds.classes) == {"cholec80": 7, "autolaparo": 7, "multibypass140": 12}[ds.fmt]


def test_label_table_dtypes_survive_csv(fixtures_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "al.csv"
    assert main(["labels", "autolaparo", str(fixtures_dir / "autolaparo"), "--out", str(out)]) == 0
    naive = pd.read_csv(out)
    assert naive["video"].iloc[0] == 1  # why load_label_table exists: pandas would turn "01" into 1
    assert load_label_table(out)["video"].iloc[0] == "01"
