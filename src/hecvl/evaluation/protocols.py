"""Named, versioned zero-shot evaluation protocols: the choices that make published numbers disagree.

The same released checkpoint scores several points apart depending on who evaluates it: test split,
one frame or a temporal window, crop or squash, normalisation, prompts and metric averaging differ
between harnesses. A protocol fixes all of them under a name and a version (protocols.yaml, beside
this file); `hecvl evaluate --protocol NAME` applies one, and every metrics file records the
protocol's name, version, resolved settings and their hash, so two numbers are comparable exactly
when their hashes are equal. `hecvl` leaves every choice to params.yaml (the study's own protocol).

    protocol = resolve_protocol(load_params("params.yaml"), "surgclip")  # applied once: eval, frames, targets
    protocol.split("cholec80"), protocol.record(settings, "cholec80", transform)  # split; what metrics store
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import NonNegativeInt, PositiveFloat, PositiveInt, ValidationError

from hecvl.config import EvalSettings, Params
from hecvl.config.base import Section, reason
from hecvl.config.evaluation import WindowSettings
from hecvl.config.frames import TransformSettings
from hecvl.errors import HecvlError
from hecvl.io import read_yaml
from hecvl.video import frames_transform

PROTOCOL_FILE = Path(__file__).with_name("protocols.yaml")
STUDY_PROTOCOL = "hecvl"  # the study's own: every choice from params.yaml


class ProtocolPrompts(Section):
    style: Literal["decomposed", "class_name", "ensemble"] = reason("prompt style the source scores with",
                                                                   "decomposed")
    supplied: Literal["ours", "user"] = reason(
        "user: the source scores with its authors' prompt texts, which the user gives (--prompt-file)",
        "ours")


class Protocol(Section):
    """One named protocol; a field left out keeps the study's setting (params.yaml)."""

    version: PositiveInt
    title: str
    source: str = reason("where each setting comes from (code, paper table)")
    split: dict[str, str] = reason("dataset format (or `default`) -> split, e.g. val+test",
                                   default_factory=dict)
    fold: NonNegativeInt | None = reason("MultiBypass140 official fold", None)
    fps: PositiveFloat | None = None
    window: WindowSettings | None = None
    transform: TransformSettings | None = None
    normalise: Literal["model", "imagenet", "half"] | None = None
    prompts: ProtocolPrompts | None = None
    ignore: tuple[str, ...] | None = reason("classes left out; null: each dataset's default", None)
    metric: Literal["video", "pooled", "both"] = reason("the source's headline averaging; both are written",
                                                        "both")


@cache
def _load(path: str) -> dict[str, Protocol]:
    raw = read_yaml(path, "protocol file")
    if not isinstance(raw, dict) or not raw:
        raise HecvlError("the protocol file must map protocol names to their settings", path)
    out = {}
    for name, body in raw.items():
        try:
            out[str(name)] = Protocol.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise HecvlError(f"protocol {name!r}: {where}: {first['msg']}", path) from None
    if STUDY_PROTOCOL not in out:
        raise HecvlError(f"the protocol file has no {STUDY_PROTOCOL!r} protocol (the study's own)", path)
    return out


def protocols(path: str | Path = PROTOCOL_FILE) -> dict[str, Protocol]:
    """Every named protocol, in file order."""
    return dict(_load(str(path)))


def get_protocol(name: str, path: str | Path = PROTOCOL_FILE) -> Protocol:
    known = protocols(path)
    if name not in known:
        raise HecvlError(
            f"unknown protocol {name!r} (known: {', '.join(known)}; `hecvl protocols` lists them)")
    return known[name]


def apply_protocol(params: Params, name: str | None = None) -> Params:
    """`params` with protocol `name`'s settings (default: eval.protocol) in eval, frames and the targets.

    Settings the protocol leaves open keep params' values. A MultiBypass140 fold and an ignore list go
    to every target they apply to.
    """
    name = name or params.eval.protocol
    proto = get_protocol(name)
    evaluation: dict[str, Any] = {"protocol": name}
    if proto.window is not None:
        evaluation["window"] = proto.window.to_dict()
    if proto.normalise is not None:
        evaluation["normalise"] = proto.normalise
    if proto.prompts is not None:
        evaluation["prompts"] = proto.prompts.style
    frames: dict[str, Any] = {}
    if proto.fps is not None:
        frames["fps"] = proto.fps
    if proto.transform is not None:
        frames["transform"] = proto.transform.to_dict()
    targets: dict[str, Any] = {}
    for target, cfg in params.data.targets.items():
        change: dict[str, Any] = {}
        if proto.fold is not None and cfg.format == "multibypass140":
            change["fold"] = proto.fold
        if proto.ignore is not None:
            change["ignore"] = list(proto.ignore)
        if change:
            targets[target] = change
    changes: dict[str, Any] = {"eval": evaluation, "frames": frames}
    if targets:
        changes["data"] = {"targets": targets}
    return params.updated(changes)


