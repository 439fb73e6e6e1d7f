"""The typed configuration: one model of params.yaml, its errors, presets, variants, schema and identity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hecvl.cli import main
from hecvl.config import (
    Params,
    TrainSettings,
    deep_merge,
    load_params,
    read_yaml,
    resolve,
    run_key,
    typed_command_line,
    validate_section,
)
from hecvl.config.identity import training_settings, validation_datasets
from hecvl.config.params_cli import schema_text
from hecvl.config.write import write_resolved
from hecvl.errors import HecvlError
from hecvl.study import Study

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"train": {"lr": -1.0}}, r"params.yaml with the overrides: train.lr must be > 0, got -1.0$"),
        ({"train": {"grad_clp": 0}}, r"train.grad_clp is not a setting"),
        ({"model": {"text": {"freeze": "false"}}}, r"model.text.freeze must be true or false, got 'false'"),
        ({"model": {"heads": {"dim": 256.5}}}, r"model.heads.dim must be an integer, got 256.5"),
        ({"train": {"schedule": "fine"}}, r"train.schedule must be one of 'fine_to_coarse', .*got 'fine'"),
        ({"pairing": {"clip": {"frames": 40}}}, r"pairing.clip: 40 frames do not fit a 3.0 s clip"),
        ({"frames": {"transform": {"crop": 500}}}, r"frames.transform: crop 500 is larger"),
        ({"eval": {"space": "joint"}}, r"eval.space must be one of"),
        ({"variants": {"x": {"train": {"steps": 0}}}}, r"variants.x: train.steps must be > 0, got 0"),
        ({"variants": {"x": {"study": {"seeds": [1]}}}}, r"variants.x names a section a variant cannot"),
        ({"study": {"ablations": ["nope"]}}, r"study.ablations names an undefined ablation 'nope'"),
        ({"ablations": {"space": {"seeds": "mian"}}},
         r"ablations.space.seeds: must be main, ablation or a non-empty list of integer seeds, got 'mian'$"),
        ({"ablations": {"heads": {"seeds": [0, "1"]}}}, r"ablations.heads.seeds: must be .* got \[0, '1'\]$"),
        ({"ablations": {"heads": {"seeds": None}}}, r"ablations.heads.seeds: must be .*, got None$"),
        ({"preset": "tiny"},
         r"unknown preset 'tiny' \(known: default, full, paper, paper-smoke, public-corpus, smoke\)"),
    ],
)
def test_every_bad_value_is_one_line_naming_the_key(override: dict, message: str) -> None:
    with pytest.raises(HecvlError, match=message) as info:
        load_params(PARAMS, [override])
    assert "\n" not in str(info.value)


def test_the_file_is_blamed_for_its_own_errors_and_inactive_presets_are_checked(tmp_path: Path) -> None:
    raw = read_yaml(PARAMS)
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(deep_merge(raw, {"presets": {"smoke": {"train": {"steps": -3}}}})))
    with pytest.raises(HecvlError, match=r"^.*p.yaml: presets.smoke: train.steps must be > 0, got -3$"):
        load_params(bad)  # the active preset is `default`: the broken one is found all the same


def test_defaults_are_stated_once_and_the_study_file_does_not_restate_them() -> None:
    raw = read_yaml(PARAMS)
    assert not {"model", "train", "pairing", "frames", "eval"} & set(raw)
    params = load_params(PARAMS)
    assert params.train == TrainSettings()  # the default preset adds nothing
    assert params.train.steps == 600 and params.train.lr == 1e-3


def test_presets_then_overrides_then_variants() -> None:
    smoke = load_params(PARAMS, [{"preset": "smoke"}])
    assert smoke.preset == "smoke" and smoke.train.steps == 16 and smoke.study.seeds == (0,)
    over = load_params(PARAMS, [{"preset": "smoke", "train": {"steps": 5}}])
    assert over.train.steps == 5 and over.train.warmup_steps == 4  # the override beats the preset
    joint = over.variant("joint")
    assert joint.train.schedule == "joint" and joint.train.steps == 6  # the (smoke) variant's own value wins
    assert over.variant("main") is over and over.variant("joint") is joint  # cached
    paper = load_params(PARAMS, [{"preset": "paper"}])
    assert paper.model.visual.preset == "resnet50" and paper.model.visual.image_size == 336
    assert paper.train.batch_size.to_dict() == {"clip": 120, "phase": 80, "video": 25}
    assert paper.train.lr == 5e-5 and paper.model.text.pooling == "sum_last4"
    assert (paper.frames.transform.size, paper.frames.transform.crop) == ((360, 640), 224)


def test_snakemake_command_line_values_get_their_types_back() -> None:
    # Snakemake reads nested --config values with YAML's BaseLoader: every scalar arrives as text
    typed = typed_command_line({"preset": "smoke", "train": {"steps": "5", "channels_last": "false",
                                                            "levels": ["clip", "phase"], "lr": "1e-4"}})
    assert typed == {"preset": "smoke", "train": {"steps": 5, "channels_last": False,
                                                  "levels": ["clip", "phase"], "lr": 1e-4}}


def test_resolved_file_round_trips_and_is_written_only_when_it_changes(tmp_path: Path) -> None:
    params = load_params(PARAMS, [{"preset": "smoke", "train": {"steps": 5}}])
    out = tmp_path / "config" / "study.yaml"
    assert write_resolved(params, out) is True
    mtime = out.stat().st_mtime_ns
    assert write_resolved(params, out) is False and out.stat().st_mtime_ns == mtime
    again = load_params(out)
    assert again == params.model_copy(update={"presets": {}})
    assert again.variant("clip_only") == params.variant("clip_only")


def test_run_identity_ignores_execution_settings() -> None:
    params = load_params(PARAMS)
    key = run_key(params)
    assert run_key(params.updated({"train": {"threads": 2, "checkpoint_every": 7}})) == key
    assert run_key(params.updated({"eval": {"space": "clip"}, "study": {"seeds": [5]}})) == key
    assert run_key(params.updated({"train": {"lr": 2e-3}})) != key
    study = Study(params)
    assert study.train_key("hecvl") == key and study.canonical("hecvl") == "hecvl"


def test_settings_added_later_leave_existing_run_keys_alone() -> None:
    params = load_params(PARAMS)
    key = run_key(params)
    assert not {"chunk", "epochs"} & set(training_settings(params)["train"])  # null: not dumped at all
    assert run_key(params.updated({"train": {"epochs": None, "chunk": None}})) == key
    assert run_key(params.updated({"train": {"epochs": 200}})) != key
    paper = load_params(PARAMS, [{"preset": "paper"}])
    assert paper.train.epochs == 200 and paper.train.chunk is not None
    assert training_settings(paper)["train"]["epochs"] == 200


def test_validation_runs_on_the_targets_the_user_configured(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no data/ here: the study's targets are not on disk
    params = load_params(PARAMS)
    # synthetic: the targets are generated before training, so they count before they exist
    assert validation_datasets(params) == params.study.datasets
    local = params.updated({"data": {"source": "local"}})
    assert validation_datasets(local) == ()  # corpus only: validation off, not a missing splits file
    (tmp_path / "data" / "world" / "targets" / "cholec80").mkdir(parents=True)
    assert validation_datasets(local) == ("cholec80",)
    # a dataset named in study.datasets but not defined under data.targets is not configured
    assert validation_datasets(local.updated({"study": {"datasets": ["cholec80", "mine"]}})) == ("cholec80",)
    # chosen by name: as given (a missing one is the validation's error, not silently skipped)
    chosen = local.updated({"train": {"validation": {"datasets": ["autolaparo"]}}})
    assert validation_datasets(chosen) == ("autolaparo",)
    assert validation_datasets(local.updated({"train": {"validation": {"datasets": []}}})) == ()
    # the DAG's run key follows: off means no validation block in it
    assert "validation" in training_settings(params) and "validation" not in training_settings(
        params.updated({"data": {"source": "local"}, "study": {"datasets": ["bernbypass70"]}}))


def test_committed_schema_is_generated_from_the_models() -> None:
    committed = (ROOT / "workflow" / "schemas" / "params.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "run `hecvl params schema` and commit workflow/schemas/"
    schema = str(ROOT / "workflow/schemas/params.schema.json")
    assert main(["params", "schema", "--check", "--out", schema]) == 0


def test_schema_describes_every_section_with_its_reasons() -> None:
    import json

    schema = json.loads(schema_text())
    assert {"study", "data", "model", "train", "pairing", "frames", "eval", "released", "variants",
            "ablations", "presets"} <= set(schema["properties"])
    lr = schema["$defs"]["TrainSettings"]["properties"]["lr"]
    assert lr["exclusiveMinimum"] == 0 and lr["default"] == 1e-3 and "paper" in lr["description"]


def test_params_show_prints_the_resolved_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["params", "show", "--params", str(PARAMS), "--preset", "smoke", "--variant", "joint"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["preset"] == "smoke" and shown["train"]["schedule"] == "joint"
    assert shown["train"]["steps"] == 6 and shown["study"]["seeds"] == [0]
    assert resolve(shown).train.steps == 6  # what `show` prints is itself a valid configuration


def test_bad_parameter_file_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(deep_merge(read_yaml(PARAMS), {"train": {"lr": -1.0}})))
    proc = subprocess.run([sys.executable, "-m", "hecvl.cli", "params", "show", "--params", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith("train.lr must be > 0, got -1.0")


def test_a_section_validates_on_its_own() -> None:
    train = validate_section(TrainSettings, {"steps": 7, "batch_size": {"clip": 4, "phase": 2, "video": 2}},
                             "train")
    assert train.steps == 7 and train.batch_size["clip"] == 4 and train.lr == TrainSettings().lr
    with pytest.raises(HecvlError, match=r"train.batch_size.video is required"):
        validate_section(TrainSettings, {"batch_size": {"clip": 4, "phase": 2}}, "train")
    assert isinstance(Params(), Params)  # every section has defaults: a stage runs on an empty file


def test_trained_levels_decide_what_the_ensemble_averages() -> None:
    from hecvl.evaluation.embed import levels_for

    params = load_params(PARAMS)
    assert params.variant("hecvl").train.trained_levels == ("clip", "phase", "video")
    assert params.variant("clip_only").train.trained_levels == ("clip",)
    assert params.variant("clip_phase").train.trained_levels == ("clip", "phase")
    no_video = params.updated({"train": {"alternation": {"video": 0}}})
    assert no_video.train.trained_levels == ("clip", "phase")
    joint = params.variant("joint").updated({"train": {"level_weights": {"phase": 0.0}}})
    assert joint.train.trained_levels == ("clip", "video")
    # the ensemble of a clip + phase model leaves out the video head it never trained
    assert levels_for("ensemble", ("clip", "phase")) == ["clip", "phase"]
    assert levels_for("ensemble") == ["clip", "phase", "video"]
    assert levels_for("video", ("clip",)) == ["video"]
