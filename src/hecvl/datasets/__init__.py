"""Data formats: the target datasets' published labels and splits, and the lecture corpus.

- `read_labels(fmt, path)` -> the 1 fps label table `video, frame_sec, phase_id, phase_name`;
- `CLASSES[fmt]` -> class names in id order; `TargetDataset.from_params(name, params)`;
- `load_lecture(dir)` / `iter_lectures(root)` -> `Lecture`; `validate_corpus(root)` -> [`Problem`].
"""

from hecvl.datasets.classes import CLASSES, FORMATS
from hecvl.datasets.corpus import Lecture, iter_lectures, load_lecture
from hecvl.datasets.labels import LABEL_COLUMNS, load_label_table, read_labels, read_tools
from hecvl.datasets.registry import TargetDataset
from hecvl.datasets.validate import Problem, validate_corpus

__all__ = [
    "CLASSES",
    "FORMATS",
    "LABEL_COLUMNS",
    "Lecture",
    "Problem",
    "TargetDataset",
    "iter_lectures",
    "load_label_table",
    "load_lecture",
    "read_labels",
    "read_tools",
    "validate_corpus",
]