def protocol_split(params: Params, dataset: str) -> str:
    """The split(s) protocol eval.protocol scores on `dataset` (by its format), else eval.split."""
    proto = get_protocol(params.eval.protocol)
    fmt = params.data.targets[dataset].format if dataset in params.data.targets else "generic"
    return proto.split.get(fmt, proto.split.get("default", params.eval.split))


def protocol_record(
    params: Params,
    settings: EvalSettings,
    dataset: str,
    transform: Any | None = None,
    split: str | None = None,
) -> dict[str, Any]:
    """What a metrics file says of its protocol: name, version, title, source, the resolved settings,
    their hash (the first 12 hex digits of their canonical JSON's SHA-256), and how they applied to
    `dataset` (split, fold, ignored classes).

    The hash covers the settings actually used (a --prompts given beside --protocol changes it) and
    nothing about the model or a dataset: equal hashes mean numbers scored the same way. `transform`
    (a FrameTransform) is the one used where it is not params' (a released model's own); `split` the
    split scored where it is not the protocol's (the hash then names it for the dataset's format).
    """
    proto = get_protocol(settings.protocol)
    resolved = {
        "split": {**proto.split, "default": proto.split.get("default", settings.split)},
        "fold": proto.fold,
        "fps": params.frames.fps,
        "window": settings.window.to_dict(),
        "transform": (transform or params.frames.transform).to_dict(),
        "normalise": settings.normalise,
        "prompts": {"style": settings.prompts, "file": settings.prompt_file,
                    "supplied": proto.prompts.supplied if proto.prompts else "ours"},
        "ignore": list(proto.ignore) if proto.ignore is not None else None,
        "metric": proto.metric,
    }
    target = params.data.targets.get(dataset)
    split = split or protocol_split(params, dataset)
    if split != protocol_split(params, dataset):
        resolved["split"][target.format if target is not None else "generic"] = split
    digest = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:12]
    applied = {
        "split": split,
        "fold": target.fold if target is not None and target.format == "multibypass140"
        and target.splits == "official" else None,
    }
    return {"name": settings.protocol, "version": proto.version, "hash": digest, "title": proto.title,
            "source": proto.source, "settings": resolved, "applied": applied}


@dataclass(frozen=True)
class ResolvedProtocol:
    """A named protocol applied once to a study's params: what evaluation reads its settings from.

    `params` carry the protocol's settings in eval, frames and the targets; `splits` name a split per
    dataset where one was chosen over the protocol's (`--split`, a sweep's one-choice row).
    """

    params: Params
    splits: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.params.eval.protocol

    @property
    def definition(self) -> Protocol:
        return get_protocol(self.name)

    def split(self, dataset: str) -> str:
        """The split(s) scored on `dataset`: the one chosen, else the protocol's (by format) or eval.split."""
        return self.splits.get(dataset) or protocol_split(self.params, dataset)

    def transform(self, own: Any | None) -> Any:
        """The frames' transform (a FrameTransform): the protocol's, else the model's own, else params'."""
        if own is not None and self.definition.transform is None:
            return own
        return frames_transform(self.params.frames.transform)

    def record(self, settings: EvalSettings, dataset: str, transform: Any) -> dict[str, Any]:
        """What a metrics file says of the protocol for `dataset` (protocol_record)."""
        return protocol_record(self.params, settings, dataset, transform, self.split(dataset))


def resolve_protocol(
    params: Params,
    name: str | None = None,
    split: str | Mapping[str, str] | None = None,
    own_window: WindowSettings | None = None,
) -> ResolvedProtocol:
    """Protocol `name` (default: eval.protocol) applied to `params`; `split` (one for every dataset, or one
    per dataset) replaces the protocol's.

    `own_window` is a temporal model's authors' window: under the study protocol it is scored with it, as the
    SurgVLP family is with its authors' frame transform; a protocol or a params file that sets a window
    keeps it.
    """
    applied = apply_protocol(params, name)
    if own_window is not None and applied.eval.protocol == STUDY_PROTOCOL and applied.eval.window.frames == 1:
        applied = applied.updated({"eval": {"window": own_window.to_dict()}})
    if isinstance(split, str):
        split = {dataset: split for dataset in applied.data.targets}
    return ResolvedProtocol(applied, dict(split or {}))


def protocol_label(record: dict[str, Any]) -> str:
    """`surgclip v1 (3f2a...)`: how tables and logs name a protocol."""
    return f"{record['name']} v{record['version']} ({record['hash']})"


def describe(name: str, params: Params) -> dict[str, Any]:
    """The protocol's settings as they resolve against `params`, per target dataset (`hecvl protocols`)."""
    applied = apply_protocol(params, name)
    out = {}
    for dataset in applied.data.targets:
        out[dataset] = protocol_record(applied, applied.eval, dataset)
    return out


__all__ = [
    "PROTOCOL_FILE",
    "STUDY_PROTOCOL",
    "Protocol",
    "ResolvedProtocol",
    "apply_protocol",
    "describe",
    "get_protocol",
    "protocol_label",
    "protocol_record",
    "protocol_split",
    "protocols",
    "resolve_protocol",
]
