"""params.yaml's `eval:` section, validated once: unknown or misspelt keys are errors, not ignored.

Defaults are the paper's protocol (docs/protocol.md §7): 1 fps, resize to 360x640, centre crop 224,
one decomposed prompt per class. Which embedding space answers is an ablation (`space`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hecvl.errors import HecvlError
from hecvl.evaluation.embed import SPACES
from hecvl.evaluation.probe import ProbeSettings
from hecvl.evaluation.prompts import STYLES


@dataclass(frozen=True)
class EvalSettings:
    space: str = "ensemble"  # clip | phase | video | ensemble (mean of the three levels' scores)
    prompts: str = "decomposed"  # decomposed | class_name | ensemble
    prompt_file: str | None = None  # a YAML file of one's own prompts; None = the shipped file of the dataset
    batch_size: int = 64  # frames per forward pass
    device: str = "auto"  # auto (cuda if present) | cpu | cuda | cuda:N
    cache: str = "results/cache/embeddings"  # frame-embedding cache root
    probe: ProbeSettings = field(default_factory=ProbeSettings)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides: Any) -> EvalSettings:
        """From resolved params (`params["eval"]`, may be absent) and command-line overrides (None = keep)."""
        raw = dict(params.get("eval") or {})
        raw.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise HecvlError(
                f"unknown setting(s) eval.{', eval.'.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        probe_raw = raw.pop("probe", None) or {}
        if isinstance(probe_raw, ProbeSettings):
            probe = probe_raw
        else:
            probe_known = {f.name for f in fields(ProbeSettings)}
            bad = sorted(set(probe_raw) - probe_known)
            if bad:
                raise HecvlError(f"unknown setting(s) eval.probe.{', eval.probe.'.join(bad)}")
            probe = ProbeSettings(**probe_raw)
        out = cls(probe=probe, **raw)
        out.validate()
        return out

    def validate(self) -> None:
        if self.space not in SPACES:
            raise HecvlError(f"eval.space must be one of {', '.join(SPACES)}, got {self.space!r}")
        if self.prompts not in STYLES:
            raise HecvlError(f"eval.prompts must be one of {', '.join(STYLES)}, got {self.prompts!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise HecvlError(f"eval.batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.probe.C > 0 or self.probe.max_iter < 1:
            raise HecvlError("eval.probe.C must be > 0 and eval.probe.max_iter >= 1")
        if self.probe.max_train_frames is not None and self.probe.max_train_frames < 2:
            raise HecvlError("eval.probe.max_train_frames must be >= 2 or null")
        if self.prompt_file is not None and not Path(self.prompt_file).is_file():
            raise HecvlError("eval.prompt_file not found", self.prompt_file)
