import warnings
from pathlib import Path

import mudata
import pytest
import torch

import groove_sc as gs
from tests._shared import QUIET, fit_toy, make_toy_mdata

mudata.set_options(pull_on_update=False)
warnings.filterwarnings("ignore", message=".*pull_on_update.*")
# The models in the tests are small: one thread is as fast as two and, unlike two, does not
# collapse when other processes share the cores (OpenMP spin-waiting).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def quiet_trainer():
    """Trainer keyword arguments that keep test output readable."""
    return dict(QUIET)


@pytest.fixture(scope="session")
def toy_model():
    """The small GROOVE fitted one epoch on ``make_toy_mdata()`` (the bad-input cases use it)."""
    return fit_toy(make_toy_mdata())


@pytest.fixture(scope="session")
def paired_test():
    """Jointly measured test data: the paired half of a small simulation (do not modify)."""
    sim = gs.datasets.simulate(
        n_perturbations=3, cells_per_perturbation=20, n_features=(8, 6), seed=0
    )
    _, test = gs.data.split_weakly_paired(sim, "perturbation", test_size=0.5, seed=0)
    return test


#: Test modules (paths below ``tests/``) whose every test is slow: a whole benchmark
#: configuration, the tutorials.
SLOW_MODULES = {"benchmark/test_cli.py", "test_tutorials.py"}
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Mark the slow modules ``slow`` and the tests that start a dask cluster ``dask``.

    ``pytest -m "not slow"`` is the fast subset; ``pytest -m "not dask"`` skips the local
    clusters (the markers are registered in ``pyproject.toml``).
    """
    for item in items:
        if item.path.resolve().relative_to(TESTS).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if "dask_client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.dask)
