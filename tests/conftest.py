import warnings

import mudata
import pytest
import torch

from _shared import QUIET

mudata.set_options(pull_on_update=False)
warnings.filterwarnings("ignore", message=".*pull_on_update.*")
# The models in the tests are small: one thread is as fast as two and, unlike two, does not
# collapse when other processes share the cores (OpenMP spin-waiting).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def quiet_trainer():
    """Trainer keyword arguments that keep test output readable."""
    return dict(QUIET)


#: Test modules whose every test is slow: a whole benchmark configuration, the tutorials.
SLOW_MODULES = {"test_benchmark_cli.py", "test_tutorials.py"}


def pytest_collection_modifyitems(config, items):
    """Mark the slow modules ``slow`` and the tests that start a dask cluster ``dask``.

    ``pytest -m "not slow"`` is the fast subset; ``pytest -m "not dask"`` skips the local
    clusters (the markers are registered in ``pyproject.toml``).
    """
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if "dask_client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.dask)
