from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

import groove_sc as gs
from groove_sc.datasets import simulate
from tests._shared import bad_input

md.set_options(pull_on_update=False)


def _label_mean_rsa(mdata: md.MuData) -> float:
    """Spearman correlation between the label-mean distance matrices of the two modalities."""
    a, b = (mdata.mod[m] for m in mdata.mod)
    lab = a.obs["perturbation_true"].cat.codes.to_numpy()
    labels = np.unique(lab)
    mean_a = np.stack([a.X[lab == code].mean(0) for code in labels])
    mean_b = np.stack([b.X[lab == code].mean(0) for code in labels])
    return float(spearmanr(pdist(mean_a), pdist(mean_b)).statistic)


def test_default_shapes_and_obs():
    mdata = simulate(n_perturbations=6, cells_per_perturbation=30, n_features=(12, 7))
    assert list(mdata.mod) == ["rna", "protein"]
    rna, prot = mdata.mod["rna"], mdata.mod["protein"]
    assert rna.shape == (180, 12)
    assert prot.shape == (180, 7)
    assert mdata.n_obs == 180  # same cells: MuData sees one set of 180 cells
    for adata in (rna, prot):
        assert adata.X.dtype == np.float32
        assert {"perturbation", "perturbation_true", "pair_id"} <= set(adata.obs.columns)
        assert isinstance(adata.obs["perturbation"].dtype, pd.CategoricalDtype)
        assert list(adata.obs["perturbation"].cat.categories) == [
            "control",
            "P00",
            "P01",
            "P02",
            "P03",
            "P04",
        ]
        assert adata.obs["perturbation"].value_counts().eq(30).all()
        assert np.isfinite(adata.X).all()
    np.testing.assert_array_equal(rna.obs["pair_id"], np.arange(180))
    np.testing.assert_array_equal(rna.obs["pair_id"], prot.obs["pair_id"])
    assert list(rna.obs_names) == list(prot.obs_names)
    np.testing.assert_array_equal(rna.obs["perturbation"], prot.obs["perturbation"])
    assert set(rna.var_names).isdisjoint(prot.var_names)
    assert rna.var_names[0] == "rna_0"
    assert prot.var_names[0] == "protein_0"
    # rows are shuffled, not sorted by label
    assert not rna.obs["perturbation"].cat.codes.is_monotonic_increasing
    params = mdata.uns["simulation"]
    assert params["n_perturbations"] == 6
    assert params["shared_fraction"] == 1.0
    assert params["modality_names"] == ["rna", "protein"]


def test_same_latent_state_in_both_modalities():
    mdata = simulate(n_perturbations=5, cells_per_perturbation=20, seed=3)
    rna, prot = mdata.mod["rna"], mdata.mod["protein"]
    np.testing.assert_array_equal(rna.obsm["z_shared"], prot.obsm["z_shared"])
    assert rna.obsm["z_specific"].shape == (100, 4)
    assert not np.allclose(rna.obsm["z_specific"], prot.obsm["z_specific"])


def test_control_has_zero_effect():
    mdata = simulate(n_perturbations=10, cells_per_perturbation=200, shared_fraction=0.5, seed=1)
    adata = mdata.mod["rna"]
    z = np.hstack([adata.obsm["z_shared"], adata.obsm["z_specific"]])
    lab = adata.obs["perturbation_true"].to_numpy()
    norms = {g: np.linalg.norm(z[lab == g].mean(0)) for g in np.unique(lab)}
    assert norms["control"] < 0.15
    assert np.median([v for k, v in norms.items() if k != "control"]) > 0.5


def test_no_control():
    mdata = simulate(n_perturbations=4, cells_per_perturbation=5, control_label=None)
    cats = list(mdata.mod["rna"].obs["perturbation"].cat.categories)
    assert cats == ["P00", "P01", "P02", "P03"]


