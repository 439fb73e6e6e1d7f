"""Atomic writes: all or nothing, readable like any other file."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from hecvl.io import atomic_path, atomic_write, sha256_file, write_csv, write_json, write_parquet


def test_failed_write_keeps_the_previous_file(tmp_path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(out) as fh:
        fh.write("half")
        raise RuntimeError("interrupted")
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left behind


def test_outputs_follow_the_umask_and_round_trip(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"b": 1, "a": 2})
        df = pd.DataFrame({"x": [1, 2]})
        write_csv(tmp_path / "t.csv", df)
        write_parquet(tmp_path / "t.parquet", df)
        with atomic_path(tmp_path / "w.bin") as tmp:
            tmp.write_bytes(b"abc")
    finally:
        os.umask(old)
    for name in ("m.json", "t.csv", "t.parquet", "w.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert pd.read_parquet(tmp_path / "t.parquet").equals(df)
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    assert sha256_file(tmp_path / "w.bin") == abc
