"""Tests of groove_sc.tl.align: known answers, coupling validity, storage and errors."""

from __future__ import annotations

import warnings

import anndata as ad
import mudata as md
import numpy as np
import ot
import ot.coot
import pytest
import scipy.sparse as sp
import torch

import groove_sc as gs
from groove_sc.ot import sinkhorn_batched as _sinkhorn_batched
from groove_sc.ot import sqdist as _sqdist_np
from groove_sc.tl import align, matching_metrics
from groove_sc.tl._align import read_coupling
from tests._shared import (
    assert_same,
    bad_input,
    fails,
    latents_and_coupling,
    make_mdata,
    snapshot,
)

KEY = "groove_coupling"


def make_permuted_pair(n=40, d=5, n_labels=1, paired_names=False, seed=0) -> md.MuData:
    """Point cloud in `rna` and a permuted copy of it in `prot`, with pair ids."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    labels = np.array([f"l{i % n_labels}" for i in range(n)], dtype=object)
    a = ad.AnnData(np.zeros((n, 1), dtype=np.float32))
    a.var_names = ["a0"]
    a.obs_names = [f"c{i}" for i in range(n)]
    a.obs["perturbation"] = labels
    a.obs["pair_id"] = [f"c{i}" for i in range(n)]
    a.obsm["X_groove"] = x
    perm = rng.permutation(n)
    b = ad.AnnData(np.zeros((n, 1), dtype=np.float32))
    b.var_names = ["b0"]
    b.obs_names = [f"c{i}" if paired_names else f"t{i}" for i in perm]
    b.obs["perturbation"] = labels[perm]
    b.obs["pair_id"] = [f"c{i}" for i in perm]
    b.obsm["X_groove"] = x[perm]
    return md.MuData({"rna": a, "prot": b})


def coupling_and_labels(mdata, source="rna", target="prot"):
    t = read_coupling(mdata, KEY, source=source, target=target).toarray()
    ls = mdata.mod[source].obs["perturbation"].astype(str).to_numpy()
    lt = mdata.mod[target].obs["perturbation"].astype(str).to_numpy()
    return t, ls, lt


def check_labeled_valid(mdata, tol=1e-6, balanced=True):
    t, ls, lt = coupling_and_labels(mdata)
    assert (t >= 0).all()
    assert np.isfinite(t).all()
    cross = t[ls[:, None] != lt[None, :]].sum()
    assert cross == 0.0
    n = len(ls)
    assert t.sum() == pytest.approx(1.0, abs=1e-5)
    if balanced:
        np.testing.assert_allclose(t.sum(1), 1.0 / n, atol=tol)
        for lab in np.unique(lt):
            w = (ls == lab).sum() / n
            np.testing.assert_allclose(t[:, lt == lab].sum(0), w / (lt == lab).sum(), atol=tol)
    return t


LABELED_CASES = [
    ("uniform", {}),
    ("sinkhorn", {}),
    ("sinkhorn", {"dtype": "float64"}),
    ("emd", {}),
    ("gw", {"gw_form": "ryu"}),
    ("gw", {"gw_form": "ryu", "epsilon": 0.0}),
    ("gw", {"gw_form": "per_label"}),
    ("gw", {"gw_form": "per_label", "epsilon": 0.0}),
    ("fgw", {}),
    ("fgw", {"epsilon": 0.0}),
    ("coot", {"use_rep": "X"}),
    ("coot", {"use_rep": "X", "epsilon": 0.0}),
]


@pytest.mark.parametrize(("method", "kwargs"), LABELED_CASES)
def test_labeled_coupling_is_valid(method, kwargs):
    mdata = make_mdata()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged, no label warnings
        align(mdata, source="rna", target="prot", method=method, **kwargs)
    t = mdata.obsp[KEY]
    assert sp.issparse(t)
    assert t.shape == (mdata.n_obs, mdata.n_obs)
    check_labeled_valid(mdata)
    uns = mdata.uns[KEY]
    assert uns["params"]["method"] == method
    diag = uns["diagnostics"]
    assert list(diag["label"]) == ["p0", "p1", "p2"]
    assert diag["converged"].all()
    np.testing.assert_array_equal(diag["n_source"], [12, 20, 8])
    np.testing.assert_array_equal(diag["n_target"], [15, 10, 9])
    np.testing.assert_allclose(diag["mass"], np.array([12, 20, 8]) / 40, atol=1e-6)
    # non-zeros only in rows of source cells x columns of target cells
    rows = np.asarray(mdata.obsmap["rna"]) > 0
    cols = np.asarray(mdata.obsmap["prot"]) > 0
    coo = t.tocoo()
    assert rows[coo.row].all() and cols[coo.col].all()


GLOBAL_CASES = [
    ("uniform", {}),
    ("sinkhorn", {}),
    ("emd", {}),
    ("gw", {}),
    ("gw", {"epsilon": 0.0}),
    ("fgw", {}),
    ("fgw", {"epsilon": 0.0}),
    ("coot", {"use_rep": "X"}),
    ("coot", {"use_rep": "X", "epsilon": 0.0}),
]


@pytest.mark.parametrize(("method", "kwargs"), GLOBAL_CASES)
def test_global_coupling_is_valid(method, kwargs):
    mdata = make_mdata(sizes_s=(10, 12), sizes_t=(9, 11))
    align(mdata, source="rna", target="prot", method=method, labeled=False, **kwargs)
    t = read_coupling(mdata, KEY, source="rna", target="prot").toarray()
    assert (t >= 0).all()
    np.testing.assert_allclose(t.sum(1), 1.0 / t.shape[0], atol=1e-6)
    np.testing.assert_allclose(t.sum(0), 1.0 / t.shape[1], atol=1e-6)
    assert list(mdata.uns[KEY]["diagnostics"]["label"]) == ["__all__"]


@pytest.mark.parametrize("paired_names", [False, True])
@pytest.mark.parametrize("n_labels", [1, 4])
@pytest.mark.parametrize("labeled", [True, False])
def test_emd_recovers_permutation(paired_names, n_labels, labeled):
    mdata = make_permuted_pair(n_labels=n_labels, paired_names=paired_names)
    if paired_names:
        assert mdata.n_obs == 40  # shared obs_names: each cell once in the union
    align(mdata, source="rna", target="prot", method="emd", labeled=labeled)
    t = read_coupling(mdata, KEY, source="rna", target="prot")
    ids_s = mdata["rna"].obs["pair_id"].to_numpy()
    ids_t = mdata["prot"].obs["pair_id"].to_numpy()
    coo = t.tocoo()
    assert t.nnz == 40
    assert (ids_s[coo.row] == ids_t[coo.col]).all()
    res = matching_metrics(mdata, source="rna", target="prot")
    assert res["trace"] == pytest.approx(1.0)
    assert res["foscttm_barycentric"] == pytest.approx(0.0)
    assert res["foscttm"] == pytest.approx(0.0)


def test_paired_mudata_stores_on_union_rows():
    mdata = make_permuted_pair(paired_names=True)
    align(mdata, source="rna", target="prot", method="emd")
    full = mdata.obsp[KEY].toarray()
    # shared obs_names: true pairs are on the diagonal of the union space
    np.testing.assert_allclose(np.diag(full), 1.0 / 40)


def test_sinkhorn_float32_tiny_epsilon_never_all_zero():
    mdata = make_mdata(sizes_s=(30, 25), sizes_t=(28, 31), seed=3)
    # shift the latents far away so that exp(-C / eps) underflows everywhere in float32
    for m in ("rna", "prot"):
        mdata.mod[m].obsm["X_groove"] = mdata.mod[m].obsm["X_groove"] * 50 + 1e3
    # tiny eps needs ~1/eps iterations: stopping early is reported, never silent
    with pytest.warns(UserWarning, match="did not reach tol"):
        align(mdata, source="rna", target="prot", epsilon=1e-4, dtype="float32", max_iter=300)
    t = read_coupling(mdata, KEY, source="rna", target="prot").toarray()
    assert t.dtype == np.float32
    assert np.isfinite(t).all()
    assert (t.sum(1) > 0).all() and (t.sum(0) > 0).all()
    assert not mdata.uns[KEY]["diagnostics"]["converged"].any()
    # the column marginals are exact after every iteration
    _, ls, lt = coupling_and_labels(mdata)
    for lab in ("p0", "p1"):
        w = (ls == lab).sum() / len(ls)
        np.testing.assert_allclose(t[:, lt == lab].sum(0), w / (lt == lab).sum(), rtol=1e-4)
    # float32 with a small but workable eps converges to a valid coupling
    align(mdata, source="rna", target="prot", epsilon=5e-3, dtype="float32", max_iter=5000)
    assert mdata.uns[KEY]["diagnostics"]["converged"].all()
    check_labeled_valid(mdata)


def test_sinkhorn_kernel_underflow_is_rescued():
    # exp(-C / eps) is 0 in float32 for every entry (C / eps >= 200)
    g = torch.Generator().manual_seed(0)
    cost = 2.0 + torch.rand(2, 6, 5, generator=g, dtype=torch.float32)
    a = torch.full((2, 6), 1 / 6)
    b = torch.full((2, 5), 1 / 5)
    b[1, 4] = 0.0  # padding in the second problem
    b[1, :4] = 1 / 4
    res = _sinkhorn_batched(cost.clone(), a, b, 1e-2, max_iter=5000, tol=1e-6)
    plan = res.plan
    assert res.converged.all()
    assert torch.isfinite(plan).all()
    np.testing.assert_allclose(plan.sum(2).numpy(), a.numpy(), rtol=1e-5)
    np.testing.assert_allclose(plan.sum(1).numpy(), b.numpy(), rtol=1e-5, atol=1e-8)
    assert plan[1, :, 4].abs().max() == 0
    for k, m in ((0, 5), (1, 4)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # POT's reference stops at numItermax, close enough
            ref = ot.sinkhorn(
                a[k].double().numpy(),
                b[k, :m].double().numpy(),
                cost[k, :, :m].double().numpy(),
                1e-2,
                method="sinkhorn_log",
                stopThr=1e-10,
            )
        np.testing.assert_allclose(plan[k, :, :m].numpy(), ref, atol=1e-5)


def test_batching_does_not_change_the_result():
    mdata = make_mdata(sizes_s=(5, 9, 13, 2), sizes_t=(7, 3, 12, 4), seed=2)
    align(mdata, source="rna", target="prot", dtype="float64", tol=1e-9, key_added="all")
    align(
        mdata, source="rna", target="prot", dtype="float64", tol=1e-9, batch_size=1, key_added="one"
    )
    diff = abs(mdata.obsp["all"] - mdata.obsp["one"]).max()
    assert diff < 1e-9


def test_sinkhorn_matches_pot_per_label():
    mdata = make_mdata(seed=5)
    align(mdata, source="rna", target="prot", dtype="float64", tol=1e-10, max_iter=5000)
    t, ls, lt = coupling_and_labels(mdata)
    zs, zt = mdata["rna"].obsm["X_groove"], mdata["prot"].obsm["X_groove"]
    for lab in ("p0", "p1"):
        xs, xt = zs[ls == lab], zt[lt == lab]
        c = ot.dist(xs, xt)
        c /= c.mean()
        ref = ot.sinkhorn(
            np.full(len(xs), 1 / len(xs)),
            np.full(len(xt), 1 / len(xt)),
            c,
            0.05,
            stopThr=1e-12,
            numItermax=10000,
        )
        w = len(xs) / len(ls)
        np.testing.assert_allclose(t[np.ix_(ls == lab, lt == lab)], w * ref, atol=1e-9)


def test_labeled_gw_ryu_single_label_matches_pot():
    rng = np.random.default_rng(1)
    n, m = 30, 25
    xs, xt = rng.normal(size=(n, 4)), rng.normal(size=(m, 3))
    a = ad.AnnData(np.zeros((n, 1)), obs={"perturbation": ["x"] * n})
    a.var_names = ["a0"]
    a.obs_names = [f"s{i}" for i in range(n)]
    a.obsm["r"] = xs
    b = ad.AnnData(np.zeros((m, 1)), obs={"perturbation": ["x"] * m})
    b.var_names = ["b0"]
    b.obs_names = [f"t{i}" for i in range(m)]
    b.obsm["r"] = xt
    mdata = md.MuData({"a": a, "b": b})
    c1, c2 = _sqdist_np(xs), _sqdist_np(xt)
    c1, c2 = c1 / c1.mean(), c2 / c2.mean()
    p, q = np.full(n, 1 / n), np.full(m, 1 / m)
    # exact GW: conditional gradient with per-label EMD == POT's gromov_wasserstein
    align(mdata, source="a", target="b", method="gw", use_rep="r", epsilon=0.0)
    t = read_coupling(mdata, KEY, source="a", target="b").toarray()
    ref = ot.gromov.gromov_wasserstein(c1, c2, p, q, "square_loss")
    np.testing.assert_allclose(t, ref, atol=1e-7)
    # entropic GW (projected gradient) == POT's entropic_gromov_wasserstein
    align(mdata, source="a", target="b", method="gw", use_rep="r", epsilon=0.05, dtype="float64")
    t = read_coupling(mdata, KEY, source="a", target="b").toarray()
    ref = ot.gromov.entropic_gromov_wasserstein(c1, c2, p, q, "square_loss", epsilon=0.05)
    np.testing.assert_allclose(t, ref, atol=1e-5 * ref.max() * 10)


@pytest.mark.parametrize("epsilon", [0.05, 0.0])
def test_coot_single_label_matches_pot(epsilon):
    mdata = make_mdata(sizes_s=(25,), sizes_t=(20,), seed=4)
    mdata.mod["rna"].obs["perturbation"] = "x"
    mdata.mod["prot"].obs["perturbation"] = "x"
    kw = {"method": "coot", "use_rep": "X", "dtype": "float64", "epsilon": epsilon, "tol": 1e-9}
    align(mdata, source="rna", target="prot", key_added="lab", **kw)
    align(mdata, source="rna", target="prot", labeled=False, key_added="glob", **kw)
    assert abs(mdata.obsp["lab"] - mdata.obsp["glob"]).max() < 1e-12
    t = read_coupling(mdata, "lab", source="rna", target="prot").toarray()
    xs, xt = mdata["rna"].X.astype(float), mdata["prot"].X.astype(float)
    xs, xt = xs / np.sqrt((xs**2).mean()), xt / np.sqrt((xt**2).mean())
    eps = (epsilon, epsilon)
    ref, ref_f = ot.coot.co_optimal_transport(
        xs,
        xt,
        epsilon=eps,
        tol_bcd=1e-9,
        early_stopping_tol=0.0,
        tol_sinkhorn=1e-12,
        nits_ot=100000,
        method_sinkhorn="sinkhorn_log",
    )
    np.testing.assert_allclose(t, ref, atol=1e-7)
    np.testing.assert_allclose(mdata.uns["lab"]["feature_coupling"], ref_f, atol=1e-7)


def test_unbalanced_and_semi_relaxed():
    mdata = make_mdata()
    align(mdata, source="rna", target="prot", reg_m=1.0, key_added="unb")
    t = read_coupling(mdata, "unb", source="rna", target="prot").toarray()
    ls = mdata["rna"].obs["perturbation"].to_numpy()
    lt = mdata["prot"].obs["perturbation"].to_numpy()
    assert (t >= 0).all() and t[ls[:, None] != lt[None, :]].sum() == 0
    assert mdata.uns["unb"]["diagnostics"]["converged"].all()
    align(mdata, source="rna", target="prot", semi_relaxed=True, reg_m=0.5, key_added="semi")
    t = read_coupling(mdata, "semi", source="rna", target="prot").toarray()
    np.testing.assert_allclose(t.sum(1), 1.0 / t.shape[0], rtol=1e-5)
    align(mdata, source="rna", target="prot", method="emd", semi_relaxed=True, key_added="nn")
    t = read_coupling(mdata, "nn", source="rna", target="prot")
    assert t.nnz == mdata["rna"].n_obs  # each source cell goes to one target
    align(mdata, source="rna", target="prot", method="emd", reg_m=1.0, key_added="emdu")
    t = read_coupling(mdata, "emdu", source="rna", target="prot").toarray()
    assert (t >= 0).all() and t[ls[:, None] != lt[None, :]].sum() == 0


def test_labels_in_one_modality_warn_and_stay_unmatched():
    mdata = make_mdata(extra_source_label="only_rna", extra_target_label="only_prot")
    before = set(mdata.uns.keys())
    with pytest.warns(UserWarning, match="only_rna.*only_prot"):
        align(mdata, source="rna", target="prot")
    assert KEY not in before
    t, ls, lt = coupling_and_labels(mdata)
    assert t[ls == "only_rna"].sum() == 0
    assert t[:, lt == "only_prot"].sum() == 0
    n_matched = (ls != "only_rna").sum()
    np.testing.assert_allclose(t[ls != "only_rna"].sum(1), 1.0 / n_matched, atol=1e-6)
    assert list(mdata.uns[KEY]["unmatched_source_labels"]) == ["only_rna"]
    assert list(mdata.uns[KEY]["unmatched_target_labels"]) == ["only_prot"]


def test_missing_labels_warn():
    mdata = make_mdata()
    obs = mdata.mod["rna"].obs
    obs["perturbation"] = obs["perturbation"].astype(object)
    obs.iloc[:3, obs.columns.get_loc("perturbation")] = np.nan
    with pytest.warns(UserWarning, match="no `perturbation` label"):
        align(mdata, source="rna", target="prot")
    t = read_coupling(mdata, KEY, source="rna", target="prot")
    assert (np.asarray(t.sum(1)).ravel()[:3] == 0).all()


def _snapshot(mdata):
    return set(mdata.obsp.keys()), set(mdata.uns.keys()), mdata.n_obs


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"method": "magic"}, ValueError, "method"),
        ({"use_rep": "X_missing"}, KeyError, "use_rep"),
        ({"group_key": "nope"}, KeyError, "group_key"),
        ({"source": "atac"}, KeyError, "source"),
        ({"method": "sinkhorn", "epsilon": 0.0}, ValueError, "epsilon"),
        ({"method": "gw", "reg_m": 1.0}, ValueError, "reg_m"),
        ({"gw_form": "other", "method": "gw"}, ValueError, "gw_form"),
        ({"use_rep": "X"}, ValueError, "shared space"),  # 7 vs 6 features for sinkhorn
        ({"tol": -1.0}, ValueError, "tol"),
        ({"prune": 1.5}, ValueError, "prune"),
    ],
)
def test_errors_leave_mdata_unchanged(kwargs, exc, match):
    mdata = make_mdata()
    before = _snapshot(mdata)
    args = {"source": "rna", "target": "prot", **kwargs}
    with pytest.raises(exc, match=match):
        align(mdata, **args)
    assert _snapshot(mdata) == before


def test_no_shared_label_is_an_error():
    mdata = make_mdata()
    mdata.mod["prot"].obs["perturbation"] = "other"
    with pytest.raises(ValueError, match="No `perturbation` label"):
        align(mdata, source="rna", target="prot")


def test_copy_and_h5mu_roundtrip(tmp_path):
    mdata = make_mdata()
    out = align(mdata, source="rna", target="prot", copy=True)
    assert KEY not in mdata.obsp and KEY not in mdata.uns
    assert KEY in out.obsp
    path = tmp_path / "c.h5mu"
    out.write(path)
    back = md.read_h5mu(path)
    assert abs(back.obsp[KEY] - out.obsp[KEY]).max() == 0
    diag = back.uns[KEY]["diagnostics"]
    assert list(diag["label"]) == ["p0", "p1", "p2"]
    assert back.uns[KEY]["params"]["method"] == "sinkhorn"
    t = read_coupling(back, KEY, source="prot", target="rna")  # transposed read
    assert t.shape == (back["prot"].n_obs, back["rna"].n_obs)


def test_modality_order_does_not_matter():
    mdata = make_mdata(seed=7)
    flipped = md.MuData({"prot": mdata["prot"].copy(), "rna": mdata["rna"].copy()})
    align(mdata, source="rna", target="prot", dtype="float64")
    align(flipped, source="rna", target="prot", dtype="float64")
    t1 = read_coupling(mdata, KEY, source="rna", target="prot")
    t2 = read_coupling(flipped, KEY, source="rna", target="prot")
    assert abs(t1 - t2).max() < 1e-12


def test_prune_drops_small_entries():
    mdata = make_mdata()
    align(mdata, source="rna", target="prot", key_added="full")
    align(mdata, source="rna", target="prot", prune=0.1, key_added="pruned")
    assert mdata.obsp["pruned"].nnz < mdata.obsp["full"].nnz
    dropped = mdata.uns["pruned"]["diagnostics"]["dropped_mass"]
    assert (dropped >= 0).all()
    assert mdata.obsp["pruned"].sum() == pytest.approx(1.0 - dropped.sum(), abs=1e-6)


def test_x_pca_on_the_fly_for_gw():
    mdata = make_mdata()
    align(mdata, source="rna", target="prot", method="gw", use_rep="X_pca", n_pcs=3)
    check_labeled_valid(mdata)
    assert "X_pca" not in mdata["rna"].obsm  # computed on the fly, not stored


@pytest.mark.parametrize("epsilon", [0.05, 0.0])
def test_fgw_per_label_matches_pot(epsilon):
    mdata = make_mdata(sizes_s=(15, 12), sizes_t=(11, 14), seed=8)
    align(mdata, source="rna", target="prot", method="fgw", epsilon=epsilon, dtype="float64")
    t, ls, lt = coupling_and_labels(mdata)
    zs, zt = mdata["rna"].obsm["X_groove"], mdata["prot"].obsm["X_groove"]
    for lab, w in (("p0", 15 / 27), ("p1", 12 / 27)):
        xs, xt = zs[ls == lab], zt[lt == lab]
        c1, c2 = _sqdist_np(xs), _sqdist_np(xt)
        mu = xs.mean(0)
        m = ot.dist(xs - mu, xt - mu)
        p, q = np.full(len(xs), 1 / len(xs)), np.full(len(xt), 1 / len(xt))
        args = (m / m.mean(), c1 / c1.mean(), c2 / c2.mean(), p, q, "square_loss")
        if epsilon > 0:
            ref = ot.gromov.entropic_fused_gromov_wasserstein(
                *args, epsilon=epsilon, alpha=0.5, tol=1e-12, max_iter=2000
            )
            atol = 1e-4 * ref.max()
        else:
            ref = ot.gromov.fused_gromov_wasserstein(*args, alpha=0.5)
            atol = 1e-8
        np.testing.assert_allclose(t[np.ix_(ls == lab, lt == lab)] / w, ref, atol=atol)


def test_semi_relaxed_gw_uses_pot():
    mdata = make_mdata()
    align(mdata, source="rna", target="prot", method="gw", gw_form="per_label", semi_relaxed=True)
    t = read_coupling(mdata, KEY, source="rna", target="prot").toarray()
    np.testing.assert_allclose(t.sum(1), 1.0 / t.shape[0], atol=1e-6)


# ------------------------------------------------------------------- bad input (issue 6)
@bad_input
def test_align_unknown_modality(paired_test):
    test = latents_and_coupling(paired_test)
    fails(
        test,
        lambda: gs.tl.align(test, source="rna", target="atac"),
        KeyError,
        r"`target`='atac' is not a modality of `mdata`",
    )


@bad_input
def test_align_missing_rep(paired_test):
    test = paired_test.copy()
    fails(
        test,
        lambda: gs.tl.align(test, source="rna", target="protein"),
        KeyError,
        r"`use_rep`='X_groove' is not in mdata\.mod\['rna'\]\.obsm",
    )


@bad_input
def test_align_missing_group_key(paired_test):
    test = latents_and_coupling(paired_test)
    fails(
        test,
        lambda: gs.tl.align(test, source="rna", target="protein", group_key="pert"),
        KeyError,
        r"`group_key`='pert' is not a column",
    )


@bad_input
def test_align_nan_rep(paired_test):
    test = latents_and_coupling(paired_test)
    test.mod["rna"].obsm["X_groove"][0, 0] = np.nan
    fails(
        test,
        lambda: gs.tl.align(test, source="rna", target="protein"),
        ValueError,
        r"`use_rep`='X_groove' of modality 'rna' contains NaN or inf",
    )


@bad_input
def test_align_labels_absent_from_one_modality(paired_test):
    test = latents_and_coupling(paired_test)
    rna = test.mod["rna"]
    lab = rna.obs["perturbation"].astype(str).to_numpy().copy()
    lab[lab == lab[0]] = "only_rna"
    rna.obs["perturbation"] = lab
    with pytest.warns(UserWarning, match="only_rna"):
        gs.tl.align(test, source="rna", target="protein", method="sinkhorn")
    t = test.obsp["groove_coupling"]
    assert np.isclose(t.sum(), 1.0, atol=1e-3)


@bad_input
def test_align_empty_selection(paired_test):
    test = latents_and_coupling(paired_test)
    test.mod["rna"] = test.mod["rna"][:0].copy()
    test.update()
    fails(
        test,
        lambda: gs.tl.align(test, source="rna", target="protein"),
        ValueError,
        "`source`='rna' has no cells",
    )


@bad_input
def test_align_on_a_view_works_on_the_view(paired_test):
    # writing the coupling materialises the view (anndata/mudata semantics); the parent is
    # left unchanged
    test = latents_and_coupling(paired_test)
    before = snapshot(test)
    view = test[test.obs_names[:10]]
    gs.tl.align(view, source="rna", target="protein")
    assert view.obsp["groove_coupling"].shape == (10, 10)
    assert np.isclose(view.obsp["groove_coupling"].sum(), 1.0, atol=1e-3)
    assert_same(before, snapshot(test))


# --------------------------------------------------------------------------- top_k
@pytest.mark.parametrize(("method", "kwargs"), [("sinkhorn", {}), ("gw", {}), ("uniform", {})])
def test_top_k_keeps_the_largest_entries_of_each_row(method, kwargs):
    mdata = make_mdata(sizes_s=(30, 25, 12), sizes_t=(28, 40, 9))
    align(mdata, source="rna", target="prot", method=method, key_added="full", **kwargs)
    align(mdata, source="rna", target="prot", method=method, top_k=4, key_added="k4", **kwargs)
    full = read_coupling(mdata, "full", source="rna", target="prot").toarray()
    top = read_coupling(mdata, "k4", source="rna", target="prot").toarray()
    # at most 4 entries per row (label with 9 targets keeps 4 of 9)
    assert (np.count_nonzero(top, axis=1) <= 4).all()
    assert (np.count_nonzero(top, axis=1) == 4).all() or method == "uniform"
    # every kept entry equals the full coupling's entry, and is >= every dropped one of its row
    kept = top > 0
    np.testing.assert_allclose(top[kept], full[kept], rtol=1e-6)
    for i in range(full.shape[0]):
        dropped = full[i][~kept[i]]
        if dropped.size and kept[i].any():
            assert dropped.max() <= top[i][kept[i]].min() * (1 + 1e-6)
    # the reported dropped mass is what is missing
    uns = mdata.uns["k4"]
    assert uns["params"]["top_k"] == 4
    missing = full.sum() - top.sum()
    assert uns["dropped_mass"] == pytest.approx(missing, abs=1e-6)
    assert uns["diagnostics"]["dropped_mass"].sum() == pytest.approx(missing, abs=1e-6)
    assert missing > 0.01


def test_top_k_larger_than_blocks_is_the_full_coupling():
    mdata = make_mdata()
    align(mdata, source="rna", target="prot", key_added="full")
    align(mdata, source="rna", target="prot", top_k=1000, key_added="big")
    assert abs(mdata.obsp["full"] - mdata.obsp["big"]).max() == 0
    assert mdata.uns["big"]["dropped_mass"] == pytest.approx(0.0, abs=1e-6)


def test_top_k_one_with_emd_keeps_the_permutation():
    mdata = make_mdata(sizes_s=(10, 10), sizes_t=(10, 10))
    align(mdata, source="rna", target="prot", method="emd", top_k=1)
    t = read_coupling(mdata, KEY, source="rna", target="prot")
    assert sp.isspmatrix_csr(t) or sp.issparse(t)
    assert (np.diff(t.tocsr().indptr) == 1).all()
    # equal label sizes: EMD is a permutation, top-1 keeps all of it
    assert t.sum() == pytest.approx(1.0, abs=1e-6)
    assert mdata.uns[KEY]["dropped_mass"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "5"])
def test_top_k_must_be_a_positive_integer(bad):
    mdata = make_mdata()
    with pytest.raises(ValueError, match="top_k"):
        align(mdata, source="rna", target="prot", top_k=bad)
    assert KEY not in mdata.obsp


def test_top_k_coupling_works_with_matching_metrics():
    mdata = make_permuted_pair(n=60, n_labels=3)
    align(mdata, source="rna", target="prot", top_k=3, tol=1e-3)
    out = matching_metrics(mdata, source="rna", target="prot", coupling_key=KEY)
    assert out["trace"] > 0.9  # the permuted copy is recovered through the kept entries


# --------------------------------------------------------------------------- memory check
def test_memory_check_counts_only_the_top_k_entries(monkeypatch):
    """A coupling too large for the machine is refused up front, unless top_k makes it fit."""
    from groove_sc.ot import LabelBlock
    from groove_sc.tl import _align

    monkeypatch.setattr(_align, "_available_memory", lambda: 4 * 2**30)  # a 4 GiB machine
    blocks = [
        LabelBlock(f"p{i}", np.arange(1000), np.arange(1000), 1e-3) for i in range(1000)
    ]  # 1e6 x 1e6 cells in 1000 labels: 1e9 entries, ~7.5 GiB stored
    opts = _align._validate(make_mdata(), source="rna", target="prot", **_defaults())
    with pytest.raises(MemoryError, match="top_k"):
        _align._check_memory(blocks, opts)
    opts.top_k = 50
    _align._check_memory(blocks, opts)  # 5e7 entries fit


def _defaults():
    import inspect

    sig = inspect.signature(align)
    skip = {"mdata", "source", "target", "key_added", "copy"}
    out = {k: p.default for k, p in sig.parameters.items() if k not in skip}
    out["group_key"] = "perturbation"  # align resolves its default before validating
    return out
