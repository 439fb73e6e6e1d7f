"""The confusion-matrix figure of an evaluation: row-normalised (recall per true phase), counts annotated.

Row-normalised because phases differ in length by an order of magnitude: raw counts would hide every
short phase. The counts stay readable in each cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hecvl.io import atomic_path


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], title: str, path: str | Path) -> Path:
    """Write the figure as PNG (atomically) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    k = len(class_names)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    size = 2.5 + 0.6 * k
    fig, ax = plt.subplots(figsize=(size + 1.5, size), dpi=100)
    try:
        im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(k), labels=list(class_names), rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), labels=list(class_names), fontsize=8)
        ax.set_xlabel("predicted phase")
        ax.set_ylabel("true phase")
        ax.set_title(title, fontsize=9)
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    colour = "white" if frac[i, j] > 0.5 else "black"
                    ax.text(
                        j,
                        i,
                        f"{frac[i, j]:.2f}\n{cm[i, j]}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color=colour,
                    )
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true phase's frames")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return Path(path)
