"""Bad input and edge cases over every public entry point (issue 6).

Each case either works (and its result is checked) or raises an error whose message names the
argument and what was expected; a failing call never changes the user's MuData.
"""

from __future__ import annotations

import copy
import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from mudata import MuData
from scipy import sparse

import groove_sc as gs
from groove_sc.model import GROOVE
from tests._shared import MODEL, QUIET
from tests._shared import TRAIN as SHARED_TRAIN

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

TRAIN = {"max_epochs": 1, **SHARED_TRAIN}


# ------------------------------------------------------------------------------------ helpers
def _adata(n_per_label: dict[str, int], n_vars: int, prefix: str, seed: int, dtype=np.float32):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([[lab] * n for lab, n in n_per_label.items()])
    x = rng.poisson(3.0, size=(len(labels), n_vars)).astype(dtype)
    a = ad.AnnData(x)
    a.obs_names = [f"{prefix}{i}" for i in range(len(labels))]
    a.var_names = [f"{prefix}_f{j}" for j in range(n_vars)]
    a.obs["perturbation"] = pd.Categorical(labels)
    return a


def make_mdata(
    labels_a=None, labels_b=None, dtype=np.float32, sparse_x=False, same_names=False
) -> MuData:
    labels_a = labels_a or {"p0": 20, "p1": 20, "p2": 20}
    labels_b = labels_b or {"p0": 20, "p1": 20, "p2": 20}
    a = _adata(labels_a, 8, "a", 0, dtype)
    b = _adata(labels_b, 6, "b", 1, dtype)
    if same_names:
        b.obs_names = [f"a{i}" for i in range(b.n_obs)]
    if sparse_x:
        a.X = sparse.csr_matrix(a.X)
        b.X = sparse.csr_matrix(b.X)
    return MuData({"rna": a, "protein": b})


def snapshot(mdata: MuData) -> dict:
    """What a failing call must leave unchanged."""

    def arr(x):
        return x.toarray() if sparse.issparse(x) else (None if x is None else np.asarray(x))

    def one(a):
        return {
            "obs": a.obs.copy(deep=True),
            "var": a.var.copy(deep=True),
            "obs_names": list(a.obs_names),
            "X": None if a.X is None else arr(a.X).copy(),
            "layers": {k: arr(v).copy() for k, v in a.layers.items()},
            "obsm": {k: copy.deepcopy(np.asarray(v)) for k, v in a.obsm.items()},
            "obsp": {k: arr(v).copy() for k, v in a.obsp.items()},
            "uns": sorted(a.uns.keys()),
        }

    snap = {m: one(a) for m, a in mdata.mod.items()}
    snap["_obs"] = mdata.obs.copy(deep=True)
    snap["_obsm"] = {k: copy.deepcopy(np.asarray(v)) for k, v in mdata.obsm.items()}
    snap["_obsp"] = {k: arr(v).copy() for k, v in mdata.obsp.items()}
    snap["_uns"] = sorted(mdata.uns.keys())
    return snap


def assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key in before:
        b, a = before[key], after[key]
        if isinstance(b, pd.DataFrame):
            pd.testing.assert_frame_equal(b, a)
        elif isinstance(b, dict):
            assert b.keys() == a.keys(), key
            for k in b:
                if isinstance(b[k], pd.DataFrame):
                    pd.testing.assert_frame_equal(b[k], a[k])
                elif isinstance(b[k], dict):
                    assert b[k].keys() == a[k].keys(), (key, k)
                    for kk in b[k]:
                        np.testing.assert_array_equal(b[k][kk], a[k][kk])
                elif b[k] is None:
                    assert a[k] is None
                elif isinstance(b[k], list):
                    assert b[k] == a[k], (key, k)
                else:
                    np.testing.assert_array_equal(b[k], a[k])
        else:
            assert b == a, key


def fails(mdata: MuData, call, exc, match: str) -> None:
    """``call()`` raises ``exc`` matching ``match`` and leaves ``mdata`` unchanged."""
    before = snapshot(mdata)
    with pytest.raises(exc, match=match) as info:
        call()
    assert type(info.value) is not IndexError
    if os.environ.get("GROOVE_SHOW_ERRORS"):
        print(f"\n[{type(info.value).__name__}] {info.value}")
    assert_same(before, snapshot(mdata))


