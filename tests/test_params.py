"""params.yaml handling: presets, variants as overrides, clear errors."""

from __future__ import annotations

import pytest

from hecvl.errors import HecvlError
from hecvl.params import deep_merge, get, load_params, resolve_variant

PARAMS = """
preset: smoke
seed: 0
train: {steps: 100, batch: {clip: 64, phase: 16}}
presets:
  smoke: {train: {steps: 5}}
  default: {}
variants:
  hecvl: {}
  clip_only: {train: {schedule: clip_only, batch: {phase: 0}}}
"""


def test_preset_and_variant_overrides(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS)
    params = load_params(path)
    assert params["train"]["steps"] == 5 and "presets" not in params
    assert load_params(path, apply_preset=False)["train"]["steps"] == 100
    v = resolve_variant(params, "clip_only")
    assert v["train"] == {"steps": 5, "batch": {"clip": 64, "phase": 0}, "schedule": "clip_only"}
    assert "variants" not in v
    assert resolve_variant(params, "hecvl") == resolve_variant(params, None)
    assert params["train"]["batch"]["phase"] == 16  # resolving never mutates the source


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(HecvlError, match="not found"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(HecvlError, match=r"bad\.yaml: not valid YAML"):
        load_params(bad)
    unknown = tmp_path / "p.yaml"
    unknown.write_text("preset: huge\npresets: {smoke: {}}\n")
    with pytest.raises(HecvlError, match="unknown preset 'huge'"):
        load_params(unknown)
    with pytest.raises(HecvlError, match="unknown variant 'x'"):
        resolve_variant({"variants": {"a": {}}}, "x")
    with pytest.raises(HecvlError, match=r"missing setting 'a\.b'"):
        get({"a": {}}, "a.b")
    assert get({"a": {"b": 2}}, "a.b") == 2
    assert deep_merge({"a": {"b": 1}}, {"a": 3}) == {"a": 3}

