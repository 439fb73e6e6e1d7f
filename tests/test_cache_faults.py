"""Fault injection on everything read from a cache: damaged entries are reported, rebuilt, never used.

Real entries made by the real code on tiny inputs (an untrained model's embeddings of two short
videos, the packaged MiniLM's features of four texts) are damaged on disk the ways disks and people
damage them: sign bits flipped (the same size, a different result if it were used), truncation, a
missing or an old-format checksum record, an unreadable one. Each must give one warning naming the
file and what is wrong, a rebuilt entry, and exactly the undisturbed result. DVC must refuse a
corrupt object in the remote at the pull (`verify = true` in the project's `.dvc/config`).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from evaluation_helpers import small_model_params, write_cholec80
from study_helpers import BIN, ROOT, env

from hecvl.checksums import read_checked, write_checked
from hecvl.cli import main
from hecvl.models.text_encoder import load_text_encoder

VIDEOS = {"video01": [0, 0, 1, 1, 2], "video02": [1, 2, 2, 3, 3], "video03": [0, 1, 1, 2, 3]}


def _flip_sign_bits(path: Path, record: Path, nbytes: int) -> None:
    """Negate the last `nbytes` / 4 float32 values in place (little-endian: the sign is each 4th byte)."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) - nbytes + 3, len(data), 4):
        data[i] ^= 0x80
    path.write_bytes(bytes(data))


def _truncate(path: Path, record: Path, nbytes: int) -> None:
    path.write_bytes(path.read_bytes()[:-64])


def _drop_record(path: Path, record: Path, nbytes: int) -> None:
    record.unlink()


def _old_record(path: Path, record: Path, nbytes: int) -> None:
    """What the caches wrote before they carried checksums: the record's other keys only."""
    meta = json.loads(record.read_text())
    record.write_text(json.dumps({k: v for k, v in meta.items() if k not in ("sha256", "bytes")}))


def _garble_record(path: Path, record: Path, nbytes: int) -> None:
    record.write_text('{"sha256": ')


Fault = Callable[[Path, Path, int], None]
FAULTS: dict[str, tuple[Fault, str]] = {  # what is done to the entry, what the warning must say
    "sign_bits": (_flip_sign_bits, "SHA-256 mismatch"),
    "truncated": (_truncate, "truncated"),
    "no_record": (_drop_record, "no checksum record"),
    "old_format": (_old_record, "before cache entries carried checksums"),
    "unreadable_record": (_garble_record, "unreadable checksum record"),
}


def _warnings_naming(caplog: pytest.LogCaptureFixture, path: Path) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    return [m for m in messages if str(path) in m]


# ------------------------------------------------------------------------------------------ embeddings
@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny dataset evaluated once by an untrained model: its predictions and its cache entry's bytes."""
    root = tmp_path_factory.mktemp("faults")
    target = write_cholec80(root / "tiny", VIDEOS, {"train": ["video01"], "test": ["video02", "video03"]},
                            _noise, h=48, w=64)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(small_model_params(root, "fault-test", target)))
    world = {"root": root, "params": params}
    predictions = _evaluate(world, "undisturbed")
    (entry,) = (root / "emb").rglob("video02.clip.npy")
    return {**world, "predictions": predictions, "entry": entry, "bytes": entry.read_bytes()}


def _noise(p: int, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 255, (h, w, 3)).astype(np.uint8) // (p + 1)


