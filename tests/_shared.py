"""Settings shared by the test modules (the fixtures live in ``conftest.py``)."""

#: Trainer keyword arguments that keep test output readable.
QUIET = {"enable_progress_bar": False, "enable_model_summary": False, "logger": None}
#: A small GROOVE: fast to fit, enough to test behaviour.
MODEL = {"n_latent": 4, "n_hidden": 16, "n_layers": 1}
#: Training keyword arguments of the small model (epochs set by each test).
TRAIN = {"batch_size": 32, "cells_per_label": 4, **QUIET}