def fit(mdata: MuData, **setup) -> GROOVE:
    GROOVE.setup_mudata(mdata, perturbation_key="perturbation", **setup)
    model = GROOVE(mdata, **MODEL)
    model.train(**TRAIN)
    return model


@pytest.fixture(scope="module")
def trained():
    mdata = make_mdata()
    return fit(mdata)


@pytest.fixture(scope="module")
def paired():
    """Jointly measured test data (paired) with latents and a coupling."""
    sim = gs.datasets.simulate(
        n_perturbations=3, cells_per_perturbation=20, n_features=(8, 6), seed=0
    )
    train, test = gs.data.split_weakly_paired(sim, "perturbation", test_size=0.5, seed=0)
    return train, test


@pytest.fixture
def ctx(trained, paired):
    """What the cases share: a model fitted on bad-input-free data and paired test data."""
    return {"trained": trained, "paired": paired}


def _latents_and_coupling(test: MuData) -> MuData:
    test = test.copy()
    for m in test.mod:
        test.mod[m].obsm["X_groove"] = np.asarray(test.mod[m].X[:, :4], dtype=np.float32)
    gs.tl.align(test, source="rna", target="protein", method="uniform")
    return test


# ------------------------------------------------------------------------------------ cases
def test_setup_unknown_modality(ctx):
    m = make_mdata()
    fails(m, lambda: GROOVE.setup_mudata(m, modalities=["rna", "atac"]), KeyError, "modalities")


def test_setup_one_modality_listed_twice(ctx):
    m = make_mdata()
    fails(m, lambda: GROOVE.setup_mudata(m, modalities=["rna", "rna"]), ValueError, "different")


def test_setup_missing_label_column(ctx):
    m = make_mdata()
    fails(
        m,
        lambda: GROOVE.setup_mudata(m, perturbation_key="perturbaton"),
        KeyError,
        "perturbation_key.*perturbaton.*not a column",
    )


def test_setup_label_column_in_one_modality(ctx):
    m = make_mdata()
    m.mod["protein"].obs = m.mod["protein"].obs.rename(columns={"perturbation": "pert"})
    fails(m, lambda: GROOVE.setup_mudata(m), KeyError, "perturbation_key.*protein")


def test_setup_missing_labels_nan(ctx):
    m = make_mdata()
    col = m.mod["rna"].obs["perturbation"].astype(object)
    col.iloc[0] = np.nan
    m.mod["rna"].obs["perturbation"] = col
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, "missing labels")


def test_setup_no_shared_label(ctx):
    m = make_mdata({"x": 20, "y": 20}, {"p0": 20, "p1": 20})
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, "occurs in both")


def test_setup_labels_absent_from_one_modality_warns_and_trains(ctx):
    m = make_mdata({"p0": 20, "p1": 20, "only_a": 20}, {"p0": 20, "p1": 20, "only_b": 20})
    with pytest.warns(UserWarning, match="only in modality 'rna'.*only_a"):
        GROOVE.setup_mudata(m)
    model = GROOVE(m, **MODEL)
    model.train(**TRAIN)
    z = model.get_latent_representation()
    assert z["rna"].shape == (60, 4) and np.isfinite(z["rna"]).all()


def test_label_with_one_cell(ctx):
    m = make_mdata({"p0": 20, "p1": 20, "single": 1}, {"p0": 20, "p1": 20, "single": 1})
    model = fit(m)
    z = model.get_latent_representation()
    assert z["rna"].shape == (41, 4) and np.isfinite(z["protein"]).all()


def test_extremely_imbalanced_labels(ctx):
    m = make_mdata({"p0": 100, "p1": 2, "p2": 2}, {"p0": 3, "p1": 40, "p2": 2})
    model = fit(m)
    z = model.get_latent_representation()
    assert z["rna"].shape == (104, 4) and np.isfinite(z["rna"]).all()


