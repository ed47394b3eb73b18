"""Tests of groove_sc.pl: what is drawn (titles, labels, points, legends, matrix values)."""

import matplotlib
import matplotlib.container

matplotlib.use("Agg")
import anndata as ad
import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from matplotlib.colors import to_hex

import groove_sc as gs


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------------------------
# small objects built directly
# --------------------------------------------------------------------------------------------
def _paired(n_labels=4, n_per=10, seed=0, names=("rna", "prot"), paired=True):
    """Two modalities of the same cells (paired=True: shared obs_names) with a fake latent."""
    rng = np.random.default_rng(seed)
    n = n_labels * n_per
    labels = pd.Categorical(np.repeat([f"L{i}" for i in range(n_labels)], n_per))
    centres = rng.normal(scale=5.0, size=(n_labels, 3))
    z = centres[labels.codes] + rng.normal(scale=0.3, size=(n, 3))
    mods = {}
    for k, (m, p) in enumerate(zip(names, (5, 4))):
        x = rng.normal(size=(n, p)).astype(np.float32)
        a = ad.AnnData(x)
        a.obs_names = [f"c{i}" if paired else f"{m}:c{i}" for i in range(n)]
        a.var_names = [f"{m}_f{j}" for j in range(p)]
        a.obs["perturbation"] = labels
        a.obs["pair_id"] = np.arange(n)
        a.obs["score"] = np.linspace(0, 1, n) + k
        a.obsm["X_groove"] = (z + rng.normal(scale=0.1, size=z.shape)).astype(np.float32)
        mods[m] = a
    return md.MuData(mods)


def _store_coupling(mdata, t, source, target, key="T", method="custom", labeled=True):
    """Place a source x target matrix into the union row space, as tl.align stores it."""
    rows = mdata.obs_names.get_indexer(mdata.mod[source].obs_names)
    cols = mdata.obs_names.get_indexer(mdata.mod[target].obs_names)
    t = sp.coo_matrix(t)
    full = sp.csr_matrix((t.data, (rows[t.row], cols[t.col])), shape=(mdata.n_obs, mdata.n_obs))
    mdata.obsp[key] = full
    mdata.uns[key] = {
        "params": {"source": source, "target": target, "method": method, "labeled": labeled}
    }


def _legend_texts(ax):
    leg = ax.get_legend()
    return [] if leg is None else [t.get_text() for t in leg.get_texts()]


def _n_points(ax):
    return sum(c.get_offsets().shape[0] for c in ax.collections)


# --------------------------------------------------------------------------------------------
# latent
# --------------------------------------------------------------------------------------------
def test_latent_umap_panels_points_and_legends_without_modifying_mdata():
    mdata = _paired(paired=False)
    before = {m: set(mdata.mod[m].obsm.keys()) for m in mdata.mod}
    axes = gs.pl.latent(mdata, show=False)
    assert [a.get_title() for a in axes] == ["modality", "perturbation"]
    assert [a.get_xlabel() for a in axes] == ["UMAP1", "UMAP1"]
    n = mdata.mod["rna"].n_obs + mdata.mod["prot"].n_obs
    assert all(_n_points(a) == n for a in axes)
    assert _legend_texts(axes[0]) == ["rna", "prot"]
    assert _legend_texts(axes[1]) == ["L0", "L1", "L2", "L3"]
    # both modalities of a paired cell are drawn; nothing is written into mdata
    assert {m: set(mdata.mod[m].obsm.keys()) for m in mdata.mod} == before


def test_latent_paired_test_data_draws_each_cell_once_per_modality_and_colours_match():
    mdata = _paired(paired=True)
    assert mdata.n_obs == 40  # shared obs_names: one union row per cell
    ax = gs.pl.latent(
        mdata, basis="pca", color="modality", palette=["#ff0000", "#0000ff"], show=False
    )
    assert _n_points(ax) == 80
    facecolors = {to_hex(c) for c in ax.collections[0].get_facecolors()}
    assert facecolors == {"#ff0000", "#0000ff"}
    assert ax.get_xlabel().startswith("PC1")