def test_deterministic_and_seed_dependent():
    kw = dict(n_perturbations=5, cells_per_perturbation=20, label_noise=0.1, missing_labels=1)
    m1, m2, m3 = simulate(seed=7, **kw), simulate(seed=7, **kw), simulate(seed=8, **kw)
    for name in m1.mod:
        np.testing.assert_array_equal(m1.mod[name].X, m2.mod[name].X)
        pd.testing.assert_frame_equal(m1.mod[name].obs, m2.mod[name].obs)
        assert not np.array_equal(
            m1.mod[name].obs["perturbation"], m3.mod[name].obs["perturbation"]
        )
    assert m1.uns["simulation"] == m2.uns["simulation"]
    assert not np.allclose(m1.mod["rna"].X[:10], m3.mod["rna"].X[:10])


def test_unequal_cells_per_perturbation():
    sizes = [5, 10, 15, 20]
    mdata = simulate(n_perturbations=4, cells_per_perturbation=sizes)
    counts = mdata.mod["rna"].obs["perturbation_true"].value_counts()
    assert counts.to_dict() == {"control": 5, "P00": 10, "P01": 15, "P02": 20}
    assert mdata.mod["protein"].n_obs == 50


def test_label_noise_fraction():
    mdata = simulate(n_perturbations=8, cells_per_perturbation=50, label_noise=0.25, seed=2)
    for adata in mdata.mod.values():
        wrong = adata.obs["perturbation"] != adata.obs["perturbation_true"]
        assert wrong.sum() == round(0.25 * 400)  # a wrong label is never the true one
    np.testing.assert_array_equal(
        mdata.mod["rna"].obs["perturbation"], mdata.mod["protein"].obs["perturbation"]
    )
    clean = simulate(n_perturbations=8, cells_per_perturbation=50, seed=2)
    obs = clean.mod["rna"].obs
    assert (obs["perturbation"] == obs["perturbation_true"]).all()


def test_missing_labels_int():
    mdata = simulate(n_perturbations=10, cells_per_perturbation=20, missing_labels=3, seed=4)
    rna, prot = mdata.mod["rna"], mdata.mod["protein"]
    missing = list(mdata.uns["simulation"]["missing_in_protein"])
    assert len(missing) == 3
    assert "control" not in missing
    assert mdata.uns["simulation"]["missing_in_rna"] == []
    assert set(rna.obs["perturbation_true"]) == set(rna.obs["perturbation"].cat.categories)
    assert set(prot.obs["perturbation_true"]).isdisjoint(missing)
    assert rna.n_obs == 200
    assert prot.n_obs == 200 - 3 * 20
    assert set(prot.obs["pair_id"]) < set(rna.obs["pair_id"])
    # the category set is the full label set in both modalities
    assert list(prot.obs["perturbation"].cat.categories) == list(
        rna.obs["perturbation"].cat.categories
    )
    # shared cells still carry the same latent state
    common = rna[rna.obs["pair_id"].isin(prot.obs["pair_id"])]
    np.testing.assert_array_equal(common.obsm["z_shared"], prot.obsm["z_shared"])
    assert mdata.n_obs == 200


def test_missing_labels_mapping():
    mdata = simulate(
        n_perturbations=8,
        cells_per_perturbation=10,
        missing_labels={"rna": 2, "protein": 1},
    )
    miss_rna = set(mdata.uns["simulation"]["missing_in_rna"])
    miss_prot = set(mdata.uns["simulation"]["missing_in_protein"])
    assert len(miss_rna) == 2
    assert len(miss_prot) == 1
    assert miss_rna.isdisjoint(miss_prot)
    assert set(mdata.mod["rna"].obs["perturbation_true"]).isdisjoint(miss_rna)
    assert miss_rna <= set(mdata.mod["protein"].obs["perturbation_true"])
    assert mdata.mod["rna"].n_obs == 60
    assert mdata.mod["protein"].n_obs == 70


def test_nb_counts():
    mdata = simulate(
        n_perturbations=5,
        cells_per_perturbation=40,
        likelihood=("nb", "gaussian"),
        library_size=(500.0, 1.0),
    )
    x = mdata.mod["rna"].X
    assert x.dtype == np.float32
    assert (x >= 0).all()
    np.testing.assert_array_equal(x, np.round(x))
    assert (x == 0).any()
    np.testing.assert_array_equal(mdata.mod["rna"].layers["counts"], x)
    lib = x.sum(1)
    assert 350 < lib.mean() < 700
    assert lib.std() > 0
    # the Gaussian modality stays continuous and has no counts layer
    assert "counts" not in mdata.mod["protein"].layers
    assert (mdata.mod["protein"].X < 0).any()


