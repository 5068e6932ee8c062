"""Every notebook runs top to bottom against the current library, on small data, and its plots render.

Not marked slow on purpose: ``make test`` executes the notebooks. The environment variables below
make them small (the committed outputs come from their default sizes).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
SMALL = {"ICPKIT_NOTEBOOK_ACCOUNTS": "800", "ICPKIT_NOTEBOOK_TRIALS": "2"}


def _outputs(cell: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return cell.get("outputs", []) if cell.cell_type == "code" else []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_and_renders_its_plots(path: Path, tmp_path: Path, monkeypatch) -> None:
    for key, value in SMALL.items():
        monkeypatch.setenv(key, value)  # the kernel inherits the environment
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [o for c in nb.cells for o in _outputs(c) if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    # Cells tagged "figure" draw a plot that exists whatever the data size; each must render as an image.
    plotting = [c for c in nb.cells if c.cell_type == "code" and "figure" in c.metadata.get("tags", [])]
    assert plotting, f"{path.name} has no cell tagged 'figure'"
    for cell in plotting:
        assert any("image/png" in o.get("data", {}) for o in _outputs(cell)), f"no image rendered by:\n{cell.source}"


def test_there_are_notebooks_committed_with_their_outputs() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"01_quickstart.ipynb", "02_explore_icp.ipynb"}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), f"{path.name}: a cell was not executed"
        assert any("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", [])), path.name
