import warnings

import mudata
import pytest

mudata.set_options(pull_on_update=False)
warnings.filterwarnings("ignore", message=".*pull_on_update.*")


@pytest.fixture(scope="session")
def quiet_trainer():
    """Trainer keyword arguments that keep test output readable."""
    return {"enable_progress_bar": False, "enable_model_summary": False, "logger": None}
