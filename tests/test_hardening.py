"""The bad-input matrix (issue 6): its cases live beside the code they test.

Each case either works (and its result is checked) or raises an error whose message names the
argument and what was expected; a failing call never changes the user's MuData. The cases are
ordinary tests marked ``bad_input`` (``tests._shared.bad_input``), in the test module of the code
they call: ``tests/data/test_validate.py`` (``setup_mudata``), ``tests/model/test_model.py``,
``tests/tl/test_align.py``, ``test_impute.py``, ``test_latent.py``, ``test_metrics.py``,
``tests/data/test_split.py``, ``tests/datasets/test_simulate.py``,
``tests/benchmark/test_benchmark.py`` and ``tests/test_cli.py``. ``pytest -m bad_input`` runs
them all; the helpers (``fails``, ``snapshot``, ``make_toy_mdata``) are in ``tests/_shared.py``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _bad_input_cases() -> list[str]:
    """The test functions marked ``bad_input`` in every test module of the suite."""
    cases = []
    for path in sorted(TESTS.rglob("test_*.py")):
        name = ".".join(("tests", *path.relative_to(TESTS).with_suffix("").parts))
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            marks = getattr(obj, "pytestmark", [])
            if attr.startswith("test_") and any(m.name == "bad_input" for m in marks):
                cases.append(f"{name}::{attr}")
    return cases


def test_matrix_has_at_least_40_cases():
    assert len(_bad_input_cases()) >= 40
