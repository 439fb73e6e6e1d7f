"""Shared test fixtures: paths to the real-format files in ../shared/fixtures, skipped cleanly without."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HECVL_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The real-format fixtures; tests that need them skip with a reason where ../shared is absent."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real-format fixtures not found at {FIXTURES} (clone ../shared beside the project)")
    return FIXTURES


@pytest.fixture(scope="session")
def real_clip(fixtures_dir: Path) -> Path:
    """The real AutoLaparo clip: H.264, 1920x1080, 25 fps, 250 frames, with audio."""
    return fixtures_dir / "videos" / "autolaparo_clip_up.mp4"


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke-preset study, run once per session for every test that reads it (study_helpers.py)."""
    from study_helpers import make_study

    return make_study(tmp_path_factory.mktemp("study"))
