"""notebooks/results.ipynb runs top to bottom on a results tree, with the project's venv as its kernel."""

from __future__ import annotations

import sys

import nbformat
import pytest
from nbclient import NotebookClient
from paper_helpers import ROOT, shared_tree

NOTEBOOK = ROOT / "notebooks" / "results.ipynb"

pytestmark = pytest.mark.slow  # a Jupyter kernel runs the notebook on a built results tree


def test_results_notebook_executes(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    root, study = shared_tree(tmp_path_factory)
    monkeypatch.setenv("HECVL_RESULTS", str(root / "results"))
    monkeypatch.setenv("HECVL_TRACKING", "off")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # kernel "python3" with argv "python": jupyter_client runs it with sys.executable, this venv's python
    client = NotebookClient(
        nb, kernel_name="python3", timeout=240, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert f"python {sys.executable}" in text
    assert f"results {(root / 'results').resolve()}" in text
    assert f"study {study.name}" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6  # the five figures and the timeline drawn in the notebook
    html = "".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert "CalotTriangleDissection" in html  # the per-phase F1 table of the first dataset
