"""`data:` where the lecture corpus and the target datasets live (`hecvl acquire`)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hecvl.config.base import Section, reason

TARGET_FORMATS: tuple[str, ...] = ("cholec80", "autolaparo", "multibypass140", "generic")
# The generic format's layout (README, "Evaluate a model on your dataset"): what a target leaves out.
GENERIC_DEFAULTS: dict[str, str] = {"videos": "videos/{video}.*", "labels": "labels", "splits": "splits.json"}
CENTRES: tuple[str, ...] = ("strasbourg", "bern")


class LectureVideoSettings(Section):
    """How the synthetic lectures are written (null: world.yaml's `lectures:` look, 160x90 at 4 fps), so the
    paper's path can be run on lectures at the resolution real ones have (1280x720, 25 fps, H.264)."""

    size: tuple[PositiveInt, PositiveInt] | None = reason(
        "H x W of the lecture videos, both even (null: world.yaml's [90, 160]; real lectures: [720, 1280])",
        None)
    fps: PositiveInt | None = reason("frame rate of the lecture videos (null: world.yaml's 4; real: 25)",
                                     None)
    render_fps: PositiveInt | None = reason(
        "distinct pictures drawn per second, each repeated fps/render_fps frames; must divide fps (null: the "
        "divisor of fps nearest world.yaml's 4, so drawing costs the same at any frame rate)", None)
    render_scale: PositiveInt | None = reason(
        "draw at 1/scale of the size and enlarge: drawing cost falls with its square (null: 1, drawn at full "
        "size; 4 draws a 720p lecture at world.yaml's 180x320 scale)", None)
    gop: Literal["world", "x264"] = reason(
        "key frames: world: every world.yaml gop_s seconds (cheap seeking); x264: libx264's default interval "
        "(250 frames, scene cuts), as real uploads are written", "world")
    duration_s: tuple[PositiveInt, PositiveInt] | None = reason(
        "[shortest, longest] lecture in seconds, drawn per lecture (null: the world preset's)", None)

    @field_validator("size")
    @classmethod
    def _even(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and (value[0] % 2 or value[1] % 2):
            raise ValueError(f"H and W must be even for H.264's yuv420p, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LectureVideoSettings:
        if self.render_fps is not None and self.fps is not None and self.fps % self.render_fps:
            raise ValueError(f"render_fps {self.render_fps} must divide fps {self.fps}")
        if self.duration_s is not None and self.duration_s[0] > self.duration_s[1]:
            raise ValueError(f"duration_s must be [shortest, longest], got {list(self.duration_s)}")
        return self

    def overrides(self) -> dict[str, Any] | None:
        """The settings given (nulls and the default gop left out), as the world records them; None when
        nothing is overridden, so the default world's manifest and bytes do not change."""
        given = {k: v for k, v in self.to_dict().items() if v is not None}
        if given.get("gop") == "world":
            del given["gop"]
        return given or None


class SyntheticSettings(Section):
    """The embedded synthetic world (`hecvl synth`), generated when data.source is synthetic."""

    preset: Literal["smoke", "default"] = reason("smoke: 3 short lectures for tests; default: the study",
                                                 "default")
    seed: int = 0
    scale: PositiveFloat = reason("multiplies the number of lectures (targets keep their size)", 1.0)
    narration_relevance: float = reason("fraction of narration sentences that describe what is visible",
                                        0.5, ge=0, le=1)
    lecture_video: LectureVideoSettings = reason(
        "the lectures' size, frame rate, drawing and key frames (all null: world.yaml's, the study's world)",
        default_factory=LectureVideoSettings)


# Defaults that depend on the format, resolved by TargetSettings._layout_default once the format is known.
_UNSET = "<format default>"
PUBLISHED_DEFAULTS: dict[str, str | None] = {"videos": "videos/{video}.mp4", "labels": None, "splits": None}


def _generic_schema(schema: dict[str, Any]) -> None:
    """In the schema as in validation, a generic target may leave out labels and splits."""
    for key, default in PUBLISHED_DEFAULTS.items():
        schema["properties"][key].pop("default", None)
        if default is not None:
            schema["properties"][key]["default"] = default
    schema["if"] = {"properties": {"format": {"not": {"const": "generic"}}}}
    schema["then"] = {"required": ["labels", "splits"]}


class TargetSettings(Section):
    """One target dataset in its published layout (docs/method.md §4); paths relative to `root`."""

    model_config = ConfigDict(**Section.model_config, json_schema_extra=_generic_schema)

    format: Literal["cholec80", "autolaparo", "multibypass140", "generic"]
    root: str = Field(min_length=1)
    videos: str = reason("video file pattern with {video}; a '.*' extension: any of .mp4 .mkv .webm .avi "
                         ".mov (generic default: videos/{video}.*)", _UNSET)
    labels: str = reason("folder of the label files (generic default: labels)", _UNSET)
    splits: str = reason('a JSON {split: [video ids]} inside root, or "official" (generic default: '
                         'splits.json)', _UNSET)
    centre: Literal["strasbourg", "bern"] | None = reason("MultiBypass140 only: which hospital", None)
    fold: NonNegativeInt = reason("MultiBypass140 official split fold", 0)
    split_pickles: str = reason("MultiBypass140 official split pickles", "labels/{centre}/labels_by70_splits")
    tables: str = reason("MultiBypass140 class tables (phase.csv)", "tables")
    ignore: tuple[str, ...] | None = reason(
        "classes left out of the protocol (their frames unscored, never predicted); null = the published "
        "protocol's: MultiBypass140 drops other_intervention, generic the ignore list of its classes.yaml, "
        "the others none", None)

    @field_validator("videos", "labels", "splits", mode="before")
    @classmethod
    def _layout_default(cls, value: Any, info: ValidationInfo) -> Any:
        """A generic dataset folder needs only its format and root (the rest is its layout); the published
        layouts need labels and splits."""
        if value != _UNSET:
            return value
        name = str(info.field_name)
        default = GENERIC_DEFAULTS[name] if info.data.get("format") == "generic" else PUBLISHED_DEFAULTS[name]
        if default is None:
            raise PydanticCustomError("missing", "Field required")
        return default

    @model_validator(mode="after")
    def _consistent(self) -> TargetSettings:
        if "{video}" not in self.videos:
            raise ValueError(f"videos must contain '{{video}}', got {self.videos!r}")
        if self.format == "generic" and self.splits == "official":
            raise ValueError("a generic dataset has no official split: give its splits JSON file")
        if self.centre is not None and self.format != "multibypass140":
            raise ValueError(f"centre is for the multibypass140 format, not {self.format}")
        return self


# yt-dlp's format selector for a lecture video: mp4 video (with m4a audio) at most `{h}` pixels high, else the
# best single mp4 file, else any single file (remuxed to mp4). `<=?` keeps formats whose height is unknown
# (direct links). Fixed here, not a setting, so every corpus is fetched the same way (README).
DOWNLOAD_FORMAT = "bv*[ext=mp4][height<=?{h}]+ba[ext=m4a]/b[ext=mp4][height<=?{h}]/b[height<=?{h}]"


class DownloadSettings(Section):
    """How `hecvl corpus download` fetches the lecture videos named in each meta.json (yt-dlp)."""

    max_height: PositiveInt = reason("the tallest video fetched (pixels); the paper's frames are 360 high",
                                     720)
    retries: NonNegativeInt = reason(
        "yt-dlp retries of a failed or dropped transfer (resumed, not restarted)", 3)
    rate_limit: str | None = reason(
        "bytes per second, e.g. 2M or 500K (null: unlimited): be kind to the host", None)
    sleep: NonNegativeFloat = reason("seconds to wait between two videos' downloads", 0.0)
    duration_tolerance: NonNegativeFloat = reason(
        "seconds a downloaded video may differ from meta.json's expected_duration before the availability "
        "report calls it a mismatch (another upload, a trimmed copy)", 2.0)
    cookies: str | None = reason("YOUR cookies file (Netscape format) for videos that need a login; read by "
                                 "yt-dlp, never copied or recorded", None)
    strict: bool = reason("exit non-zero when any video could not be fetched (it is recorded either way)",
                          False)

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9]+(\.[0-9]+)?[KMGkmg]?", value):
            raise ValueError(f"must be bytes per second such as 2M, 500K or 100000, got {value!r}")
        return value


class SurgLaViImport(Section):
    """`hecvl corpus import surglavi` options; defaults: the authors' loader (docs/corpora.md §1.3)."""

    clip_level: str = reason("level name or id -> narration.csv (auto: the finest)", "auto", min_length=1)
    phase_level: str = reason("level name or id -> keysteps.csv (auto: the next coarser than the clip level; "
                              "none)", "auto", min_length=1)
    abstract: str = reason("abstract.txt from: coarsest (its captions joined in time order), description "
                           "(videos.description), none, or a level name or id", "coarsest", min_length=1)
    clip_text: Literal["raw_narration", "caption"] = reason(
        "raw_narration: the ASR text (HecVL's clip level); caption: the authors' rewritten caption",
        "raw_narration")
    phase_text: Literal["caption", "raw_narration"] = reason(
        "text of keysteps.csv and of an abstract built from a level", "caption")
    min_duration: NonNegativeFloat = reason("keep captions longer than this (s)", 0.0)
    max_duration: PositiveFloat = reason("keep captions at most this long (s)", 500.0)
    levels: tuple[str, ...] = reason("keep only these levels (names or ids; empty: all)", ())
    pair_filter: bool = reason("keep only captions flagged is_descriptive and is_surgical_content", True)
    normalise: bool = reason("normalise the texts as the authors' loader can (lower case, ...)", False)
    id_from: Literal["name", "video_id"] = reason("lecture folder names from videos.name or video_id", "name")


class SurgAtlasImport(Section):
    """`hecvl corpus import surgatlas` options (its schema is unpublished: the map says where fields are)."""

    map: str | None = reason("the YAML field map (null: the shipped default map, a documented guess)", None)
    keysteps: Literal["phases", "steps", "none"] = reason("which descriptions become keysteps.csv", "phases")


class CorpusSource(Section):
    """A public corpus imported into `data.corpus` by the DAG (README, 'Pretrain on a public corpus')."""

    importer: Literal["surglavi", "surgatlas"] = reason("which corpus's annotation files `file` holds")
    file: str = reason("SurgLaVi-β: surglavi_beta.db; SurgAtlas: its JSON annotation file or folder",
                       min_length=1)
    surglavi: SurgLaViImport = Field(default_factory=SurgLaViImport)
    surgatlas: SurgAtlasImport = Field(default_factory=SurgAtlasImport)


class DataSettings(Section):
    source: Literal["synthetic", "local"] = reason(
        "synthetic: generate the embedded world; local: use the paths below as given", "synthetic")
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)
    root: str = reason("the generated world (or your local copies)", "data/world")
    corpus: str = reason("lecture corpus: one folder per lecture (README, 'Lecture corpus format')",
                         "data/world/corpus")
    targets: dict[str, TargetSettings] = reason("target datasets for zero-shot evaluation, by name",
                                                default_factory=dict)
    corpus_source: CorpusSource | None = reason(
        "null: data.corpus is used as it is; else the public corpus imported into data.corpus and its videos "
        "downloaded there by the DAG", None)
    download: DownloadSettings = Field(default_factory=DownloadSettings)

    @model_validator(mode="after")
    def _public_corpus_outside_the_world(self) -> DataSettings:
        """The synthetic world is regenerated as a whole: an imported corpus inside it would be mixed in."""
        if self.corpus_source is not None and self.source == "synthetic":
            corpus, root = PurePosixPath(self.corpus), PurePosixPath(self.root)
            if corpus == root or root in corpus.parents:
                raise ValueError(f"corpus {self.corpus!r} is inside the synthetic world ({self.root!r}): "
                                 "import a public corpus elsewhere, e.g. data/public-corpus")
        return self
