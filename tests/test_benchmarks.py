"""Every script in benchmarks/ runs in its --smoke mode and ends with its JSON figures, so none can rot.

Each runs as a subprocess, as a user runs it; they share one generated smoke world through
HECVL_BENCH_SMOKE_DIR (benchmarks/_smoke.py). A new benchmark is picked up by the glob: it needs a
--smoke flag and a last stdout line that is a JSON object naming it ("benchmark": its file name,
"smoke": true).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # about a minute for the four on 2 idle cores, one smoke world generated

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def _decode(r: dict[str, Any]) -> None:
    assert r["source_frames"] == 100 and r["sampled_frames"] == 4  # the 4 s, 25 fps generated clip at 1 fps
    assert r["mean_abs_diff"]["a_vs_d"] == 0.0  # the cache serves exactly what the cold path decoded
    assert min(r[f"{k}_frames_per_s"] for k in "abcd") > 0


def _loader(r: dict[str, Any]) -> None:
    assert r["clips"] == 16 and r["frames_per_clip"] > 0
    assert set(r["loader_clips_per_s"]) == {"0", "1", "2"} and min(r["loader_clips_per_s"].values()) > 0


def _evaluate(r: dict[str, Any]) -> None:
    assert r["frames"] > 0 and len(r["videos"]) >= 2  # the smoke preset's datasets, test split
    assert r["eval_cold_frames_per_s"] > 0 and r["warm_over_cold"] > 1  # the caches serve the second run


def _pretrain(r: dict[str, Any]) -> None:
    assert set(r["cpu_default"]) == {"clip", "phase", "video"}
    for level, row in r["cpu_default"].items():
        assert row["level"] == level and row["steps_per_s"] > 0 and row["visual_mflops_per_frame"] > 0
    assert r["matmul_peak_gflops"] > 0 and r["cpu_default_run_estimate"]["steps"] > 0


# what each known benchmark must report; a new one is run and checked for the common keys only
CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "decode": _decode,
    "evaluate": _evaluate,
    "loader": _loader,
    "pretrain": _pretrain,
}


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-smoke")


def test_the_glob_finds_every_known_benchmark() -> None:
    assert set(CHECKS) <= {p.stem for p in BENCHMARKS}


def _run_smoke(script: Path, smoke_dir: Path, *extra: str) -> dict[str, Any]:
    """Run `script --smoke [extra]` as a user does; its last stdout line, a JSON object naming it."""
    env = {**os.environ, "HECVL_BENCH_SMOKE_DIR": str(smoke_dir), "HECVL_TRACKING": "off",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    argv = [sys.executable, str(script), "--smoke", *extra]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    what = " ".join([script.name, "--smoke", *extra])
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{what} printed nothing on stdout"
    result = json.loads(lines[-1])
    assert isinstance(result, dict), f"{what}: last stdout line is no JSON object: {lines[-1][:200]}"
    assert result["benchmark"] == script.stem and result["smoke"] is True
    return result


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_smoke_run_exits_0_and_ends_with_its_json_figures(script: Path, smoke_dir: Path) -> None:
    result = _run_smoke(script, smoke_dir)
    CHECKS.get(script.stem, lambda _r: None)(result)


def test_loader_paper_mode_measures_the_store_against_decoding(smoke_dir: Path) -> None:
    """`loader.py --paper --smoke`: a 1280x720 25 fps lecture, the paper's geometry, every figure present."""
    r = _run_smoke(ROOT / "benchmarks" / "loader.py", smoke_dir, "--paper")
    assert r["mode"] == "paper" and r["lectures"]["size"] == [720, 1280] and r["lectures"]["fps"] == 25.0
    assert r["geometry"]["frames_per_sample"] == {"clip": [4], "phase": [16], "video": [64]}
    assert r["geometry"]["size"] == [360, 640] and r["geometry"]["crop"] == 336
    for key in ("store_frames_per_cpu_s", "decode_frames_per_cpu_s", "pyav_decode_frames_per_cpu_s",
                "store_over_decode", "bytes_per_frame", "build_over_decode_all", "raw_frames_per_cpu_s"):
        assert r[key] > 0, key
    assert r["store_over_decode"] > 1  # even on a 20 s lecture the store beats decoding the MP4
    assert r["cpu_default"]["jpeg_frames_per_cpu_s"] > 0 and r["cpu_default"]["raw_bytes_per_frame"] > 0
