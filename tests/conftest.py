import warnings

import mudata
import pytest
import torch

mudata.set_options(pull_on_update=False)
warnings.filterwarnings("ignore", message=".*pull_on_update.*")
# The models in the tests are small: one thread is as fast as two and, unlike two, does not
# collapse when other processes share the cores (OpenMP spin-waiting).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def quiet_trainer():
    """Trainer keyword arguments that keep test output readable."""
    return {"enable_progress_bar": False, "enable_model_summary": False, "logger": None}