def test_setup_nan_in_x(ctx):
    m = make_mdata()
    m.mod["rna"].X[3, 2] = np.nan
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, r"mod\['rna'\]\.X.*NaN")


def test_setup_inf_in_layer(ctx):
    m = make_mdata()
    lay = m.mod["protein"].X.copy()
    lay[0, 0] = np.inf
    m.mod["protein"].layers["counts"] = lay
    fails(
        m,
        lambda: GROOVE.setup_mudata(m, layers={"protein": "counts"}),
        ValueError,
        r"mod\['protein'\]\.layers\['counts'\].*NaN or infinite",
    )


def test_setup_unknown_layer(ctx):
    m = make_mdata()
    fails(m, lambda: GROOVE.setup_mudata(m, layers="raw"), KeyError, "layers.*raw")


def test_setup_string_dtype(ctx):
    m = make_mdata()
    m.mod["rna"].X = m.mod["rna"].X.astype(str)
    fails(m, lambda: GROOVE.setup_mudata(m), TypeError, "numeric")


def test_nb_negative_values(ctx):
    m = make_mdata()
    m.mod["rna"].X[0, 0] = -1.0
    GROOVE.setup_mudata(m)
    fails(m, lambda: GROOVE(m, likelihood="nb", **MODEL), ValueError, "negative.*likelihood='nb'")


def test_unknown_likelihood(ctx):
    m = make_mdata()
    GROOVE.setup_mudata(m)
    fails(m, lambda: GROOVE(m, likelihood="poisson"), ValueError, "likelihood")


def test_likelihood_dict_missing_modality(ctx):
    m = make_mdata()
    GROOVE.setup_mudata(m)
    fails(m, lambda: GROOVE(m, likelihood={"rna": "nb"}), KeyError, "likelihood.*protein")


def test_nb_counts_train(ctx):
    m = make_mdata(dtype=np.int64)
    GROOVE.setup_mudata(m)
    model = GROOVE(m, likelihood="nb", **MODEL)
    model.train(**TRAIN)
    out = model.translate(source="rna", target="protein")
    assert out.shape == (60, 6) and np.isfinite(out.X).all() and (out.X >= 0).all()


def test_all_zero_cells_and_features(ctx):
    m = make_mdata()
    m.mod["rna"].X[:5] = 0
    m.mod["protein"].X[:, 0] = 0
    model = fit(m)
    z = model.get_latent_representation()
    assert np.isfinite(z["rna"]).all() and np.isfinite(z["protein"]).all()
    out = model.translate(source="protein", target="rna")
    assert out.shape == (60, 8) and np.isfinite(out.X).all()


def test_all_zero_features_nb(ctx):
    m = make_mdata()
    m.mod["rna"].X[:, :2] = 0
    m.mod["rna"].X[:3] = 0
    GROOVE.setup_mudata(m)
    model = GROOVE(m, likelihood="nb", **MODEL)
    model.train(**TRAIN)
    assert np.isfinite(model.get_latent_representation(modality="rna")).all()


def test_dtype_float64(ctx):
    _train_dtype(np.float64, sparse_x=False)


def test_dtype_int32(ctx):
    _train_dtype(np.int32, sparse_x=False)


def test_sparse_float32(ctx):
    _train_dtype(np.float32, sparse_x=True)


def test_sparse_float64(ctx):
    _train_dtype(np.float64, sparse_x=True)


def _train_dtype(dtype, sparse_x):
    m = make_mdata(dtype=dtype, sparse_x=sparse_x)
    model = fit(m)
    z = model.get_latent_representation(m)
    assert z["rna"].dtype == np.float32 and z["rna"].shape == (60, 4)
    assert np.isfinite(z["rna"]).all()


def test_sparse_and_dense_give_same_latent(ctx):
    model = ctx["trained"]
    dense = make_mdata()
    sp = make_mdata(sparse_x=True)
    za = model.get_latent_representation(dense)
    zb = model.get_latent_representation(sp)
    np.testing.assert_allclose(za["rna"], zb["rna"], rtol=1e-5, atol=1e-6)


def test_setup_mudata_view(ctx):
    m = make_mdata()
    view = m[m.obs_names[:30]]
    fails(m, lambda: GROOVE.setup_mudata(view), ValueError, "view")


