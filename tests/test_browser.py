"""What a user sees, in a real headless Chromium: the smoke study's MLflow runs page and Snakemake report.

Both read conftest's `study` (the smoke preset, run once per session). Chromium is Debian's package;
where it is missing, tools/install-chromium.sh installs it, and where that cannot (no root,
no apt) the tests skip saying why. The browser is driven over its DevTools pipe (browser_helpers.py).

Screenshots of what the browser showed are kept in results/test-artifacts/browser/ (gitignored,
overwritten by each run): mlflow-runs.png, the runs page as it opens; report.png, the report's first
page; report-<figure>.png, each figure as the report shows it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from browser_helpers import Browser, install_chromium
from study_helpers import BIN, ROOT, mlflow_api, mlflow_server, run

from hecvl import layout
from hecvl.tracking import runs_url

ARTIFACTS = ROOT / "results" / "test-artifacts" / "browser"
UI_PAGE_SIZE = 100  # runs the MLflow UI lists before its "load more"

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

# The runs table's rows, top to bottom: name, accuracy and F1 as the cells show them (ag-grid splits a
# row between its pinned and scrolling parts; both carry the row's index).
ROWS_JS = r"""(() => {
  const rows = {};
  for (const r of document.querySelectorAll('.ag-row[row-index]')) {
    const row = rows[r.getAttribute('row-index')] ??= {};
    const link = r.querySelector('[col-id="attributes.`Run Name`"] a[href*="/runs/"]');
    if (link) row.name = link.innerText.trim();
    for (const m of ['accuracy', 'f1']) {
      const cell = r.querySelector('[col-id="metrics.`' + m + '`"] .ag-cell-value');
      if (cell) row[m] = cell.innerText.trim();
    }
  }
  return Object.keys(rows).map(Number).sort((a, b) => a - b).map(i => rows[i]);
})()"""


@pytest.fixture(scope="session")
def chromium() -> str:
    path, why = install_chromium()
    if path is None:
        pytest.skip(f"no Chromium to run the browser tests: {why}")
    return path


def test_browser_mlflow_runs_page_lists_the_study_runs(study: Path, chromium: str):
    """The address `snakemake` prints opens the runs table (not the GenAI overview) with every run by name,
    best accuracy first, accuracy and F1 as columns."""
    with mlflow_server(study) as base:
        exp = mlflow_api(base, "experiments/get-by-name?experiment_name=hecvl-synthetic")["experiment"]
        exp_id = exp["experiment_id"]
        tags = {t["key"]: t["value"] for t in exp["tags"]}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        runs = mlflow_api(base, "runs/search", {"experiment_ids": [exp_id], "max_results": 1000})["runs"]
        names = sorted(r["info"]["run_name"] for r in runs)
        accuracy = {r["info"]["run_name"]: m["value"] for r in runs
                    for m in r["data"].get("metrics", []) if m["key"] == "accuracy"}
        assert 0 < len(runs) <= UI_PAGE_SIZE and len(set(names)) == len(names), names
        assert any(n.startswith("evaluate/") for n in accuracy), "no evaluation run logs `accuracy`"

        with Browser(chromium, width=1600, height=1000) as page:
            page.goto(runs_url(exp_id, base))
            page.wait_for(f"document.querySelectorAll('.ag-row[row-index]').length >= {min(len(runs), 10)}",
                          "the runs table's rows", timeout=180)
            text = page.text()
            page.screenshot(ARTIFACTS / "mlflow-runs.png")
            assert "/runs" in page.evaluate("location.hash")
            # the runs table, not the GenAI overview (its traces count and "Detect Issues")
            assert "matching runs" in text and "Detect Issues" not in text, text[:1500]
            page.resize(1600, 600 + 40 * len(runs))  # every row in view: the table renders only those
            rows = page.wait_for(f"(() => {{ const r = {ROWS_JS}; return r.length >= {len(runs)} && r; }})()",
                                 f"all {len(runs)} runs listed", timeout=60)

    assert sorted(r.get("name") for r in rows) == names  # every run, each under its own name
    scored = [r for r in rows if r.get("accuracy", "-") != "-"]
    assert rows[: len(scored)] == scored and {r["name"] for r in scored} == set(accuracy)
    values = [float(r["accuracy"]) for r in scored]
    assert values == sorted(values, reverse=True)  # best first
    for row in scored:  # the logged value, with F1 beside it
        assert float(row["accuracy"]) == pytest.approx(accuracy[row["name"]], abs=1e-4), row
        assert row.get("f1", "-") != "-", row


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def test_browser_report_shows_every_figure(study: Path, chromium: str):
    """`snakemake --report` (as `make study` runs it) shows every figure the workflow reports, each loaded
    at its full size when the user opens it from the report's menu."""
    run([str(BIN / "snakemake"), "--report", "results/paper/report.html"], study)
    report = study / "results" / "paper" / "report.html"
    # the default target's figures: the report leaves out those of on-demand targets (the narration-noise
    # and protocol sweeps), whether or not test_workflow.py ran them on this study first
    expected = {*layout.PAPER_FIGURES, f"{layout.PAIRS}/stats.png"}
    menu_ready = "document.querySelector('nav')?.innerText.includes('RESULTS')"

    with Browser(chromium, width=1600, height=1000) as page:
        page.goto(report.as_uri())
        page.wait_for(menu_ready, "the report's menu", timeout=60)
        page.screenshot(ARTIFACTS / "report.png")
        categories = page.evaluate("categories")
        images = page.evaluate(
            "Object.keys(results).filter(p => results[p].mime_type.startsWith('image/'))")
        assert set(images) == expected
        shown = {}
        for category, subcategories in categories.items():
            figures = [p for paths in subcategories.values() for p in paths if p in expected]
            for path in figures:
                page.goto(report.as_uri())  # from the start, as a reader would: menu, category, eye button
                page.wait_for(menu_ready, "the report's menu", timeout=60)
                clicked = page.evaluate(f"""(() => {{
                    const link = [...document.querySelectorAll('nav a')]
                        .find(a => a.innerText.trim() === {json.dumps(category)});
                    if (!link) return false;
                    link.click();
                    return true;
                }})()""")
                assert clicked, f"no menu entry {category!r}"
                page.wait_for(f"""(() => {{
                    const row = [...document.querySelectorAll('nav tr')]
                        .find(tr => tr.cells[0] && tr.cells[0].innerText.trim() === {json.dumps(path)});
                    const eye = row && row.querySelector('a[iconname="eye"]');
                    if (eye) eye.click();
                    return Boolean(eye);
                }})()""", f"{path} in the {category} list", timeout=30)
                shown[path] = page.wait_for(f"""(() => {{
                    const img = [...document.images].find(
                        i => !i.closest('nav') && i.src === results[{json.dumps(path)}].data_uri);
                    return img && img.complete && img.naturalWidth > 0 &&
                        [img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width];
                }})()""", f"{path} displayed", timeout=30)
                page.screenshot(ARTIFACTS / f"report-{Path(path).stem}.png")

    assert set(shown) == expected
    for path, (width, height, on_screen) in shown.items():
        assert (width, height) == _png_size(study / path), path  # the figure itself, decoded whole
        assert on_screen > 100, f"{path} is {on_screen} px wide on the page"