def test_latent_key_added_stores_coordinates_and_basis_reuses_them():
    mdata = _paired()
    gs.pl.latent(mdata, basis="pca", key_added="X_groove_pca2", color="modality", show=False)
    for m in mdata.mod:
        assert mdata.mod[m].obsm["X_groove_pca2"].shape == (40, 2)
    mdata.mod["rna"].obsm["X_groove_pca2"][:] = 0.0  # a stored basis is drawn as is
    mdata.mod["prot"].obsm["X_groove_pca2"][:] = 1.0
    ax = gs.pl.latent(mdata, basis="X_groove_pca2", color="modality", show=False)
    offsets = ax.collections[0].get_offsets()
    assert set(map(tuple, np.asarray(offsets))) == {(0.0, 0.0), (1.0, 1.0)}
    assert ax.get_xlabel() == "groove_pca21"


def test_latent_groups_grey_out_other_labels_and_limit_the_legend():
    mdata = _paired()
    ax = gs.pl.latent(mdata, basis="pca", color="perturbation", groups=["L1", "L3"], show=False)
    assert _legend_texts(ax) == ["L1", "L3"]
    colours = [to_hex(c) for c in ax.collections[0].get_facecolors()]
    assert sum(c == "#d3d3d3" for c in colours) == 40  # L0 and L2 in both modalities
    with pytest.raises(KeyError, match="groups"):
        gs.pl.latent(mdata, basis="pca", groups=["nope"], show=False)


def test_latent_many_categories_drop_the_legend_with_a_note():
    mdata = _paired(n_labels=45, n_per=2)
    ax = gs.pl.latent(mdata, basis="pca", color="perturbation", show=False)
    assert ax.get_legend() is None
    assert any("45 categories" in t.get_text() for t in ax.texts)
    ax = gs.pl.latent(mdata, basis="pca", color="perturbation", legend_loc="on data", show=False)
    assert len(ax.texts) == 45
    mdata = _paired(n_labels=25, n_per=2)
    ax = gs.pl.latent(mdata, basis="pca", color="perturbation", show=False)
    assert len(_legend_texts(ax)) == 25 and ax.get_legend()._ncols == 2


def test_latent_continuous_obs_and_feature_colours():
    mdata = _paired()
    axes = gs.pl.latent(mdata, basis="pca", color=["score", "prot_f1"], show=False)
    assert axes[0].get_title() == "score"
    assert axes[1].get_title() == "prot_f1 (prot)"
    # feature of one modality: the other modality's 40 cells are grey, the 40 others coloured
    grey, coloured = axes[1].collections
    assert grey.get_offsets().shape[0] == 40 and coloured.get_offsets().shape[0] == 40
    np.testing.assert_allclose(
        np.sort(coloured.get_array()), np.sort(mdata.mod["prot"][:, "prot_f1"].X.ravel())
    )
    assert len(axes[0].figure.axes) == 4  # two panels and two colorbars


def test_latent_errors_name_the_argument():
    mdata = _paired()
    with pytest.raises(KeyError, match="use_rep"):
        gs.pl.latent(mdata, use_rep="X_missing", show=False)
    with pytest.raises(KeyError, match="color"):
        gs.pl.latent(mdata, modalities=["rna"], basis="pca", color="nonexistent", show=False)
    del mdata.mod["prot"].obsm["X_groove"]
    with pytest.raises(KeyError, match="use_rep"):
        gs.pl.latent(mdata, modalities=["rna", "prot"], show=False)
    with pytest.raises(KeyError, match="modalities"):
        gs.pl.latent(mdata, modalities=["atac"], show=False)
    with pytest.raises(KeyError, match="basis"):
        gs.pl.latent(mdata, basis="X_nope", show=False)


