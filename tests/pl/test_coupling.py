"""``pl.coupling``: what is drawn (the label view's matrix values, the cell view)."""

import matplotlib

matplotlib.use("Agg")
import mudata as md
import numpy as np
import pandas as pd
import pytest

import groove_sc as gs
from tests.pl._objects import _paired, _store_coupling


# --------------------------------------------------------------------------------------------
# coupling
# --------------------------------------------------------------------------------------------
def _random_global_coupling(mdata, source="rna", target="prot", seed=1):
    rng = np.random.default_rng(seed)
    t = rng.random((mdata.mod[source].n_obs, mdata.mod[target].n_obs))
    t /= t.sum()
    return t


def _label_masses(mdata, t, source, target, cats):
    ls = mdata.mod[source].obs["perturbation"].astype(str).to_numpy()
    lt = mdata.mod[target].obs["perturbation"].astype(str).to_numpy()
    return np.array([[t[np.ix_(ls == a, lt == b)].sum() for b in cats] for a in cats])


def test_coupling_label_view_equals_the_label_block_masses():
    mdata = _paired()
    t = _random_global_coupling(mdata)
    _store_coupling(mdata, t, "rna", "prot", method="sinkhorn", labeled=False)
    cats = ["L0", "L1", "L2", "L3"]
    expected = _label_masses(mdata, t, "rna", "prot", cats)
    ax = gs.pl.coupling(mdata, key="T", normalize=None, show=False)
    np.testing.assert_allclose(ax.images[0].get_array(), expected, rtol=1e-6)
    assert [t.get_text() for t in ax.get_yticklabels()] == cats
    assert [t.get_text() for t in ax.get_xticklabels()] == cats
    assert ax.get_xlabel() == "prot label" and ax.get_ylabel() == "rna label"
    assert "sinkhorn (global)" in ax.get_title()
    ax = gs.pl.coupling(mdata, key="T", show=False)  # default: rows sum to one
    np.testing.assert_allclose(
        ax.images[0].get_array(), expected / expected.sum(1, keepdims=True), rtol=1e-6
    )
    assert len(ax.texts) == 16  # annotated (few labels)
    # swapping source and target transposes
    ax = gs.pl.coupling(mdata, key="T", source="prot", target="rna", normalize="total", show=False)
    np.testing.assert_allclose(ax.images[0].get_array(), expected.T / expected.sum(), rtol=1e-6)


def test_coupling_label_view_of_tl_align_uniform_is_diagonal():
    mdata = _paired()
    gs.tl.align(mdata, source="rna", target="prot", method="uniform")
    ax = gs.pl.coupling(mdata, normalize=None, show=False)
    mat = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(mat, np.diag([0.25] * 4), atol=1e-6)


def test_coupling_cell_view_orders_cells_by_pair_id():
    mdata = _paired(paired=False)  # weakly paired names, truth in pair_id
    n = mdata.mod["rna"].n_obs
    rng = np.random.default_rng(0)
    perm = rng.permutation(n)
    # prot rows shuffled: the true partner of rna cell i is the prot cell with pair_id i
    prot = mdata.mod["prot"][perm].copy()
    mdata = md.MuData({"rna": mdata.mod["rna"], "prot": prot})
    pos = pd.Index(prot.obs["pair_id"]).get_indexer(mdata.mod["rna"].obs["pair_id"])
    t = np.zeros((n, n))
    t[np.arange(n), pos] = 1.0 / n  # the perfect coupling
    _store_coupling(mdata, t, "rna", "prot", method="emd")
    ax = gs.pl.coupling(mdata, key="T", label="L2", show=False)
    mat = np.asarray(ax.images[0].get_array())
    assert mat.shape == (10, 10)
    np.testing.assert_allclose(mat, np.eye(10))  # row-normalised perfect coupling
    assert ax.collections[0].get_offsets().shape[0] == 10  # true-partner markers
    assert "L2" in ax.get_title() and ax.get_ylabel() == "rna cells (10)"
    with pytest.raises(KeyError, match="label"):
        gs.pl.coupling(mdata, key="T", label="L9", show=False)


def test_coupling_cell_view_without_truth_and_subsampled():
    mdata = _paired()
    gs.tl.align(mdata, source="rna", target="prot", method="uniform", key_added="u")
    ax = gs.pl.coupling(mdata, key="u", label="L0", order_key=None, max_cells=4, show=False)
    mat = np.asarray(ax.images[0].get_array())
    assert mat.shape == (4, 4)
    np.testing.assert_allclose(mat, 0.25)  # uniform within label, row-normalised on 4 of 10
    assert "4 of 10" in ax.get_title()


def test_coupling_errors_name_the_argument():
    mdata = _paired()
    with pytest.raises(KeyError, match="key"):
        gs.pl.coupling(mdata, key="missing", source="rna", target="prot", show=False)
    _store_coupling(mdata, _random_global_coupling(mdata), "rna", "prot")
    with pytest.raises(KeyError, match="group_key"):
        gs.pl.coupling(mdata, key="T", group_key="cell_type", show=False)
    with pytest.raises(KeyError, match="source"):
        gs.pl.coupling(mdata, key="T", source="atac", target="prot", show=False)
    with pytest.raises(ValueError, match="normalize"):
        gs.pl.coupling(mdata, key="T", normalize="column", show=False)
