"""``pl.imputation``: what is drawn (points, Pearson in the titles)."""

import matplotlib

matplotlib.use("Agg")
import anndata as ad
import numpy as np
import pandas as pd
import pytest

import groove_sc as gs
from tests.pl._objects import _paired


# --------------------------------------------------------------------------------------------
# imputation
# --------------------------------------------------------------------------------------------
def test_imputation_scatter_points_and_pearson_in_titles():
    mdata = _paired()
    obs = mdata.mod["prot"].X
    rng = np.random.default_rng(3)
    pred = obs + rng.normal(scale=0.5, size=obs.shape)
    mdata.mod["rna"].obsm["prot_imputed"] = pd.DataFrame(
        pred, index=mdata.mod["rna"].obs_names, columns=mdata.mod["prot"].var_names
    )
    axes = gs.pl.imputation(mdata, source="rna", target="prot", n_features=4, show=False)
    var = obs.var(0)
    expected = list(mdata.mod["prot"].var_names[np.argsort(-var, kind="stable")])
    assert [a.get_title().split("\n")[0] for a in axes] == expected
    for a, feat in zip(axes, expected):
        j = list(mdata.mod["prot"].var_names).index(feat)
        r = np.corrcoef(obs[:, j], pred[:, j])[0, 1]
        assert a.get_title().split("\n")[1] == f"r = {r:.2f}"
        assert a.collections[0].get_offsets().shape[0] == 40
        np.testing.assert_allclose(a.collections[0].get_offsets()[:, 0], obs[:, j], rtol=1e-6)
        assert a.get_xlabel() == "observed (prot)" and a.get_ylabel() == "imputed"


def test_imputation_observed_elsewhere_and_predicted_anndata():
    mdata = _paired(paired=False)  # names differ: observed must be given
    test = _paired(paired=True)
    pred = ad.AnnData(
        test.mod["prot"].X * 2.0,
        obs=pd.DataFrame(index=test.mod["prot"].obs_names),
        var=pd.DataFrame(index=test.mod["prot"].var_names),
    )
    ax = gs.pl.imputation(
        mdata,
        source="rna",
        target="prot",
        predicted=pred,
        observed=test,
        features="prot_f2",
        show=False,
    )
    assert ax.get_title() == "prot_f2\nr = 1.00"
    with pytest.raises(ValueError, match="observed"):
        gs.pl.imputation(mdata, source="rna", target="prot", predicted=pred, show=False)


def test_imputation_errors_name_the_argument():
    mdata = _paired()
    with pytest.raises(KeyError, match="key"):
        gs.pl.imputation(mdata, source="rna", target="prot", show=False)
    mdata.mod["rna"].obsm["p"] = pd.DataFrame(
        mdata.mod["prot"].X,
        index=mdata.mod["rna"].obs_names,
        columns=mdata.mod["prot"].var_names,
    )
    with pytest.raises(KeyError, match="features"):
        gs.pl.imputation(mdata, source="rna", target="prot", key="p", features=["x"], show=False)
    with pytest.raises(KeyError, match="target"):
        gs.pl.imputation(mdata, source="rna", target="atac", key="p", show=False)
    with pytest.raises(KeyError, match="layer"):
        gs.pl.imputation(mdata, source="rna", target="prot", key="p", layer="counts", show=False)


def test_imputation_of_tl_impute_output():
    mdata = _paired()
    gs.tl.align(mdata, source="rna", target="prot", method="uniform")
    gs.tl.impute(mdata, source="rna", target="prot")
    axes = gs.pl.imputation(mdata, source="rna", target="prot", show=False)
    assert len(axes) == 4  # every feature of prot (fewer than n_features=6)
    assert all(a.get_title().split("\n")[1].startswith("r = ") for a in axes)