def test_latent_into_given_axes_and_save(tmp_path):
    mdata = _paired()
    fig, axes = plt.subplots(1, 2)
    out = gs.pl.latent(mdata, basis="pca", ax=axes, return_fig=True, save=tmp_path / "l.png")
    assert out is fig
    assert (tmp_path / "l.png").stat().st_size > 0
    with pytest.raises(ValueError, match="ax"):
        gs.pl.latent(mdata, basis="pca", ax=axes[0])  # two colour keys, one Axes


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


# --------------------------------------------------------------------------------------------
# benchmark
# --------------------------------------------------------------------------------------------
def _results(seed=0, datasets=("sim",)):
    rng = np.random.default_rng(seed)
    rows = []
    for ds in datasets:
        for li, learner in enumerate(["groove", "autoencoder", "pca"]):
            for ai, aligner in enumerate(["sinkhorn", "emd", "uniform"]):
                for s in range(5):
                    for metric, base in (("trace_ratio", 1.0), ("foscttm_barycentric", 0.2)):
                        rows.append(
                            {
                                "dataset": ds,
                                "setting": "rho=0.8",
                                "protocol": "cells",
                                "learner": learner,
                                "aligner": aligner,
                                "seed": s,
                                "metric": metric,
                                "value": base + 0.3 * li + 0.1 * ai + rng.normal(0, 0.05),
                                "seconds": 1.0 + li + rng.random(),
                            }
                        )
    return pd.DataFrame(rows)


