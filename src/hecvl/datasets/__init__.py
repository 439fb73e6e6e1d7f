"""The target datasets: their published labels and splits (the lecture corpus is `hecvl.corpora`).

- `read_labels(fmt, path)` -> the 1 fps label table `video, frame_sec, phase_id, phase_name`;
- `CLASSES[fmt]` -> class names in id order; `TargetDataset.from_params(name, params)`.
"""

from hecvl.datasets.classes import CLASSES, LABEL_FORMATS
from hecvl.datasets.labels import LABEL_COLUMNS, load_label_table, read_labels, read_tools
from hecvl.datasets.registry import TargetDataset

__all__ = [
    "CLASSES",
    "LABEL_COLUMNS",
    "LABEL_FORMATS",
    "TargetDataset",
    "load_label_table",
    "read_labels",
    "read_tools",
]