def _evaluate(world: dict, name: str) -> pd.DataFrame:
    out = world["root"] / name
    args = ["evaluate", "--params", str(world["params"]), "--dataset", "tiny", "--out", str(out),
            "--untrained", "--space", "clip", "--prompts", "class_name"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HECVL_TRACKING", "off")
        assert main(args) == 0
    return pd.read_parquet(out / "predictions.parquet")


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_damaged_embedding_entry_is_reported_rebuilt_and_never_used(
    evaluated: dict, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    entry, record = evaluated["entry"], evaluated["entry"].with_suffix(".json")
    damage, what = FAULTS[fault]
    frames, dim = np.load(entry).shape
    damage(entry, record, frames * dim * 4)
    with caplog.at_level(logging.WARNING, logger="hecvl.evaluation.embed"):
        predictions = _evaluate(evaluated, f"after-{fault}")
    (warning,) = _warnings_naming(caplog, entry)
    assert what in warning, warning
    assert entry.read_bytes() == evaluated["bytes"] and read_checked(entry, record) is not None  # rebuilt
    pd.testing.assert_frame_equal(predictions, evaluated["predictions"])


def test_flipped_sign_bits_if_served_change_the_predictions(evaluated: dict) -> None:
    """The fault is real: the same damaged bytes given a matching record (what the cache did before it
    verified entries) are served and change the predictions; the test above passes because they were
    refused, not because they changed nothing."""
    entry, record = evaluated["entry"], evaluated["entry"].with_suffix(".json")
    fields = {k: v for k, v in json.loads(record.read_text()).items() if k not in ("sha256", "bytes")}
    frames, dim = np.load(entry).shape
    try:
        _flip_sign_bits(entry, record, frames * dim * 4)
        write_checked(entry, entry.read_bytes(), record, fields)
        served = _evaluate(evaluated, "served-damaged")
    finally:
        write_checked(entry, evaluated["bytes"], record, fields)
    assert not served.equals(evaluated["predictions"])


# ------------------------------------------------------------------------------------- text features
TEXTS = ["we place two clips on the cystic duct", "the hook dissects Calot's triangle", "ok", "as you see"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The packaged MiniLM's features of TEXTS, as encoded and as written to a store by `warm`."""
    encoder = load_text_encoder({"max_length": 16})
    store = tmp_path_factory.mktemp("text")
    expected = encoder.encode(TEXTS)
    encoder.clear_cache()
    assert encoder.warm(TEXTS, store) is False  # encoded and stored
    (entry,) = store.glob("*.safetensors")
    record = entry.with_suffix(".json")
    return {"encoder": encoder, "store": store, "expected": expected, "entry": entry, "record": record,
            "bytes": entry.read_bytes(), "record_bytes": record.read_bytes()}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_damaged_text_feature_entry_is_reported_rebuilt_and_never_used(
    stored: dict, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    encoder, expected = stored["encoder"], stored["expected"]
    entry, record = stored["entry"], stored["record"]
    entry.write_bytes(stored["bytes"])
    record.write_bytes(stored["record_bytes"])
    damage, what = FAULTS[fault]
    damage(entry, record, expected.numel() * 4)
    encoder.clear_cache()
    with caplog.at_level(logging.WARNING, logger="hecvl.models.text_encoder"):
        assert encoder.warm(TEXTS, stored["store"]) is False  # refused: encoded again
    (warning,) = _warnings_naming(caplog, entry)
    assert what in warning, warning
    assert torch.equal(encoder(TEXTS), expected)
    assert entry.read_bytes() == stored["bytes"] and read_checked(entry, record) is not None  # rebuilt


# ------------------------------------------------------------------------------------------------ DVC
def _dvc(project: Path, *args: str, site: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run dvc in `project`, its site cache (remote indexes, locks) in `site` rather than /var/tmp."""
    environ = {**env(project), "DVC_SITE_CACHE_DIR": str(site)}
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=project, env=environ, capture_output=True, text=True,
                          timeout=300)
    assert not check or proc.returncode == 0, f"dvc {args}: {proc.stdout}{proc.stderr}"
    return proc


def test_the_projects_remotes_verify_what_they_pull(tmp_path: Path) -> None:
    remotes = _dvc(ROOT, "config", "--list", "--project", site=tmp_path).stdout.splitlines()
    names = {line.split(".")[1] for line in remotes if line.startswith("remote.") and ".url=" in line}
    assert names and all(f"remote.{n}.verify=true" in remotes for n in names), remotes


@pytest.mark.slow  # six dvc commands: about 15 s on 2 shared cores
def test_dvc_pull_refuses_a_corrupt_remote_object(tmp_path: Path) -> None:
    """The project's .dvc/config (its relative remote resolves beside the project, as in the study)."""
    project, site = tmp_path / "project", tmp_path / "dvc-site"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, env=env(project), check=True)
    _dvc(project, "init", "-q", site=site)
    shutil.copy(ROOT / ".dvc" / "config", project / ".dvc" / "config")
    data = bytes(range(256)) * 64
    (project / "data.bin").write_bytes(data)
    _dvc(project, "add", "-q", "data.bin", site=site)
    _dvc(project, "push", "-q", site=site)
    (obj,) = [p for p in (tmp_path / "hecvl-dvc-remote").rglob("*") if p.is_file()]
    mode = obj.stat().st_mode
    obj.chmod(0o644)
    damaged = bytearray(data)
    damaged[100] ^= 0xFF
    obj.write_bytes(bytes(damaged))
    obj.chmod(mode)  # read-only again, as DVC left it: DVC trusts such files without rehashing them

    def pull() -> subprocess.CompletedProcess:
        shutil.rmtree(project / ".dvc" / "cache", ignore_errors=True)
        (project / "data.bin").unlink(missing_ok=True)
        return _dvc(project, "pull", check=False, site=site)

    _dvc(project, "remote", "modify", "--local", "local", "verify", "false", site=site)
    assert pull().returncode == 0 and (project / "data.bin").read_bytes() == bytes(damaged)  # the fault
    (project / ".dvc" / "config.local").unlink()
    refused = pull()
    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert not (project / "data.bin").exists()
    assert not [p for p in (project / ".dvc" / "cache").rglob("*") if p.is_file()]  # nothing bad kept
