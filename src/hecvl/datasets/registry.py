"""Target datasets by name, as configured in params.yaml `data.targets.<name>`.

One object answers the questions every evaluation asks: which videos are in a split, where is a
video file, and what are its 1 fps labels. The labels are checked against the real video: Cholec80
labels are sampled at the video's probed frame rate (not an assumed 25), and labels that run past the
end of the video are trimmed within a one-second tolerance, else refused. A `generic` dataset (your own,
hecvl.datasets.generic) brings its classes, prompts and ignored classes in its `classes.yaml`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from hecvl.config import TargetSettings, coerce_params
from hecvl.datasets import generic
from hecvl.datasets.classes import CLASSES, PROTOCOL_IGNORED, multibypass_classes
from hecvl.datasets.labels import (
    empty_label_table,
    find_label_files,
    read_label_file,
    seconds_in_video,
    sort_label_table,
    trim_to_video,
)
from hecvl.datasets.splits import (
    check_splits,
    filter_centre,
    multibypass_official_splits,
    official_splits,
    read_splits_json,
)
from hecvl.errors import HecvlError
from hecvl.video import probe

log = logging.getLogger(__name__)

# Labels may overrun the video by this many seconds before it is an error (see labels.trim_to_video).
LABEL_OVERRUN_TOLERANCE_S = 1


@dataclass
class TargetDataset:
    """A zero-shot target dataset in its published layout (see the contracts' on-disk layouts).

    `splits` is a JSON file name inside `root` or "official" (Cholec80/AutoLaparo: the bundled
    official split; MultiBypass140: fold `fold` of the published split pickles under
    `root/<split_pickles>`). `centre` restricts MultiBypass140 to Strasbourg (SBP) or Bern (BBP).
    """

    name: str
    fmt: str
    root: Path
    videos: str
    labels_dir: Path
    splits_spec: str
    centre: str | None
    fold: int
    split_pickles: str
    tables: Path | None
    ignore_spec: tuple[str, ...] | None = None
    _split_cache: dict[str, list[str]] | None = field(default=None, repr=False)

    @classmethod
    def from_params(cls, name: str, params: Any) -> TargetDataset:
        """The dataset `name` of the configuration's `data.targets` (a `Params`, or a mapping validated)."""
        targets = coerce_params(params).data.targets
        if name not in targets:
            known = ", ".join(sorted(targets)) or "none"
            raise HecvlError(f"unknown target dataset {name!r} in data.targets (known: {known})")
        return cls.from_settings(name, targets[name])

    @classmethod
    def from_settings(cls, name: str, cfg: TargetSettings) -> TargetDataset:
        root = Path(cfg.root)
        return cls(
            name=name,
            fmt=cfg.format,
            root=root,
            videos=cfg.videos,
            labels_dir=root / cfg.labels,
            splits_spec=cfg.splits,
            centre=cfg.centre,
            fold=cfg.fold,
            split_pickles=cfg.split_pickles,
            tables=root / cfg.tables if cfg.format == "multibypass140" else None,
            ignore_spec=cfg.ignore,
        )

    @cached_property
    def class_table(self) -> generic.ClassTable | None:
        """A generic dataset's `classes.yaml` (classes, prompts, ignored classes); None for the others."""
        return generic.read_class_table(self.root / generic.CLASSES_FILE) if self.fmt == "generic" else None

    @cached_property
    def classes(self) -> list[str]:
        """Class names in id order (MultiBypass140: checked against `tables/phase.csv` when present)."""
        if self.class_table is not None:
            return list(self.class_table.classes)
        if self.fmt == "multibypass140":
            return multibypass_classes(self.tables if self.tables and self.tables.exists() else None)
        return list(CLASSES[self.fmt])

    @cached_property
    def ignored(self) -> list[int]:
        """Ids of the classes the protocol leaves out (`ignore`, default the published protocol's; generic:
        its classes.yaml's)."""
        names = self.ignore_spec
        if names is None:
            table = self.class_table
            names = table.ignore if table is not None else PROTOCOL_IGNORED.get(self.fmt, ())
        unknown = [n for n in names if n not in self.classes]
        if unknown:
            raise HecvlError(f"target {self.name}: ignore names unknown classes {unknown} "
                             f"(classes: {', '.join(self.classes)})")
        return sorted(self.classes.index(n) for n in names)

    @property
    def scored_classes(self) -> list[str]:
        """The protocol's class set: every class but the ignored ones."""
        return [c for i, c in enumerate(self.classes) if i not in self.ignored]

    def splits(self) -> dict[str, list[str]]:
        """All splits {name: [video ids]}, restricted to this dataset's centre."""
        if self._split_cache is None:
            if self.splits_spec == "official":
                if self.fmt == "multibypass140":
                    if self.centre is None:
                        raise HecvlError(f"target {self.name}: official MultiBypass140 splits need a centre")
                    folder = self.root / self.split_pickles.format(centre=self.centre)
                    table = multibypass_official_splits(folder, self.fold)
                else:
                    table = official_splits(self.fmt)
            else:
                table = read_splits_json(self.root / self.splits_spec)
            if self.fmt == "multibypass140":
                table = {k: filter_centre(v, self.centre) for k, v in table.items()}
            self._split_cache = check_splits(table, self.root / self.splits_spec)
        return self._split_cache

    def split(self, split: str) -> list[str]:
        """Video ids of a split, e.g. `ds.split("test")`, or of several joined by + (`val+test`), in order."""
        table = self.splits()
        ids: list[str] = []
        for name in split.split("+"):
            if name not in table:
                raise HecvlError(
                    f"target {self.name} has no split {name!r} (has: {', '.join(table)})",
                    self.root / self.splits_spec,
                )
            ids.extend(v for v in table[name] if v not in ids)
        return ids

    def video_path(self, video_id: str) -> Path:
        """Path of a video from the `videos` pattern (`videos/{video}.mp4`; `.*`: any video extension)."""
        return generic.resolve_video(self.root / self.videos.format(video=video_id))

    def label_files(self) -> dict[str, Path]:
        """{video id: label file} under the labels folder, restricted to this dataset's centre."""
        if self.fmt == "generic":
            return generic.label_files(self.labels_dir)
        files = find_label_files(self.fmt, self.labels_dir)
        keep = set(filter_centre(list(files), self.centre))
        return {v: p for v, p in files.items() if v in keep}

    def labels(self, split: str | None = None) -> pd.DataFrame:
        """The 1 fps label table of a split's videos (all labelled videos when `split` is None), without
        the seconds of ignored classes (the protocol does not score them)."""
        files = self.label_files()
        videos = self.split(split) if split is not None else list(files)
        missing = [v for v in videos if v not in files]
        if missing:
            raise HecvlError(
                f"no {self.fmt} label file for video(s) {', '.join(missing)} of split {split!r}",
                self.labels_dir,
            )
        parts = []
        for video in tqdm(videos, desc=f"labels {self.name}", unit="video", disable=None, leave=False):
            parts.append(self._video_labels(video, files[video]))
        table = sort_label_table(pd.concat(parts, ignore_index=True)) if parts else empty_label_table()
        if self.ignored:
            table = table[~table["phase_id"].isin(self.ignored)].reset_index(drop=True)
        return table

    def _video_labels(self, video: str, label_file: Path) -> pd.DataFrame:
        path = self.video_path(video)
        if not path.is_file():
            extra = "assuming 25 fps and " if self.fmt == "cholec80" else ""
            log.warning(
                "%s: video %s not found: %snot checking the labels against its length", self.name, path, extra
            )
            return self._read_label_file(label_file, None)
        info = probe(path)
        table = self._read_label_file(label_file, info.fps if self.fmt == "cholec80" else None)
        seconds = seconds_in_video(info.num_frames, info.fps)
        return trim_to_video(table, seconds, label_file, path, LABEL_OVERRUN_TOLERANCE_S)

    def _read_label_file(self, label_file: Path, fps: float | None) -> pd.DataFrame:
        if self.fmt == "generic":
            return generic.read_generic_labels(label_file, self.classes)
        return read_label_file(self.fmt, label_file, fps=fps, classes=self.classes)