def test_shared_fraction_changes_cross_modal_structure():
    kw = dict(n_perturbations=20, cells_per_perturbation=30)
    full = [_label_mean_rsa(simulate(shared_fraction=1.0, seed=s, **kw)) for s in range(3)]
    half = [_label_mean_rsa(simulate(shared_fraction=0.5, seed=s, **kw)) for s in range(3)]
    none = [_label_mean_rsa(simulate(shared_fraction=0.0, seed=s, **kw)) for s in range(3)]
    assert np.mean(full) > 0.6
    assert np.mean(full) - np.mean(half) > 0.2
    assert np.mean(half) - np.mean(none) > 0.1
    assert abs(np.mean(none)) < 0.2


def test_within_label_shared_structure():
    """Within a label, cell-to-cell structure agrees across modalities only via the shared block."""

    def within_rsa(w: float) -> float:
        mdata = simulate(
            n_perturbations=4, cells_per_perturbation=60, within_label_shared=w, noise=0.2, seed=5
        )
        a, b = mdata.mod["rna"], mdata.mod["protein"]
        lab = a.obs["perturbation"].to_numpy()
        stats = [
            spearmanr(pdist(a.X[lab == g]), pdist(b.X[lab == g])).statistic for g in np.unique(lab)
        ]
        return float(np.mean(stats))

    none, full = within_rsa(0.0), within_rsa(1.0)
    assert abs(none) < 0.1
    assert full > 0.4


def test_writes_h5mu(tmp_path):
    mdata = simulate(n_perturbations=4, cells_per_perturbation=10, missing_labels=1)
    path = tmp_path / "sim.h5mu"
    mdata.write(path)
    back = md.read_h5mu(path)
    np.testing.assert_array_equal(back.mod["rna"].X, mdata.mod["rna"].X)
    assert back.uns["simulation"]["shared_fraction"] == 1.0
    assert back.mod["protein"].n_obs == 30


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_perturbations": 0}, "n_perturbations"),
        ({"cells_per_perturbation": 0}, "cells_per_perturbation"),
        ({"cells_per_perturbation": [10, 10]}, "cells_per_perturbation"),
        ({"n_features": (10, 0)}, "n_features"),
        ({"shared_fraction": 1.5}, "shared_fraction"),
        ({"shared_fraction": -0.1}, "shared_fraction"),
        ({"within_label_shared": 2.0}, "within_label_shared"),
        ({"n_latent_shared": 0}, "n_latent_shared"),
        ({"n_latent_specific": 0}, "n_latent_specific"),
        ({"effect_size": -1.0}, "effect_size"),
        ({"noise": -0.5}, "noise"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"likelihood": ("nb", "zinb")}, "likelihood"),
        ({"library_size": 0.0}, "library_size"),
        ({"nb_theta": 0.0}, "nb_theta"),
        ({"label_noise": 1.0}, "label_noise"),
        ({"missing_labels": -1}, "missing_labels"),
        ({"missing_labels": 20}, "missing_labels"),
        ({"missing_labels": {"atac": 1}}, "missing_labels"),
        ({"modality_names": ("rna", "rna")}, "modality_names"),
        ({"control_label": "P00"}, "control_label"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(**{"n_perturbations": 5, "cells_per_perturbation": 4, **kwargs})


# ------------------------------------------------------------------- bad input (issue 6)
@bad_input
def test_simulate_bad_arguments():
    with pytest.raises(ValueError, match="n_perturbations"):
        gs.datasets.simulate(n_perturbations=0)
    with pytest.raises(ValueError, match="shared_fraction"):
        gs.datasets.simulate(shared_fraction=1.5)


@bad_input
def test_simulate_counts_nb():
    sim = gs.datasets.simulate(
        n_perturbations=2, cells_per_perturbation=5, likelihood=("nb", "gaussian"), seed=0
    )
    x = sim.mod["rna"].X
    x = x.toarray() if sparse.issparse(x) else x
    assert (x >= 0).all() and np.allclose(x, np.round(x))
