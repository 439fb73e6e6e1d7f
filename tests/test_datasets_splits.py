"""Official splits, split JSON files, and the restricted unpickler for the MultiBypass140 split pickles."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hecvl.cli import main
from hecvl.datasets.safe_pickle import load_restricted, loads_restricted
from hecvl.datasets.splits import (
    check_splits,
    filter_centre,
    multibypass_official_splits,
    official_splits,
    read_split_pickle,
    read_splits_json,
)
from hecvl.errors import HecvlError


def test_official_cholec80_and_autolaparo() -> None:
    c80 = official_splits("cholec80")
    assert list(c80) == ["train", "val", "test"]
    assert c80["train"] == [f"video{i:02d}" for i in range(1, 41)]
    assert c80["val"] == [f"video{i:02d}" for i in range(41, 49)]
    assert c80["test"] == [f"video{i:02d}" for i in range(49, 81)]  # the 32 videos the paper tests on
    al = official_splits("autolaparo")
    assert (len(al["train"]), len(al["val"]), len(al["test"])) == (10, 4, 7)
    assert al["train"][0] == "01" and al["test"] == [f"{i:02d}" for i in range(15, 22)]
    with pytest.raises(HecvlError, match="no bundled official split for multibypass140"):
        official_splits("multibypass140")


def test_splits_json_checks(tmp_path: Path) -> None:
    good = tmp_path / "splits.json"
    good.write_text(json.dumps({"test": ["03"], "train": ["01", "02"]}), encoding="utf-8")
    assert list(read_splits_json(good)) == ["train", "test"]
    leak = tmp_path / "leak.json"
    leak.write_text(json.dumps({"train": ["01", "02"], "test": ["02"]}), encoding="utf-8")
    with pytest.raises(HecvlError, match="video 02 is listed in both 'train' and 'test'"):
        read_splits_json(leak)
    broken = tmp_path / "broken.json"
    broken.write_text('{"train": ["01",', encoding="utf-8")
    with pytest.raises(HecvlError, match=r"broken\.json: not valid JSON"):
        read_splits_json(broken)
    with pytest.raises(HecvlError, match="video ids must be non-empty strings, got 1"):
        check_splits({"train": [1]})
    with pytest.raises(HecvlError, match="splits file not found"):
        read_splits_json(tmp_path / "absent.json")


def test_filter_centre() -> None:
    ids = ["BBP01", "SBP01", "SBP02"]
    assert filter_centre(ids, "strasbourg") == ["SBP01", "SBP02"]
    assert filter_centre(ids, "bern") == ["BBP01"]
    assert filter_centre(ids, None) == ids
    with pytest.raises(HecvlError, match="unknown MultiBypass140 centre 'paris'"):
        filter_centre(ids, "paris")


# --- the restricted unpickler --------------------------------------------------------------------


class _Exploit:
    """A pickle that runs a shell command when loaded with the full unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _PopenExploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_pickle_is_refused_and_never_run(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "1fps_0.pickle"
    bad.write_bytes(pickle.dumps({"SBP01": [_Exploit(marker)]}, protocol=protocol))
    with pytest.raises(
        HecvlError, match=r"1fps_0\.pickle: unsafe or unreadable pickle.*refused the global"
    ) as err:
        load_restricted(bad)
    assert "system" in str(err.value)
    assert not marker.exists()
    popen = tmp_path / "popen.pickle"
    popen.write_bytes(pickle.dumps(_PopenExploit(marker), protocol=protocol))
    with pytest.raises(HecvlError, match=r"refused the global (subprocess|commands)\.Popen"):
        load_restricted(popen)
    assert not marker.exists()


def test_builtins_other_than_sets_are_refused() -> None:
    payload = pickle.dumps(eval)  # a pickled reference to builtins.eval
    with pytest.raises(pickle.UnpicklingError, match=r"refused the global builtins\.eval"):
        loads_restricted(payload)
    crafted = b"cbuiltins\ngetattr\n(cos\nS'system'\ntR."  # protocol 0 getattr(os, 'system')
    with pytest.raises(pickle.UnpicklingError, match=r"refused the global builtins\.getattr"):
        loads_restricted(crafted)


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_plain_data_and_numpy_scalars_come_back(protocol: int) -> None:
    data = {
        "BBP01": [
            {
                "Frame_id": "1",
                "Original_frame_id": np.int64(25),
                "Phase_gt": np.int64(3),
                "Step_gt": np.int32(-2),
            },
            {"score": np.float32(1.5), "p": np.float64(0.25), "ok": np.bool_(True), "u": np.uint8(200)},
            {
                "name": np.str_("BBP01"),
                "t": (1, 2.5, None, True),
                "s": {1, 2},
                "f": frozenset({"a"}),
                "b": b"\x00",
            },
        ]
    }
    back = loads_restricted(pickle.dumps(data, protocol=protocol))
    rec0, rec1, rec2 = back["BBP01"]
    assert rec0 == {"Frame_id": "1", "Original_frame_id": 25, "Phase_gt": 3, "Step_gt": -2}
    assert all(type(v) is int for k, v in rec0.items() if k != "Frame_id")
    assert rec1 == {"score": 1.5, "p": 0.25, "ok": True, "u": 200} and type(rec1["ok"]) is bool
    assert rec2 == {
        "name": "BBP01",
        "t": (1, 2.5, None, True),
        "s": {1, 2},
        "f": frozenset({"a"}),
        "b": b"\x00",
    }
    assert type(rec2["name"]) is str


def test_numpy_1_scalar_pickles_as_in_the_published_files() -> None:
    # numpy < 2 (which wrote the published pickles) names the module numpy.core.multiarray
    data = pickle.dumps({"SBP01": [{"Phase_gt": np.int64(7)}]}, protocol=2)
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old != data and b"numpy._core" not in old
    assert loads_restricted(old) == {"SBP01": [{"Phase_gt": 7}]}


def test_numpy_arrays_and_object_dtypes_are_refused() -> None:
    with pytest.raises(pickle.UnpicklingError, match="refused the global numpy"):
        loads_restricted(pickle.dumps({"x": np.arange(3)}))
    with pytest.raises(pickle.UnpicklingError, match="not a plain bool/int/float/str type"):
        loads_restricted(pickle.dumps(np.datetime64("2020-01-01")))


def test_damaged_pickle(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pickle"
    cut.write_bytes(pickle.dumps({"SBP01": [{"Phase_gt": 1}] * 50})[:40])
    with pytest.raises(HecvlError, match=r"cut\.pickle: .*pickle"):
        load_restricted(cut)


def _write_fold(base: Path, fold: int, splits: dict[str, list[str]]) -> None:
    names = {"train": f"1fps_100_{fold}.pickle", "val": f"1fps_{fold}.pickle", "test": f"1fps_{fold}.pickle"}
    for split, ids in splits.items():
        folder = base / "labels" / split
        folder.mkdir(parents=True, exist_ok=True)
        frames = [
            {
                "Frame_id": f"{k}",
                "Original_frame_id": np.int64(k),
                "Phase_gt": np.int64(0),
                "Step_gt": np.int64(1),
            }
            for k in range(3)
        ]
        records = {vid: frames for vid in ids}
        (folder / names[split]).write_bytes(pickle.dumps(records, protocol=4))


def test_multibypass_official_fold_from_pickles(tmp_path: Path) -> None:
    base = tmp_path / "labels" / "strasbourg" / "labels_by70_splits"
    _write_fold(base, 1, {"train": ["SBP03", "SBP01"], "val": ["SBP02"], "test": ["SBP04", "SBP05"]})
    assert multibypass_official_splits(base, fold=1) == {
        "train": ["SBP01", "SBP03"],
        "val": ["SBP02"],
        "test": ["SBP04", "SBP05"],
    }
    assert read_split_pickle(base / "labels" / "val" / "1fps_1.pickle") == ["SBP02"]
    with pytest.raises(HecvlError, match=r"train pickle of fold 0 not found"):
        multibypass_official_splits(base, fold=0)
    _write_fold(base, 2, {"train": ["SBP01"], "val": ["SBP01"], "test": ["SBP02"]})
    with pytest.raises(HecvlError, match="video SBP01 is listed in both 'train' and 'val'"):
        multibypass_official_splits(base, fold=2)


def test_cli_labels_splits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "labels_by70_splits"
    _write_fold(base, 0, {"train": ["BBP01"], "val": ["BBP02"], "test": ["BBP03"]})
    out = tmp_path / "splits_bern.json"
    assert main(["labels", "splits", str(base), "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == {
        "train": ["BBP01"],
        "val": ["BBP02"],
        "test": ["BBP03"],
    }
    single = tmp_path / "one.json"
    assert (
        main(["labels", "splits", str(base / "labels" / "test" / "1fps_0.pickle"), "--out", str(single)]) == 0
    )
    assert json.loads(single.read_text(encoding="utf-8")) == {"videos": ["BBP03"]}
    evil = tmp_path / "evil.pickle"
    marker = tmp_path / "pwned"
    evil.write_bytes(pickle.dumps({"BBP01": _Exploit(marker)}))
    assert main(["labels", "splits", str(evil), "--out", str(single)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hecvl labels: error: ") and "refused the global" in err and "Traceback" not in err
    assert not marker.exists()
    assert json.loads(single.read_text(encoding="utf-8")) == {"videos": ["BBP03"]}  # untouched
