"""Fixtures of the tests of ``groove_sc.pl``."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test left open."""
    yield
    plt.close("all")
