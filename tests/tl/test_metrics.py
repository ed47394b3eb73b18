"""Tests of the matching and imputation metrics (groove_sc.tl)."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import groove_sc as gs
from groove_sc.tl import align, foscttm, imputation_metrics, matching_metrics
from tests._shared import bad_input, fails, latents_and_coupling

KEY = "groove_coupling"


def paired_mdata(n_labels=5, per_label=20, d=6, noise=0.3, paired_names=True, seed=0):
    """Jointly measured test cells: latents of partners are close, labels shared."""
    rng = np.random.default_rng(seed)
    n = n_labels * per_label
    labels = np.repeat([f"g{i}" for i in range(n_labels)], per_label).astype(object)
    centre = rng.normal(size=(n_labels, d)) * 4
    z = centre[np.repeat(np.arange(n_labels), per_label)] + rng.normal(size=(n, d))
    names = [f"c{i}" for i in range(n)]
    a = ad.AnnData(rng.normal(size=(n, 3)).astype(np.float32))
    a.obs_names = names
    a.var_names = [f"rna{i}" for i in range(3)]
    a.obs["perturbation"] = labels
    a.obs["pair_id"] = names
    a.obsm["X_groove"] = z + noise * rng.normal(size=z.shape)
    perm = rng.permutation(n)
    b = ad.AnnData(rng.normal(size=(n, 4)).astype(np.float32)[perm])
    b.obs_names = [names[i] if paired_names else f"b_{names[i]}" for i in perm]
    b.var_names = [f"prot{i}" for i in range(4)]
    b.obs["perturbation"] = labels[perm]
    b.obs["pair_id"] = [names[i] for i in perm]
    b.obsm["X_groove"] = (z + noise * rng.normal(size=z.shape))[perm]
    return md.MuData({"rna": a, "prot": b})


def store(mdata, dense_t, source="rna", target="prot", key=KEY):
    """Store a source x target matrix as a union-space coupling (as align does)."""
    rows = np.flatnonzero(np.asarray(mdata.obsmap[source]) > 0)
    rows = rows[np.argsort(np.asarray(mdata.obsmap[source])[rows])]
    cols = np.flatnonzero(np.asarray(mdata.obsmap[target]) > 0)
    cols = cols[np.argsort(np.asarray(mdata.obsmap[target])[cols])]
    full = sp.lil_matrix((mdata.n_obs, mdata.n_obs))
    coo = sp.coo_matrix(dense_t)
    full[rows[coo.row], cols[coo.col]] = coo.data
    mdata.obsp[key] = full.tocsr()
    mdata.uns[key] = {"params": {"source": source, "target": target}}


def test_foscttm_basics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    assert foscttm(x, x) == 0.0
    assert foscttm(np.zeros((20, 2)), np.zeros((20, 2))) == pytest.approx(0.5)
    assert foscttm(x, rng.normal(size=(50, 3))) == pytest.approx(0.5, abs=0.08)


@pytest.mark.parametrize("paired_names", [True, False])
def test_uniform_coupling_has_trace_ratio_one(paired_names):
    mdata = paired_mdata(paired_names=paired_names)
    align(mdata, source="rna", target="prot", method="uniform")
    res = matching_metrics(mdata, source="rna", target="prot")
    assert res["trace"] == pytest.approx(1 / 20, rel=1e-5)
    assert res["trace_ratio"] == pytest.approx(1.0, rel=1e-5)
    assert res["label_transfer_accuracy"] == 1.0
    assert res["n_pairs"] == 100
    assert res["fraction_matched"] == 1.0
    # all cells of a label project onto the label mean: ties count half
    assert 0 < res["foscttm_barycentric"] < 0.5


def test_sinkhorn_beats_uniform_on_structured_latents():
    mdata = paired_mdata(noise=0.1)
    align(mdata, source="rna", target="prot", method="sinkhorn", epsilon=0.01)
    res = matching_metrics(mdata, source="rna", target="prot")
    assert res["trace_ratio"] > 2
    assert res["foscttm"] < 0.1


def test_random_coupling_scores_like_chance():
    mdata = paired_mdata(n_labels=1, per_label=300, seed=1)
    rng = np.random.default_rng(3)
    t = rng.random((300, 300))
    store(mdata, t / t.sum())
    res = matching_metrics(mdata, source="rna", target="prot", group_key=False)
    assert res["foscttm_barycentric"] == pytest.approx(0.5, abs=0.06)
    assert res["trace"] == pytest.approx(1 / 300, rel=0.3)
    assert np.isnan(res["trace_ratio"])
    # a random permutation: one partner per cell, almost never the right one
    perm = rng.permutation(300)
    store(mdata, sp.coo_matrix((np.full(300, 1 / 300), (np.arange(300), perm))).toarray())
    res = matching_metrics(mdata, source="rna", target="prot")
    assert res["foscttm_barycentric"] == pytest.approx(0.5, abs=0.06)


def test_perfect_coupling_and_orientation():
    mdata = paired_mdata(paired_names=False)
    ids_s = mdata["rna"].obs["pair_id"].to_numpy()
    ids_t = mdata["prot"].obs["pair_id"].to_numpy()
    truth = (ids_s[:, None] == ids_t[None, :]).astype(float) / len(ids_s)
    store(mdata, truth)
    res = matching_metrics(mdata, source="rna", target="prot")
    assert res["trace"] == pytest.approx(1.0)
    assert res["trace_ratio"] == pytest.approx(20.0)
    assert res["foscttm_barycentric"] == 0.0
    # the same coupling read the other way round
    back = matching_metrics(mdata, source="prot", target="rna")
    assert back["trace"] == pytest.approx(1.0)


def test_label_transfer_through_global_coupling():
    mdata = paired_mdata()
    align(mdata, source="rna", target="prot", method="emd", labeled=False)
    res = matching_metrics(mdata, source="rna", target="prot")
    assert res["label_transfer_accuracy"] > 0.9


def test_matching_metrics_errors():
    mdata = paired_mdata()
    with pytest.raises(KeyError, match="No coupling"):
        matching_metrics(mdata, source="rna", target="prot")
    align(mdata, source="rna", target="prot", method="uniform")
    with pytest.raises(KeyError, match="truth_key"):
        matching_metrics(mdata, source="rna", target="prot", truth_key="missing")
    mdata["prot"].obs["dup"] = "same"
    mdata["rna"].obs["dup"] = "same"
    with pytest.raises(ValueError, match="unique"):
        matching_metrics(mdata, source="rna", target="prot", truth_key="dup")


def test_unmatched_cells_are_excluded():
    mdata = paired_mdata()
    obs = mdata["prot"].obs
    obs["perturbation"] = obs["perturbation"].astype(object)
    obs.loc[obs["perturbation"] == "g0", "perturbation"] = "other"
    with pytest.warns(UserWarning, match="only in"):
        align(mdata, source="rna", target="prot", method="uniform")
    res = matching_metrics(mdata, source="rna", target="prot")
    assert res["fraction_matched"] == pytest.approx(0.8)
    assert res["trace_ratio"] == pytest.approx(1.0)


# ------------------------------------------------------------------ imputation_metrics
def test_imputation_metrics_perfect_and_definitions():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(40, 12)) + np.linspace(0, 5, 12)
    res = imputation_metrics(obs.copy(), obs)
    assert res["pearson_cell"] == pytest.approx(1.0)
    assert res["pearson_cell_delta"] == pytest.approx(1.0)
    assert res["pearson_feature"] == pytest.approx(1.0)
    assert res["mse"] == 0.0
    pred = obs + rng.normal(size=obs.shape)
    res = imputation_metrics(pred, obs)
    rc = np.mean([np.corrcoef(p, o)[0, 1] for p, o in zip(pred, obs)])
    mu = obs.mean(0)
    rd = np.mean([np.corrcoef(p - mu, o - mu)[0, 1] for p, o in zip(pred, obs)])
    rf = np.mean([np.corrcoef(pred[:, g], obs[:, g])[0, 1] for g in range(12)])
    assert res["pearson_cell"] == pytest.approx(rc)
    assert res["pearson_cell_delta"] == pytest.approx(rd)
    assert res["pearson_feature"] == pytest.approx(rf)
    assert res["mse"] == pytest.approx(((pred - obs) ** 2).mean())


def test_mean_profile_prediction_is_exposed_by_delta():
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(60, 20)) + np.linspace(0, 10, 20)
    pred = np.tile(obs.mean(0), (60, 1)) + 1e-3 * rng.normal(size=obs.shape)
    res = imputation_metrics(pred, obs)
    assert res["pearson_cell"] > 0.9
    assert abs(res["pearson_cell_delta"]) < 0.2


def test_imputation_metrics_alignment_sparse_and_reference():
    rng = np.random.default_rng(2)
    x = rng.poisson(2.0, size=(30, 8)).astype(np.float32)
    adata = ad.AnnData(sp.csr_matrix(x))
    adata.obs_names = [f"c{i}" for i in range(30)]
    adata.var_names = [f"g{i}" for i in range(8)]
    pred = pd.DataFrame(
        x + rng.normal(size=x.shape), index=adata.obs_names, columns=adata.var_names
    )
    dense = imputation_metrics(pred.to_numpy(), x)
    # shuffled rows/columns, sparse observed: aligned by names, same result
    shuffled = pred.iloc[rng.permutation(30), rng.permutation(8)]
    named = imputation_metrics(shuffled, adata)
    for k in ("pearson_cell", "pearson_cell_delta", "pearson_feature", "mse"):
        assert named[k] == pytest.approx(dense[k])
    # NaN rows (no coupling mass) are skipped with a warning
    with_nan = pred.copy()
    with_nan.iloc[:5] = np.nan
    with pytest.warns(UserWarning, match="5 cells"):
        res = imputation_metrics(with_nan, adata)
    assert res["n_cells"] == 25 and res["n_cells_skipped"] == 5
    # a control profile as reference, by feature name
    ref = pd.Series(np.ones(8), index=adata.var_names[::-1])
    res = imputation_metrics(pred, adata, reference=ref)
    expected = np.mean([np.corrcoef(p - 1, o - 1)[0, 1] for p, o in zip(pred.to_numpy(), x)])
    assert res["pearson_cell_delta"] == pytest.approx(expected)


def test_imputation_metrics_errors():
    with pytest.raises(ValueError, match="same shape"):
        imputation_metrics(np.zeros((3, 2)), np.zeros((3, 3)))
    a = pd.DataFrame(np.zeros((2, 2)), index=["a", "b"], columns=["x", "y"])
    b = pd.DataFrame(np.zeros((2, 2)), index=["c", "d"], columns=["x", "y"])
    with pytest.raises(ValueError, match="share no"):
        imputation_metrics(a, b)
    with pytest.raises(ValueError, match="reference"):
        imputation_metrics(np.ones((3, 2)), np.ones((3, 2)), reference=np.ones(5))


@pytest.mark.parametrize("paired_names", [True, False])
def test_perfect_reference_coupling(paired_names):
    mdata = paired_mdata(paired_names=paired_names)
    align(mdata, source="rna", target="prot", method="perfect")
    res = matching_metrics(mdata, source="rna", target="prot")
    assert res["trace"] == pytest.approx(1.0)
    assert res["trace_ratio"] == pytest.approx(20.0)
    assert res["foscttm_barycentric"] == 0.0
    assert mdata.uns[KEY]["params"]["method"] == "perfect"
    with pytest.raises(KeyError, match="truth_key"):
        align(mdata, source="rna", target="prot", method="perfect", truth_key="nope")


# ------------------------------------------------------------------- bad input (issue 6)
@bad_input
def test_matching_metrics_unknown_coupling_key(paired_test):
    test = latents_and_coupling(paired_test)
    fails(
        test,
        lambda: gs.tl.matching_metrics(test, coupling_key="nope", source="rna", target="protein"),
        KeyError,
        "nope",
    )


@bad_input
def test_matching_metrics_unknown_truth_key(paired_test):
    test = latents_and_coupling(paired_test)
    fails(
        test,
        lambda: gs.tl.matching_metrics(test, source="rna", target="protein", truth_key="cell_id"),
        KeyError,
        r"`truth_key`='cell_id' is not a column",
    )


@bad_input
def test_matching_metrics_works(paired_test):
    test = latents_and_coupling(paired_test)
    res = gs.tl.matching_metrics(test, source="rna", target="protein")
    assert all(np.isfinite(v) or np.isnan(v) for v in res.values())
    assert 0.0 <= res["foscttm"] <= 1.0 if "foscttm" in res else True


@bad_input
def test_imputation_metrics_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        gs.tl.imputation_metrics(np.ones((5, 3)), np.ones((4, 3)))


@bad_input
def test_imputation_metrics_nan_rows_skipped():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(10, 5))
    pred = obs + 0.1 * rng.normal(size=(10, 5))
    pred[0] = np.nan
    res = gs.tl.imputation_metrics(pred, obs)
    assert res["n_cells_skipped"] == 1
    assert np.isfinite(res["pearson_cell"])


@bad_input
def test_foscttm_shape_mismatch():
    with pytest.raises(ValueError, match=r"`x` \(5, 2\) and `y` \(4, 2\) must have the same shape"):
        gs.tl.foscttm(np.ones((5, 2)), np.ones((4, 2)))


@bad_input
def test_label_transfer_length_mismatch():
    with pytest.raises(
        ValueError, match=r"`labels_source` has 4 entries but `x_source` has 5 rows"
    ):
        gs.tl.label_transfer_accuracy(np.ones((5, 2)), ["a"] * 4, np.ones((3, 2)), ["a"] * 3)


@bad_input
def test_matching_metrics_missing_group_key(paired_test):
    test = latents_and_coupling(paired_test)
    fails(
        test,
        lambda: gs.tl.matching_metrics(test, source="rna", target="protein", group_key="pert"),
        KeyError,
        r"`group_key`='pert' is not a column",
    )


@bad_input
def test_matching_metrics_missing_rep_gives_nan(paired_test):
    # documented: the latent-space scores are NaN when `use_rep` is absent, the rest is scored
    test = latents_and_coupling(paired_test)
    res = gs.tl.matching_metrics(test, source="rna", target="protein", use_rep="X_nope")
    ref = gs.tl.matching_metrics(test, source="rna", target="protein")
    assert np.isfinite(res["trace"]) and res["trace"] == ref["trace"]
    assert any(np.isnan(v) for v in res.values())


@bad_input
def test_metrics_empty_selection():
    with pytest.raises(ValueError, match="FOSCTTM needs at least two paired cells"):
        gs.tl.foscttm(np.ones((0, 2)), np.ones((0, 2)))
    with pytest.raises(ValueError, match="needs at least one source and one target cell"):
        gs.tl.label_transfer_accuracy(np.ones((0, 2)), [], np.ones((3, 2)), ["a"] * 3)
    with pytest.raises(ValueError, match="No cell has a finite prediction"):
        gs.tl.imputation_metrics(np.ones((0, 3)), np.ones((0, 3)))


@bad_input
def test_foscttm_nan():
    x = np.ones((4, 2))
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`x` and `y` must not contain NaN or inf"):
        gs.tl.foscttm(x, np.ones((4, 2)))
