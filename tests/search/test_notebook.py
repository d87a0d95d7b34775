"""examples/tour.ipynb runs from top to bottom and shows what it says it shows."""
from __future__ import annotations

import re

import pytest

from sweep_helpers import REPO

NOTEBOOK = REPO / "examples" / "tour.ipynb"


def _text(cell: dict) -> str:
    """A code cell's printed text and plain-text results, joined."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def _cell(notebook: dict, source_start: str) -> dict:
    return next(c for c in notebook.cells
                if c.cell_type == "code" and c.source.startswith(source_start))


def test_the_committed_notebook_has_no_outputs():
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_the_tour_notebook_runs_and_shows_trials_a_test_score_and_a_plot(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("TRADETUNE_STORAGE", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("TRADETUNE_RESULTS", str(tmp_path / "unused"))  # the notebook sets its own
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernelspec "python3" is ipykernel's, installed in this environment; jupyter_client
    # starts it with this interpreter (sys.executable), so the notebook sees this TradeTune.
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    launched = _text(_cell(notebook, "result = api.launch("))
    assert "launched study 'tour'" in launched and "sweep finished: 2 complete" in launched
    assert "reason='completed'" in launched  # the SweepResult, as the cell's value

    table = _cell(notebook, "import pandas as pd")["outputs"][0]["data"]["text/html"]
    assert table.count("<tr>") >= 2  # header and at least one trial

    scored = _text(_cell(notebook, "test = study.evaluate("))
    assert re.search(r"trial \d+ on the test split: sharpe -?\d+\.\d{3}, P&L", scored), scored

    plot = _cell(notebook, "import matplotlib.pyplot as plt")["outputs"]
    assert any("image/png" in output.get("data", {}) for output in plot)
    assert not (tmp_path / "unused").exists()
