"""The typed configuration of the study: every setting's type, default, range and reason, stated once.

    params = load_params("params.yaml")          # preset applied, every variant validated
    run = params.variant("clip_only")            # what that variant's jobs compute
    run.train.steps, run.model.heads.mode, run.frames.build()

The DAG resolves the configuration once (preset, `--configfile`, `--config`), writes it with
`write_resolved`, and every job reads that file, so what Snakemake says is what the jobs run.
"""

from hecvl.config.base import LEVELS, Section
from hecvl.config.data import CorpusSource, DataSettings, DownloadSettings, SyntheticSettings, TargetSettings
from hecvl.config.evaluation import SPACES, STYLES, EvalSettings, ProbeSettings
from hecvl.config.frames import FramesSettings, TransformSettings
from hecvl.config.identity import run_key, training_settings
from hecvl.config.model import HeadConfig, LossConfig, ModelConfig, TextConfig, VisualConfig
from hecvl.config.pairing import PairingRules
from hecvl.config.params import Params
from hecvl.config.released import RELEASED_MODELS, ReleasedSettings
from hecvl.config.resolve import (
    coerce_params,
    deep_merge,
    load_params,
    read_yaml,
    resolve,
    typed_command_line,
    validate_section,
)
from hecvl.config.study import REFERENCES, AblationSpec, StudySettings
from hecvl.config.train import OPERATIONAL, SCHEDULES, TrainSettings
from hecvl.config.write import write_resolved

__all__ = [
    "LEVELS",
    "OPERATIONAL",
    "REFERENCES",
    "RELEASED_MODELS",
    "SCHEDULES",
    "SPACES",
    "STYLES",
    "AblationSpec",
    "CorpusSource",
    "DataSettings",
    "DownloadSettings",
    "EvalSettings",
    "FramesSettings",
    "HeadConfig",
    "LossConfig",
    "ModelConfig",
    "PairingRules",
    "Params",
    "ProbeSettings",
    "ReleasedSettings",
    "Section",
    "StudySettings",
    "SyntheticSettings",
    "TargetSettings",
    "TextConfig",
    "TrainSettings",
    "TransformSettings",
    "VisualConfig",
    "coerce_params",
    "deep_merge",
    "load_params",
    "read_yaml",
    "resolve",
    "run_key",
    "training_settings",
    "typed_command_line",
    "validate_section",
    "write_resolved",
]
