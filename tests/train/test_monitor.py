"""Cross-modal label transfer of held-out cells, logged while GROOVE trains."""

import mudata as md
import numpy as np
import pytest
import torch

import groove_sc as gs
from groove_sc.model import GROOVE
from groove_sc.train import chance_label_transfer, knn_label_transfer


def test_knn_label_transfer_matches_the_numpy_metric():
    rng = np.random.default_rng(0)
    zq, zr = rng.normal(size=(300, 5)), rng.normal(size=(400, 5))
    lq, lr = rng.integers(0, 6, 300), rng.integers(0, 6, 400)
    zr[:, 0] += lr  # some structure so that the votes are not all ties
    zq[:, 0] += lq
    for k in (1, 7, 15):
        correct, n = knn_label_transfer(
            torch.as_tensor(zq),
            torch.as_tensor(lq),
            torch.as_tensor(zr),
            torch.as_tensor(lr),
            n_neighbors=k,
        )
        expected = gs.tl.label_transfer_accuracy(zr, lr, zq, lq, n_neighbors=k)
        assert n == 300
        assert correct / n == pytest.approx(expected, abs=1e-12)


def test_knn_label_transfer_skips_labels_absent_from_the_reference():
    zq = torch.tensor([[0.0], [10.0], [20.0]])
    zr = torch.tensor([[0.1], [10.1]])
    correct, n = knn_label_transfer(
        zq, torch.tensor([0, 1, 2]), zr, torch.tensor([0, 1]), n_neighbors=1
    )
    assert (correct, n) == (2, 2)  # label 2 cannot be transferred: not scored


def test_chance_label_transfer_of_balanced_labels_is_one_over_the_labels():
    labels = np.repeat(np.arange(8), 50)
    chance = chance_label_transfer(labels, labels, n_neighbors=1, n_draws=20000)
    assert chance == pytest.approx(1 / 8, abs=0.01)
    # with unbalanced references the plurality of 15 votes favours the majority label
    ref = np.concatenate([np.zeros(300, int), np.repeat(np.arange(1, 8), 15)])
    assert chance_label_transfer(np.zeros(10, int), ref) > 0.9


@pytest.fixture(scope="module")
def small_noisy(quiet_trainer):
    """Few cells, labels with no shared signal: a model can only memorise them."""
    mdata = gs.datasets.simulate(
        n_perturbations=8, cells_per_perturbation=60, effect_size=0.0, seed=1
    )
    train, test = gs.data.split_weakly_paired(mdata, "perturbation", seed=1)
    GROOVE.setup_mudata(train, perturbation_key="perturbation")
    model = GROOVE(train, n_hidden=256, dropout_rate=0.0)
    model.train(max_epochs=150, validation_size=0.2, early_stopping=False, **quiet_trainer)
    return model, test


def test_history_logs_validation_and_train_label_transfer(small_noisy):
    model, _ = small_noisy
    hist = model.history
    for key in ("label_transfer_validation", "label_transfer_train"):
        assert key in hist
        values = hist[key].to_numpy(dtype=float).ravel()
        assert len(values) == 150
        assert np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()
    assert 0.1 < model.label_transfer_chance_ < 0.15  # 8 balanced labels


def test_memorisation_shows_as_a_train_validation_gap(small_noisy):
    model, _ = small_noisy
    train = model.history["label_transfer_train"].to_numpy(dtype=float).ravel()
    val = model.history["label_transfer_validation"].to_numpy(dtype=float).ravel()
    assert train[-10:].mean() > 0.6  # the training cells are told apart ...
    assert val[-10:].mean() < 0.3  # ... held-out cells are near chance (0.125)


def test_label_transfer_off_and_unknown_monitor(quiet_trainer):
    mdata = _all_cells(gs.datasets.simulate(n_perturbations=4, cells_per_perturbation=30, seed=0))
    GROOVE.setup_mudata(mdata, perturbation_key="perturbation")
    model = GROOVE(mdata)
    model.train(max_epochs=2, label_transfer_cells=0, **quiet_trainer)
    assert "label_transfer_validation" not in model.history
    with pytest.raises(ValueError, match=r"early_stopping_monitor.*label_transfer_validation"):
        model.train(max_epochs=2, early_stopping=True, early_stopping_monitor="nope")
    with pytest.raises(ValueError, match="label_transfer_cells"):
        model.train(max_epochs=2, label_transfer_cells=-1)


def test_early_stopping_on_label_transfer_maximises_it(quiet_trainer):
    mdata = _all_cells(gs.datasets.simulate(n_perturbations=4, cells_per_perturbation=30, seed=0))
    GROOVE.setup_mudata(mdata, perturbation_key="perturbation")
    model = GROOVE(mdata)
    stops = []

    class Spy(gs.train.GrooveTrainingPlan):
        def on_fit_start(self):
            super().on_fit_start()
            stops.extend(
                (c.monitor, c.mode) for c in self.trainer.callbacks if hasattr(c, "monitor")
            )

    model._training_plan_cls = Spy
    model.train(
        max_epochs=3,
        early_stopping=True,
        early_stopping_monitor="label_transfer_validation",
        **quiet_trainer,
    )
    assert ("label_transfer_validation", "max") in stops


def _all_cells(mdata):
    """Train on every simulated cell: the modalities' obs_names made distinct (prefixed)."""
    mods = {}
    for m, adata in mdata.mod.items():
        adata = adata.copy()
        adata.obs_names = m + ":" + adata.obs_names
        mods[m] = adata
    return md.MuData(mods)
