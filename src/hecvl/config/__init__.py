"""The typed configuration of the study: every setting's type, default, range and reason, stated once.

    params = load_params("params.yaml")          # preset applied, every variant validated
    run = params.variant("clip_only")            # what that variant's jobs compute
    run.train.steps, run.model.heads.mode, run.frames.build()

Each Snakemake invocation resolves the configuration once (`resolve_invocation`: preset, `--configfile`,
`--config`) and writes it under its own digest (`invocation_config`); its jobs read that file, so what
Snakemake planned is what the jobs run.
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
    load_params,
    read_yaml,
    resolve,
    resolve_invocation,
    typed_command_line,
)
from hecvl.config.store import FrameStoreSettings
from hecvl.config.study import REFERENCES, AblationSpec, StudySettings
from hecvl.config.train import OPERATIONAL, SCHEDULES, TrainSettings
from hecvl.config.validate import deep_merge, validate_section
from hecvl.config.write import invocation_config, write_resolved, write_text_once

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
    "FrameStoreSettings",
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
    "invocation_config",
    "load_params",
    "read_yaml",
    "resolve",
    "resolve_invocation",
    "run_key",
    "training_settings",
    "typed_command_line",
    "validate_section",
    "write_resolved",
    "write_text_once",
]