def test_setup_modality_view(ctx):
    m = make_mdata()
    a = make_mdata()
    m.mod["rna"] = a.mod["rna"][:30]
    m.update()
    # the case needs a modality that is an AnnData view (mudata keeps it as given)
    assert m.mod["rna"].is_view
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, "view")


def test_latent_of_a_view(ctx):
    m = make_mdata()
    view = m[m.obs_names[:30]]
    fails(m, lambda: gs.tl.latent(ctx["trained"], view), ValueError, "view.*copy")


def test_colliding_obs_names_refused(ctx):
    m = make_mdata(same_names=True)
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, "obs_names occur in both.*from_anndatas")


def test_from_anndatas_prefixes_colliding_names(ctx):
    m = make_mdata(same_names=True)
    with pytest.warns(UserWarning):
        fixed = gs.data.from_anndatas(dict(m.mod))
    assert fixed.n_obs == m.mod["rna"].n_obs + m.mod["protein"].n_obs
    model = fit(fixed)
    assert model.get_latent_representation(modality="rna").shape == (60, 4)


def test_feature_order_changed(ctx):
    model = ctx["trained"]
    m = make_mdata()
    ref = model.get_latent_representation(m)
    perm = m.copy()
    perm.mod["rna"] = perm.mod["rna"][:, ::-1].copy()
    perm.update()
    z = model.get_latent_representation(perm)
    np.testing.assert_allclose(z["rna"], ref["rna"], rtol=1e-5, atol=1e-6)


def test_feature_missing_in_new_data(ctx):
    model = ctx["trained"]
    m = make_mdata()
    m.mod["rna"] = m.mod["rna"][:, 1:].copy()
    m.update()
    fails(m, lambda: model.get_latent_representation(m), ValueError, "features.*missing")


def test_latent_unknown_modality(ctx):
    model = ctx["trained"]
    fails(model.adata, lambda: model.get_latent_representation(modality="atac"), KeyError, "atac")


def test_latent_new_data_missing_modality(ctx):
    model = ctx["trained"]
    m = MuData({"rna": make_mdata().mod["rna"], "other": make_mdata().mod["protein"]})
    # a query with one of the model's modalities is mapped; asking for the absent one fails
    assert list(model.get_latent_representation(m)) == ["rna"]
    fails(m, lambda: model.get_latent_representation(m, modality="protein"), KeyError, "protein")
    none = MuData({"atac": make_mdata().mod["rna"]})
    fails(none, lambda: model.get_latent_representation(none), KeyError, "none of the model")


def test_latent_new_data_nan(ctx):
    model = ctx["trained"]
    m = make_mdata()
    m.mod["protein"].X[1, 1] = np.nan
    fails(m, lambda: model.get_latent_representation(m), ValueError, "NaN")


def test_latent_new_data_unseen_labels(ctx):
    model = ctx["trained"]
    m = make_mdata({"new": 10}, {"new2": 5})
    z = model.get_latent_representation(m)
    assert z["rna"].shape == (10, 4) and z["protein"].shape == (5, 4)


def test_translate_unknown_modality(ctx):
    model = ctx["trained"]
    fails(model.adata, lambda: model.translate(source="rna", target="atac"), KeyError, "atac")


def test_translate_same_modality(ctx):
    model = ctx["trained"]
    fails(model.adata, lambda: model.translate(source="rna", target="rna"), ValueError, "differ")


def test_train_zero_epochs(ctx):
    model = ctx["trained"]
    fails(model.adata, lambda: model.train(max_epochs=0, **QUIET), ValueError, "max_epochs")


def test_empty_modality(ctx):
    m = make_mdata()
    m.mod["rna"] = m.mod["rna"][:0].copy()
    m.update()
    fails(m, lambda: GROOVE.setup_mudata(m), ValueError, "empty|occurs in both")


def test_latent_empty_selection(ctx):
    model = ctx["trained"]
    m = make_mdata()
    m.mod["rna"] = m.mod["rna"][:0].copy()
    m.update()
    z = model.get_latent_representation(m)
    assert z["rna"].shape == (0, 4)
    assert z["protein"].shape == (60, 4)


