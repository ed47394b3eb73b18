import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import groove_sc as gs


class _FakeModel:
    def __init__(self, n=7):
        epochs = pd.Index(np.arange(n), name="epoch")
        self.history = {
            "loss_train": pd.DataFrame({"loss_train": np.linspace(3, 1, n)}, index=epochs),
            "loss_validation": pd.DataFrame(
                {"loss_validation": np.linspace(3.2, 1.2, n)}, index=epochs
            ),
            "groupclip_train": pd.DataFrame(
                {"groupclip_train": np.linspace(2, 0.5, n)}, index=epochs
            ),
        }


def test_history_draws_one_panel_per_term_with_train_and_validation():
    axes = gs.pl.history(_FakeModel(), show=False)
    assert [a.get_title() for a in axes] == ["loss", "groupclip"]
    assert len(axes[0].get_lines()) == 2 and len(axes[1].get_lines()) == 1
    np.testing.assert_allclose(axes[0].get_lines()[0].get_ydata(), np.linspace(3, 1, 7))
    assert axes[0].get_xlabel() == "epoch"
    plt.close("all")


def test_history_into_given_axes_and_return_fig():
    fig, ax = plt.subplots()
    out = gs.pl.history(_FakeModel(), terms=["groupclip"], ax=ax, return_fig=True, show=False)
    assert out is fig
    assert ax.get_title() == "groupclip"
    with pytest.raises(KeyError, match="terms"):
        gs.pl.history(_FakeModel(), terms=["kl"], show=False)
    plt.close("all")


def test_label_transfer_panel_shows_the_gap_and_chance():
    model = _FakeModel()
    epochs = pd.Index(np.arange(7), name="epoch")
    model.history["label_transfer_train"] = pd.DataFrame(
        {"label_transfer_train": np.linspace(0.2, 0.9, 7)}, index=epochs
    )
    model.history["label_transfer_validation"] = pd.DataFrame(
        {"label_transfer_validation": np.linspace(0.2, 0.3, 7)}, index=epochs
    )
    model.label_transfer_chance_ = 0.125
    (ax,) = gs.pl.history(model, terms=["label_transfer"], show=False)
    assert ax.get_ylabel() == "accuracy"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"train", "validation", "chance"}
    np.testing.assert_allclose(lines["chance"].get_ydata(), [0.125, 0.125])
    np.testing.assert_allclose(
        lines["train"].get_ydata()[-1] - lines["validation"].get_ydata()[-1], 0.6
    )
    plt.close("all")
