"""``tl.latent`` and ``tl.replicate_latents``: replicates on disjoint cells, the training cells."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import groove_sc as gs
from groove_sc.model import GROOVE
from tests._shared import bad_input, fails, make_toy_mdata


@pytest.fixture(scope="module")
def fitted(quiet_trainer):
    mdata = gs.datasets.simulate(n_perturbations=6, cells_per_perturbation=50, seed=0)
    train, test = gs.data.split_weakly_paired(mdata, "perturbation", seed=0)
    GROOVE.setup_mudata(train, perturbation_key="perturbation")
    model = GROOVE(train, n_latent=8, n_hidden=32, seed=3)
    model.train(max_epochs=8, **quiet_trainer)
    replicates = model.train_replicates(max_epochs=4)
    return model, replicates, train, test


def test_replicates_train_on_disjoint_cells_with_the_model_parameters(fitted):
    model, replicates, train, _ = fitted
    assert len(replicates) == 2
    for m in model.modalities:
        cells = [set(r.adata.mod[m].obs_names) for r in replicates]
        assert not cells[0] & cells[1]
        assert cells[0] | cells[1] == set(train.mod[m].obs_names)
    for k, rep in enumerate(replicates):
        assert rep.module.n_latent == 8
        assert rep.init_params_["non_kwargs"]["seed"] == 3 + k + 1
        assert len(rep.history["loss_train"]) <= 4  # the override of max_epochs
        assert rep.train_kwargs_["batch_size"] == model.train_kwargs_["batch_size"]
    z0 = replicates[0].get_latent_representation(train)
    z1 = replicates[1].get_latent_representation(train)
    assert not np.allclose(z0["rna"], z1["rna"])


def test_replicate_latents_are_written_and_recorded(fitted):
    model, replicates, _, test = fitted
    test = test.copy()
    gs.tl.replicate_latents(replicates, test)
    for m in model.modalities:
        for k in range(2):
            assert test.mod[m].obsm[f"X_groove_rep{k}"].shape == (test.mod[m].n_obs, 8)
    assert test.uns["groove_replicates"]["X_groove"]["keys"] == ["X_groove_rep0", "X_groove_rep1"]
    with pytest.raises(ValueError, match="at least two"):
        gs.tl.replicate_latents(replicates[:1], test)


def test_latent_flags_the_training_cells_and_warns(fitted):
    model, _, train, test = fitted
    train = train.copy()
    with pytest.warns(UserWarning, match="cells the model trained on"):
        gs.tl.latent(model, train)
    for m in model.modalities:
        flag = train.mod[m].obs["X_groove_training"].to_numpy()
        n_val = len(model.validation_indices[m])
        assert flag.sum() == train.mod[m].n_obs - n_val  # validation cells are not flagged
        assert not flag[model.validation_indices[m]].any()
    assert train.uns["X_groove"]["n_training_cells"][model.modalities[0]] == int(
        train.mod[model.modalities[0]].obs["X_groove_training"].sum()
    )
    # held-out test cells: nothing flagged, no warning
    test = test.copy()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        gs.tl.latent(model, test)
    assert not any(test.mod[m].obs["X_groove_training"].any() for m in model.modalities)


def test_pl_latent_warns_when_drawing_training_cells(fitted):
    model, _, train, _ = fitted
    train = train.copy()
    with pytest.warns(UserWarning):
        gs.tl.latent(model, train)
    with pytest.warns(UserWarning, match="cells the model trained on"):
        gs.pl.latent(train, basis="pca", show=False)


# ------------------------------------------------------------------- bad input (issue 6)
@bad_input
def test_latent_of_a_view(toy_model):
    m = make_toy_mdata()
    view = m[m.obs_names[:30]]
    fails(m, lambda: gs.tl.latent(toy_model, view), ValueError, "view.*copy")


@bad_input
def test_tl_latent_writes_union(toy_model):
    model = toy_model
    m = make_toy_mdata()
    gs.tl.latent(model, m)
    assert m.obsm["X_groove"].shape == (120, 4)
    assert np.isfinite(m.obsm["X_groove"]).all()


@bad_input
def test_tl_latent_not_mudata(toy_model):
    with pytest.raises(TypeError, match=r"`mdata` must be a mudata\.MuData"):
        gs.tl.latent(toy_model, make_toy_mdata().mod["rna"])