def test_tl_latent_writes_union(ctx):
    model = ctx["trained"]
    m = make_mdata()
    gs.tl.latent(model, m)
    assert m.obsm["X_groove"].shape == (120, 4)
    assert np.isfinite(m.obsm["X_groove"]).all()


def test_tl_latent_not_mudata(ctx):
    with pytest.raises(TypeError, match=r"`mdata` must be a mudata\.MuData"):
        gs.tl.latent(ctx["trained"], make_mdata().mod["rna"])


def test_align_unknown_modality(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    fails(
        test,
        lambda: gs.tl.align(test, source="rna", target="atac"),
        KeyError,
        r"`target`='atac' is not a modality of `mdata`",
    )


def test_align_missing_rep(ctx):
    test = ctx["paired"][1].copy()
    fails(
        test,
        lambda: gs.tl.align(test, source="rna", target="protein"),
        KeyError,
        r"`use_rep`='X_groove' is not in mdata\.mod\['rna'\]\.obsm",
    )


def test_align_missing_group_key(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    fails(
        test,
        lambda: gs.tl.align(test, source="rna", target="protein", group_key="pert"),
        KeyError,
        r"`group_key`='pert' is not a column",
    )


def test_align_nan_rep(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    test.mod["rna"].obsm["X_groove"][0, 0] = np.nan
    fails(
        test,
        lambda: gs.tl.align(test, source="rna", target="protein"),
        ValueError,
        r"`use_rep`='X_groove' of modality 'rna' contains NaN or inf",
    )


def test_align_labels_absent_from_one_modality(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    rna = test.mod["rna"]
    lab = rna.obs["perturbation"].astype(str).to_numpy().copy()
    lab[lab == lab[0]] = "only_rna"
    rna.obs["perturbation"] = lab
    with pytest.warns(UserWarning, match="only_rna"):
        gs.tl.align(test, source="rna", target="protein", method="sinkhorn")
    t = test.obsp["groove_coupling"]
    assert np.isclose(t.sum(), 1.0, atol=1e-3)


def test_align_empty_selection(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    test.mod["rna"] = test.mod["rna"][:0].copy()
    test.update()
    fails(
        test,
        lambda: gs.tl.align(test, source="rna", target="protein"),
        ValueError,
        "`source`='rna' has no cells",
    )


def test_impute_unknown_coupling_key(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    fails(
        test,
        lambda: gs.tl.impute(test, coupling_key="nope", source="rna", target="protein"),
        KeyError,
        r"No coupling 'nope' in mdata\.obsp",
    )


def test_impute_unknown_layer(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    fails(
        test,
        lambda: gs.tl.impute(test, source="rna", target="protein", layer="raw"),
        KeyError,
        "layer.*raw",
    )


def test_impute_unknown_modality(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    fails(
        test,
        lambda: gs.tl.impute(test, source="rna", target="atac"),
        KeyError,
        r"`target`='atac' is not a modality",
    )


def test_impute_works(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    gs.tl.impute(test, source="rna", target="protein")
    out = test.mod["rna"].obsm["protein_imputed"]
    assert out.shape == (test.mod["rna"].n_obs, test.mod["protein"].n_vars)
    assert np.isfinite(out.to_numpy()).all()


def test_matching_metrics_unknown_coupling_key(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    fails(
        test,
        lambda: gs.tl.matching_metrics(test, coupling_key="nope", source="rna", target="protein"),
        KeyError,
        "nope",
    )


def test_matching_metrics_unknown_truth_key(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    fails(
        test,
        lambda: gs.tl.matching_metrics(test, source="rna", target="protein", truth_key="cell_id"),
        KeyError,
        r"`truth_key`='cell_id' is not a column",
    )


def test_matching_metrics_works(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    res = gs.tl.matching_metrics(test, source="rna", target="protein")
    assert all(np.isfinite(v) or np.isnan(v) for v in res.values())
    assert 0.0 <= res["foscttm"] <= 1.0 if "foscttm" in res else True


def test_imputation_metrics_shape_mismatch(ctx):
    with pytest.raises(ValueError, match="shape"):
        gs.tl.imputation_metrics(np.ones((5, 3)), np.ones((4, 3)))


def test_imputation_metrics_nan_rows_skipped(ctx):
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(10, 5))
    pred = obs + 0.1 * rng.normal(size=(10, 5))
    pred[0] = np.nan
    res = gs.tl.imputation_metrics(pred, obs)
    assert res["n_cells_skipped"] == 1
    assert np.isfinite(res["pearson_cell"])


def test_foscttm_shape_mismatch(ctx):
    with pytest.raises(ValueError, match=r"`x` \(5, 2\) and `y` \(4, 2\) must have the same shape"):
        gs.tl.foscttm(np.ones((5, 2)), np.ones((4, 2)))


def test_label_transfer_length_mismatch(ctx):
    with pytest.raises(
        ValueError, match=r"`labels_source` has 4 entries but `x_source` has 5 rows"
    ):
        gs.tl.label_transfer_accuracy(np.ones((5, 2)), ["a"] * 4, np.ones((3, 2)), ["a"] * 3)


def test_split_missing_label_key(ctx):
    sim = gs.datasets.simulate(n_perturbations=2, cells_per_perturbation=10, seed=0)
    fails(sim, lambda: gs.data.split_weakly_paired(sim, "pert"), KeyError, "pert")


def test_split_unknown_modality(ctx):
    sim = gs.datasets.simulate(n_perturbations=2, cells_per_perturbation=10, seed=0)
    fails(
        sim,
        lambda: gs.data.split_weakly_paired(sim, modalities=["rna", "atac"]),
        ValueError,
        r"`modalities` contains unknown modality names \['atac'\]",
    )


def test_split_bad_test_size(ctx):
    sim = gs.datasets.simulate(n_perturbations=2, cells_per_perturbation=10, seed=0)
    fails(sim, lambda: gs.data.split_weakly_paired(sim, test_size=1.5), ValueError, "test_size")


def test_split_label_with_one_cell(ctx):
    sim = gs.datasets.simulate(n_perturbations=2, cells_per_perturbation=[10, 1], seed=0)
    train, test = gs.data.split_weakly_paired(sim, test_size=0.3, seed=0)
    n = sum(x.n_obs for x in (train.mod["rna"], test.mod["rna"]))
    assert n <= sim.mod["rna"].n_obs


def test_simulate_bad_arguments(ctx):
    with pytest.raises(ValueError, match="n_perturbations"):
        gs.datasets.simulate(n_perturbations=0)
    with pytest.raises(ValueError, match="shared_fraction"):
        gs.datasets.simulate(shared_fraction=1.5)


def test_simulate_counts_nb(ctx):
    sim = gs.datasets.simulate(
        n_perturbations=2, cells_per_perturbation=5, likelihood=("nb", "gaussian"), seed=0
    )
    x = sim.mod["rna"].X
    x = x.toarray() if sparse.issparse(x) else x
    assert (x >= 0).all() and np.allclose(x, np.round(x))


def test_setup_duplicate_obs_names_within_a_modality(ctx):
    m = make_mdata()
    m.mod["rna"].obs_names = ["x"] * m.mod["rna"].n_obs
    fails(
        m,
        lambda: GROOVE.setup_mudata(m),
        ValueError,
        r"`mdata\.mod\['rna'\]\.obs_names` are not unique.*obs_names_make_unique",
    )


def test_setup_missing_batch_key(ctx):
    m = make_mdata()
    fails(
        m,
        lambda: GROOVE.setup_mudata(m, batch_key="batch"),
        KeyError,
        r"`batch_key`='batch' is not a column of mdata\.mod\['rna'\]\.obs",
    )


def test_batch_unseen_at_inference(ctx):
    m = make_mdata()
    for mod in m.mod.values():
        mod.obs["batch"] = np.where(np.arange(mod.n_obs) % 2, "b1", "b2")
    model = fit(m, batch_key="batch")
    new = make_mdata()
    for mod in new.mod.values():
        mod.obs["batch"] = "b3"
    fails(new, lambda: model.get_latent_representation(new), ValueError, "unseen.*b3")


def test_train_bad_sizes(ctx):
    model = ctx["trained"]
    for kw, match in (
        ({"batch_size": 0}, r"`batch_size` must be an integer >= 1, got 0"),
        ({"cells_per_label": 0}, r"`cells_per_label` must be an integer >= 1, got 0"),
        ({"max_epochs": 1.5}, r"`max_epochs` must be an integer >= 1, got 1\.5"),
        ({"validation_size": 1.5}, r"`validation_size` must be in \[0, 1\) or None, got 1\.5"),
    ):
        fails(model.adata, lambda kw=kw: model.train(**{**TRAIN, **kw}), ValueError, match)


def test_model_bad_sizes(ctx):
    m = make_mdata()
    GROOVE.setup_mudata(m)
    fails(m, lambda: GROOVE(m, n_latent=0), ValueError, r"`n_latent` must be an integer >= 1")
    fails(m, lambda: GROOVE(m, dropout_rate=1.0), ValueError, r"`dropout_rate` must be in")
    fails(m, lambda: GROOVE(m, tau=0), ValueError, r"`tau` must be > 0")


def test_latent_bad_batch_size(ctx):
    model = ctx["trained"]
    fails(
        model.adata,
        lambda: model.get_latent_representation(batch_size=0),
        ValueError,
        r"`batch_size` must be an integer >= 1, got 0",
    )


def test_setup_failing_registration_leaves_mdata_unchanged(ctx):
    from unittest import mock

    from scvi.data import AnnDataManager

    m = make_mdata()
    with mock.patch.object(
        AnnDataManager, "register_fields", side_effect=RuntimeError("registration failed")
    ):
        fails(m, lambda: GROOVE.setup_mudata(m), RuntimeError, "registration failed")
    assert "_groove_labels" not in m.mod["rna"].obs


TINY_BENCHMARK = {
    "name": "tiny",
    "seeds": [0],
    "n_threads": 1,
    "protocols": {"heldout_cells": {"test_size": 0.3}},
    "datasets": {
        "sim": {
            "loader": "simulate",
            "label_key": "perturbation",
            "params": {"n_perturbations": 3, "cells_per_perturbation": 20, "n_features": [10, 8]},
        }
    },
    "learner_defaults": {"max_epochs": 2, "n_latent": 4, "n_hidden": 16, "batch_size": 32},
    "learners": ["groove", "pca"],
    "aligners": {"uniform": {"method": "uniform"}, "sinkhorn": {"method": "sinkhorn"}},
}


def test_benchmark_no_datasets(ctx):
    from groove_sc import benchmark

    with pytest.raises(KeyError, match="datasets"):
        benchmark.run({"learners": ["pca"], "aligners": ["uniform"]}, progress=False)


def test_benchmark_unknown_learner(ctx):
    from groove_sc import benchmark

    with pytest.raises(KeyError, match=r"learner kind .nope.; known"):
        benchmark.run(dict(copy.deepcopy(TINY_BENCHMARK), learners=["nope"]), progress=False)


def test_benchmark_dataset_without_label_key(ctx):
    from groove_sc import benchmark

    cfg = copy.deepcopy(TINY_BENCHMARK)
    del cfg["datasets"]["sim"]["label_key"]
    with pytest.raises(KeyError, match=r"dataset .sim. needs `label_key`"):
        benchmark.run(cfg, progress=False)


def test_benchmark_unknown_aligner_method_is_recorded(ctx):
    # documented: a failing alignment is recorded (status="failed", error), never fatal
    from groove_sc import benchmark

    cfg = dict(copy.deepcopy(TINY_BENCHMARK), learners=["pca"])
    cfg["aligners"] = {"bad": {"method": "nope"}, "uniform": {"method": "uniform"}}
    res = benchmark.run(cfg, progress=False)
    bad = res[res["aligner"] == "bad"]
    assert len(bad) and (bad["status"] == "failed").all()
    assert bad["error"].str.contains("method").all()
    assert (res[res["aligner"] == "uniform"]["status"] == "ok").all()


def test_benchmark_tiny_run(ctx):
    from groove_sc import benchmark

    res = benchmark.run(copy.deepcopy(TINY_BENCHMARK), progress=False)
    ok = res[res["status"] == "ok"]
    assert set(ok["learner"]) == {"groove", "pca"}
    assert np.isfinite(ok["value"].astype(float)).any()
    assert (
        res[(res["learner"] == "pca") & (res["aligner"] == "sinkhorn")]["status"]
        == "not_applicable"
    ).all()


def test_cli_unknown_command(ctx):
    from groove_sc.cli import main

    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code != 0


def test_cli_bad_epochs(ctx):
    from groove_sc.cli import main

    with pytest.raises(SystemExit) as info:
        main(["demo", "--epochs", "zero"])
    assert info.value.code != 0


def test_align_on_a_view_works_on_the_view(ctx):
    # writing the coupling materialises the view (anndata/mudata semantics); the parent is
    # left unchanged
    test = _latents_and_coupling(ctx["paired"][1])
    before = snapshot(test)
    view = test[test.obs_names[:10]]
    gs.tl.align(view, source="rna", target="protein")
    assert view.obsp["groove_coupling"].shape == (10, 10)
    assert np.isclose(view.obsp["groove_coupling"].sum(), 1.0, atol=1e-3)
    assert_same(before, snapshot(test))


def test_impute_after_subsetting_target(ctx):
    # the coupling is read through obsmap: dropping target cells drops their columns
    test = _latents_and_coupling(ctx["paired"][1])
    test.mod["protein"] = test.mod["protein"][:5].copy()
    test.update()
    gs.tl.impute(test, source="rna", target="protein")
    out = test.mod["rna"].obsm["protein_imputed"].to_numpy()
    assert out.shape == (test.mod["rna"].n_obs, 6)
    rows = np.isfinite(out).all(axis=1)
    assert rows.any() and (np.isnan(out[~rows]).all())


def test_matching_metrics_missing_group_key(ctx):
    test = _latents_and_coupling(ctx["paired"][1])
    fails(
        test,
        lambda: gs.tl.matching_metrics(test, source="rna", target="protein", group_key="pert"),
        KeyError,
        r"`group_key`='pert' is not a column",
    )


def test_matching_metrics_missing_rep_gives_nan(ctx):
    # documented: the latent-space scores are NaN when `use_rep` is absent, the rest is scored
    test = _latents_and_coupling(ctx["paired"][1])
    res = gs.tl.matching_metrics(test, source="rna", target="protein", use_rep="X_nope")
    ref = gs.tl.matching_metrics(test, source="rna", target="protein")
    assert np.isfinite(res["trace"]) and res["trace"] == ref["trace"]
    assert any(np.isnan(v) for v in res.values())


def test_metrics_empty_selection(ctx):
    with pytest.raises(ValueError, match="FOSCTTM needs at least two paired cells"):
        gs.tl.foscttm(np.ones((0, 2)), np.ones((0, 2)))
    with pytest.raises(ValueError, match="needs at least one source and one target cell"):
        gs.tl.label_transfer_accuracy(np.ones((0, 2)), [], np.ones((3, 2)), ["a"] * 3)
    with pytest.raises(ValueError, match="No cell has a finite prediction"):
        gs.tl.imputation_metrics(np.ones((0, 3)), np.ones((0, 3)))


def test_foscttm_nan(ctx):
    x = np.ones((4, 2))
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"`x` and `y` must not contain NaN or inf"):
        gs.tl.foscttm(x, np.ones((4, 2)))


def test_cli_demo_bad_perturbations(ctx, tmp_path_factory=None):
    import contextlib
    import io

    from groove_sc.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        main(["demo", "--perturbations", "0", "--epochs", "1", "--out", "/nonexistent/x"])
    assert info.value.code == 2
    assert "n_perturbations" in err.getvalue() and "Traceback" not in err.getvalue()


#: The cases of the matrix: every test of this module but the count below.
CASES = sorted(n for n in dict(globals()) if n.startswith("test_"))


def test_matrix_has_at_least_40_cases():
    assert len(CASES) >= 40
