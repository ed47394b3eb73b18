"""Execute every tutorial notebook top to bottom in its small setting (GROOVE_TUTORIAL_FAST=1).

A notebook may list the data files it needs in its metadata
(``metadata["groove_sc"]["requires_data"]``); it is skipped, naming them, when they are not
found (see :mod:`groove_sc.datasets`).
"""

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "tutorials").glob("*.ipynb"))
TIMEOUT = 600  # seconds per cell and per notebook


def _missing_data(nb) -> list[str]:
    from groove_sc.datasets._real import _find_file

    missing = []
    for name in nb.metadata.get("groove_sc", {}).get("requires_data", []):
        try:
            _find_file(name, None)
        except FileNotFoundError:
            missing.append(name)
    return missing


def test_tutorials_are_found():
    assert NOTEBOOKS, f"no notebook in {ROOT / 'tutorials'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_runs(path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    missing = _missing_data(nb)
    if missing:
        pytest.skip(f"data files not found: {missing} (set GROOVE_SC_DATA)")
    monkeypatch.setenv("GROOVE_TUTORIAL_FAST", "1")
    client = nbclient.NotebookClient(
        nb,
        timeout=TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()  # per-cell timeout; a failing cell raises CellExecutionError
    elapsed = time.perf_counter() - start  # and the whole notebook within TIMEOUT
    assert elapsed < TIMEOUT, f"{path.name} took {elapsed:.0f} s (limit {TIMEOUT} s)"
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
    # no warning from a library: what reaches the reader is about their data (raised by
    # groove_sc at the notebook's own line, e.g. labels measured in one modality only)
    stderr = "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("name") == "stderr"
    )
    library = [ln for ln in stderr.splitlines() if "site-packages" in ln and "Warning" in ln]
    assert not library, "\n".join(library)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_needs_no_warning_filters(path):
    """Silencing is the package's job: no notebook filters warnings or loggers globally."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            assert not line.startswith(("warnings.filterwarnings", "warnings.simplefilter")), line
            assert ".setLevel(" not in line and not line.startswith("md.set_options"), line
