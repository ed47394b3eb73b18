"""Tests of groove_sc.tl.impute (barycentric projection through a stored coupling)."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import groove_sc as gs
from groove_sc.tl import align, imputation_metrics, impute
from groove_sc.tl._align import read_coupling
from groove_sc.tl._impute import barycentric_projection
from tests._shared import bad_input, fails, latents_and_coupling


def permuted_pair(n=30, d=4, p=5, paired_names=False, sparse=False, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    labels = np.array([f"l{i % 3}" for i in range(n)], dtype=object)
    a = ad.AnnData(rng.normal(size=(n, 2)).astype(np.float32))
    a.obs_names = [f"c{i}" for i in range(n)]
    a.var_names = ["rna0", "rna1"]
    a.obs["perturbation"] = labels
    a.obsm["X_groove"] = z
    perm = rng.permutation(n)
    xb = rng.poisson(3.0, size=(n, p)).astype(np.float32)
    b = ad.AnnData(sp.csr_matrix(xb) if sparse else xb)
    b.obs_names = [f"c{i}" if paired_names else f"t{i}" for i in perm]
    b.var_names = [f"prot{i}" for i in range(p)]
    b.obs["perturbation"] = labels[perm]
    b.obsm["X_groove"] = z[perm]
    b.layers["counts"] = xb * 2
    return md.MuData({"rna": a, "prot": b}), xb, perm


@pytest.mark.parametrize("paired_names", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_emd_permutation_imputes_exactly(paired_names, sparse):
    mdata, xb, perm = permuted_pair(paired_names=paired_names, sparse=sparse)
    align(mdata, source="rna", target="prot", method="emd")
    impute(mdata, source="rna", target="prot")
    out = mdata["rna"].obsm["prot_imputed"]
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list(mdata["rna"].obs_names)
    assert list(out.columns) == list(mdata["prot"].var_names)
    # source cell i was permuted to target position inv[i]
    inv = np.argsort(perm)
    np.testing.assert_allclose(out.to_numpy(), xb[inv], rtol=1e-6)
    res = imputation_metrics(out, ad.AnnData(xb[inv], obs=mdata["rna"].obs[[]], var=out.T[[]]))
    assert res["mse"] == pytest.approx(0.0, abs=1e-10)


def test_layer_key_added_and_reverse_orientation():
    mdata, xb, perm = permuted_pair()
    align(mdata, source="prot", target="rna", method="emd")  # stored the other way
    impute(mdata, source="rna", target="prot", layer="counts", key_added="imp")
    inv = np.argsort(perm)
    np.testing.assert_allclose(mdata["rna"].obsm["imp"].to_numpy(), 2 * xb[inv], rtol=1e-6)
    with pytest.raises(KeyError, match="layer"):
        impute(mdata, source="rna", target="prot", layer="missing")


def test_barycentric_projection_matches_dense_formula():
    rng = np.random.default_rng(1)
    t = rng.random((7, 9)) * (rng.random((7, 9)) > 0.5)
    t[3] = 0.0
    v = rng.normal(size=(9, 4))
    proj, mass = barycentric_projection(sp.csr_matrix(t), v, chunk_size=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = (t @ v) / t.sum(1, keepdims=True)
    np.testing.assert_allclose(proj, expected)
    assert np.isnan(proj[3]).all() and mass[3] == 0
    sparse_proj, _ = barycentric_projection(t, sp.csr_matrix(v), chunk_size=3)
    np.testing.assert_allclose(sparse_proj, expected, rtol=1e-6)


def test_unmatched_rows_are_nan_with_warning_and_copy():
    mdata, _, _ = permuted_pair()
    obs = mdata["rna"].obs
    obs.loc[obs.index[:4], "perturbation"] = "only_here"
    with pytest.warns(UserWarning, match="only_here"):
        align(mdata, source="rna", target="prot")
    with pytest.warns(UserWarning, match="4 of 30"):
        out = impute(mdata, source="rna", target="prot", copy=True)
    assert "prot_imputed" not in mdata["rna"].obsm
    imp = out["rna"].obsm["prot_imputed"]
    assert imp.iloc[:4].isna().all().all()
    assert np.isfinite(imp.iloc[4:].to_numpy()).all()
    # each imputed row is a convex combination of same-label targets
    t = read_coupling(out, "groove_coupling", source="rna", target="prot")
    assert t.shape == (30, 30)


def test_missing_coupling_is_a_clear_error():
    mdata, _, _ = permuted_pair()
    with pytest.raises(KeyError, match="align"):
        impute(mdata, source="rna", target="prot")
    assert "prot_imputed" not in mdata["rna"].obsm


# ------------------------------------------------------------------- bad input (issue 6)
@bad_input
def test_impute_unknown_coupling_key(paired_test):
    test = latents_and_coupling(paired_test)
    fails(
        test,
        lambda: gs.tl.impute(test, coupling_key="nope", source="rna", target="protein"),
        KeyError,
        r"No coupling 'nope' in mdata\.obsp",
    )


@bad_input
def test_impute_unknown_layer(paired_test):
    test = latents_and_coupling(paired_test)
    fails(
        test,
        lambda: gs.tl.impute(test, source="rna", target="protein", layer="raw"),
        KeyError,
        "layer.*raw",
    )


@bad_input
def test_impute_unknown_modality(paired_test):
    test = latents_and_coupling(paired_test)
    fails(
        test,
        lambda: gs.tl.impute(test, source="rna", target="atac"),
        KeyError,
        r"`target`='atac' is not a modality",
    )


@bad_input
def test_impute_works(paired_test):
    test = latents_and_coupling(paired_test)
    gs.tl.impute(test, source="rna", target="protein")
    out = test.mod["rna"].obsm["protein_imputed"]
    assert out.shape == (test.mod["rna"].n_obs, test.mod["protein"].n_vars)
    assert np.isfinite(out.to_numpy()).all()


@bad_input
def test_impute_after_subsetting_target(paired_test):
    # the coupling is read through obsmap: dropping target cells drops their columns
    test = latents_and_coupling(paired_test)
    test.mod["protein"] = test.mod["protein"][:5].copy()
    test.update()
    gs.tl.impute(test, source="rna", target="protein")
    out = test.mod["rna"].obsm["protein_imputed"].to_numpy()
    assert out.shape == (test.mod["rna"].n_obs, 6)
    rows = np.isfinite(out).all(axis=1)
    assert rows.any() and (np.isnan(out[~rows]).all())