def test_benchmark_heatmap_values_are_means_with_se_annotations():
    res = _results()
    ax = gs.pl.benchmark(res, metric="trace_ratio", show=False)
    sub = res[res.metric == "trace_ratio"]
    mean = sub.pivot_table(index="learner", columns="aligner", values="value", aggfunc="mean")
    se = sub.groupby(["learner", "aligner"])["value"].agg(lambda v: v.std(ddof=1) / np.sqrt(5))
    mean = mean.loc[["groove", "autoencoder", "pca"], ["sinkhorn", "emd", "uniform"]]
    np.testing.assert_allclose(ax.images[0].get_array(), mean.to_numpy(), rtol=1e-10)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["groove", "autoencoder", "pca"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sinkhorn", "emd", "uniform"]
    assert ax.get_xlabel() == "aligner" and ax.get_ylabel() == "learner"
    texts = [t.get_text() for t in ax.texts]
    assert f"{mean.loc['groove', 'emd']:.2f}\n\u00b1{se.loc[('groove', 'emd')]:.2f}" in texts
    # higher is better: the best learner of each aligner (pca) is bold
    bold = [t.get_text().split("\n")[0] for t in ax.texts if t.get_fontweight() == "bold"]
    assert bold == [f"{v:.2f}" for v in mean.loc["pca"]]


def test_benchmark_bar_heights_and_error_bars():
    res = _results()
    ax = gs.pl.benchmark(res, metric="foscttm_barycentric", kind="bar", show=False)
    sub = res[res.metric == "foscttm_barycentric"]
    heights = [p.get_height() for p in ax.patches]
    expected = [
        sub[(sub.learner == lrn) & (sub.aligner == aln)].value.mean()
        for aln in ["sinkhorn", "emd", "uniform"]
        for lrn in ["groove", "autoencoder", "pca"]
    ]
    np.testing.assert_allclose(heights, expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["groove", "autoencoder", "pca"]
    assert _legend_texts(ax) == ["sinkhorn", "emd", "uniform"]
    assert "lower is better" in ax.get_ylabel()
    bars = [c for c in ax.containers if isinstance(c, matplotlib.container.BarContainer)]
    assert len(bars) == 3
    se = [
        sub[(sub.learner == lrn) & (sub.aligner == aln)].value.std(ddof=1) / np.sqrt(5)
        for aln in ["sinkhorn", "emd", "uniform"]
        for lrn in ["groove", "autoencoder", "pca"]
    ]
    half = [
        (seg[1, 1] - seg[0, 1]) / 2 for c in bars for seg in c.errorbar.lines[2][0].get_segments()
    ]
    np.testing.assert_allclose(half, se, rtol=1e-6)


def test_benchmark_facets_filters_seconds_and_missing_cells():
    res = _results(datasets=("sim", "citeseq"))
    axes = gs.pl.benchmark(res, metric="trace_ratio", show=False)
    assert [a.get_title() for a in axes] == [
        "sim \u00b7 rho=0.8 \u00b7 cells",
        "citeseq \u00b7 rho=0.8 \u00b7 cells",
    ]
    ax = gs.pl.benchmark(
        res, metric="trace_ratio", dataset="citeseq", aligners=["uniform"], show=False
    )
    assert ax.images[0].get_array().shape == (3, 1)
    ax = gs.pl.benchmark(res, metric="seconds", dataset="sim", kind="bar", show=False)
    assert len(ax.patches) == 9
    # failed runs (status) and a not applicable cell, as groove_sc.benchmark records them
    from groove_sc.pl._benchmark import _summarize

    res = _results()
    res["status"] = "ok"
    res["fold"] = 0
    failed = (res.learner == "pca") & (res.aligner == "emd")
    res.loc[failed, "status"] = "failed"
    res.loc[failed & (res.seed == 0), "status"] = "ok"  # one seed succeeded
    na = (res.learner == "autoencoder") & (res.aligner == "uniform")
    res.loc[na, "status"] = "not_applicable"
    res.loc[na, "value"] = np.nan
    summary = _summarize(res, metric="trace_ratio").set_index(["learner", "aligner"])
    assert summary.loc[("pca", "emd"), "n_failed"] == 4
    assert summary.loc[("pca", "emd"), "n_seeds"] == 1
    sub = res[(res.metric == "trace_ratio") & failed & (res.seed == 0)]
    assert summary.loc[("pca", "emd"), "mean"] == pytest.approx(sub.value.iloc[0])
    assert np.isnan(summary.loc[("pca", "emd"), "se"])  # one seed: no SE
    assert summary.loc[("autoencoder", "uniform"), "n_failed"] == 0
    assert np.isnan(summary.loc[("autoencoder", "uniform"), "mean"])
    ax = gs.pl.benchmark(res, metric="trace_ratio", show=False)
    assert "n/a" in [t.get_text() for t in ax.texts]
    # folds of one seed are averaged before the mean over seeds
    folds = pd.concat([_results().assign(fold=0), _results(seed=1).assign(fold=1)])
    summary = _summarize(folds, metric="trace_ratio").set_index(["learner", "aligner"])
    both = folds[(folds.metric == "trace_ratio") & (folds.learner == "pca")]
    both = both[both.aligner == "emd"].groupby("seed").value.mean()
    assert summary.loc[("pca", "emd"), "mean"] == pytest.approx(both.mean())
    assert summary.loc[("pca", "emd"), "se"] == pytest.approx(both.std(ddof=1) / np.sqrt(5))


def test_benchmark_latent_metric_without_aligner():
    res = _results()
    latent = res[res.aligner == "sinkhorn"].assign(aligner=np.nan, metric="foscttm")
    res = pd.concat([res, latent])
    ax = gs.pl.benchmark(res, metric="foscttm", aligners=[], show=False)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["none"]
    assert ax.images[0].get_array().shape == (3, 1)


def test_benchmark_errors_name_the_argument():
    res = _results()
    with pytest.raises(KeyError, match="metric"):
        gs.pl.benchmark(res, metric="accuracy", show=False)
    with pytest.raises(KeyError, match="dataset"):
        gs.pl.benchmark(res, metric="trace_ratio", dataset="nope", show=False)
    with pytest.raises(KeyError, match="columns"):
        gs.pl.benchmark(res.drop(columns="aligner"), metric="trace_ratio", show=False)
    with pytest.raises(ValueError, match="kind"):
        gs.pl.benchmark(res, metric="trace_ratio", kind="pie", show=False)
