"""Tests of gs.tl.perturbation_effects and gs.pl.perturbation_effects."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import anndata as ad
import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from matplotlib.figure import Figure
from scipy.stats import false_discovery_control, spearmanr

import groove_sc as gs
from groove_sc.tl._effects import (
    _bh,
    _energy_distance,
    _energy_from_assignments,
    _pairwise_distances,
)

md.set_options(pull_on_update=False)

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
PAPALEXI = "papalexi2021_thp1_rna_subset.h5ad"
COLUMNS = [
    "perturbation",
    "modality",
    "n_cells",
    "n_control",
    "mean_shift",
    "energy_distance",
    "p_value",
    "p_adjusted",
]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _relabel(adata: ad.AnnData, idx: np.ndarray, label: str) -> None:
    labels = adata.obs["perturbation"].astype(str).to_numpy().copy()
    labels[idx] = label
    adata.obs["perturbation"] = pd.Categorical(labels)


@pytest.fixture(scope="module")
def screen() -> md.MuData:
    """A simulated screen with a known strong effect (P00 shifted in rna) and a sham label.

    ``SHAM``: half of the control cells, relabelled, so it has no effect by construction.
    """
    mdata = gs.datasets.simulate(n_perturbations=8, cells_per_perturbation=[160] + [60] * 7, seed=0)
    for name in ("rna", "protein"):
        a = mdata.mod[name]
        ctrl = np.flatnonzero(a.obs["perturbation"].astype(str).to_numpy() == "control")
        _relabel(a, np.random.default_rng(1).choice(ctrl, 80, replace=False), "SHAM")
    rna = mdata.mod["rna"]
    p00 = np.flatnonzero(rna.obs["perturbation"].astype(str).to_numpy() == "P00")
    rna.X[p00] += 3.0
    return mdata


@pytest.fixture(scope="module")
def effects(screen) -> pd.DataFrame:
    return gs.tl.perturbation_effects(screen.copy(), max_cells=100, n_permutations=199)


# ------------------------------------------------------------------------------------------
# (a) known effects rank first, a sham label is not significant
# ------------------------------------------------------------------------------------------
def test_known_shift_ranks_first_and_sham_is_not_significant(effects):
    assert list(effects.columns) == COLUMNS
    rna = effects[effects["modality"] == "rna"]
    assert rna["perturbation"].iloc[0] == "P00"  # sorted by energy distance, largest first
    assert rna.set_index("perturbation")["mean_shift"].idxmax() == "P00"
    p00 = rna.set_index("perturbation").loc["P00"]
    assert p00["p_value"] == pytest.approx(1 / 200) and p00["p_adjusted"] < 0.05
    for mod in ("rna", "protein"):
        sub = effects[effects["modality"] == mod].set_index("perturbation")
        assert sub.loc["SHAM", "p_value"] > 0.05
        # every perturbation with an effect moves the cells more than the sham label
        assert sub["energy_distance"].idxmin() == "SHAM"
        assert (sub.drop(index="SHAM")["p_adjusted"] < 0.05).all()
        assert (sub["n_control"] == 80).all()
        assert sub.loc["SHAM", "n_cells"] == 80
    # sorted by modality (in mdata.mod order), then energy distance descending
    assert list(pd.unique(effects["modality"])) == ["rna", "protein"]
    for _, sub in effects.groupby("modality"):
        assert np.all(np.diff(sub["energy_distance"].to_numpy()) <= 0)


def test_uns_holds_table_wide_agreement_and_params(screen, effects, tmp_path):
    mdata = screen.copy()
    out = gs.tl.perturbation_effects(mdata, max_cells=100, n_permutations=199)
    pd.testing.assert_frame_equal(out, effects)  # same seed, same numbers
    entry = mdata.uns["perturbation_effects"]
    stored = pd.DataFrame(entry["effects"])
    pd.testing.assert_frame_equal(stored[COLUMNS], effects, check_dtype=False)
    wide = pd.DataFrame(entry["wide"]).set_index("perturbation")
    assert list(wide.columns) == ["rna", "protein"]
    ed = effects.pivot(index="perturbation", columns="modality", values="energy_distance")
    np.testing.assert_allclose(wide["rna"], ed.loc[wide.index, "rna"])
    agreement = pd.DataFrame(entry["agreement"])
    assert list(agreement["statistic"]) == ["energy_distance", "mean_shift"]
    for _, row in agreement.iterrows():
        piv = effects.pivot(index="perturbation", columns="modality", values=row["statistic"])
        rho = spearmanr(piv["rna"], piv["protein"]).statistic
        assert row["spearman"] == pytest.approx(rho)
        assert (row["modality_x"], row["modality_y"], row["n"]) == ("rna", "protein", 8)
    params = entry["params"]
    assert params["group_key"] == "perturbation" and params["control"] == "control"
    assert list(params["modalities"]) == ["rna", "protein"]
    assert params["n_permutations"] == 199 and params["max_cells"] == 100
    # h5mu-writable
    path = tmp_path / "effects.h5mu"
    mdata.write(path)
    back = md.read_h5mu(path).uns["perturbation_effects"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(back["effects"])[COLUMNS], effects, check_dtype=False
    )
    assert list(back["agreement"]["statistic"]) == ["energy_distance", "mean_shift"]


def test_copy_returns_a_modified_copy_and_seed_controls_subsampling(screen, effects):
    mdata = screen.copy()
    out = gs.tl.perturbation_effects(
        mdata, max_cells=100, n_permutations=199, copy=True, key_added="fx"
    )
    assert isinstance(out, md.MuData) and "fx" in out.uns and "fx" not in mdata.uns
    pd.testing.assert_frame_equal(
        pd.DataFrame(out.uns["fx"]["effects"])[COLUMNS], effects, check_dtype=False
    )
    # subsampled groups: the seed changes the numbers, the same seed reproduces them
    a = gs.tl.perturbation_effects(mdata, max_cells=30, n_permutations=19, seed=3)
    b = gs.tl.perturbation_effects(mdata, max_cells=30, n_permutations=19, seed=3)
    c = gs.tl.perturbation_effects(mdata, max_cells=30, n_permutations=19, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(
        a.sort_values(["modality", "perturbation"])["energy_distance"],
        c.sort_values(["modality", "perturbation"])["energy_distance"],
    )
    # mean_shift uses all cells, so it does not depend on the seed
    key = ["modality", "perturbation"]
    np.testing.assert_allclose(
        a.sort_values(key)["mean_shift"].to_numpy(), c.sort_values(key)["mean_shift"].to_numpy()
    )
    # one modality alone gives the same numbers as within the full analysis
    rna = gs.tl.perturbation_effects(
        mdata, modalities="rna", max_cells=30, n_permutations=19, seed=3
    )
    pd.testing.assert_frame_equal(rna, a[a["modality"] == "rna"].reset_index(drop=True))


# ------------------------------------------------------------------------------------------
# (b) reference checks
# ------------------------------------------------------------------------------------------
def _energy_reference(y: np.ndarray, x: np.ndarray) -> float:
    """Double loops: 2 E|Y-X| - E|Y-Y'| - E|X-X'|, within-group means over distinct pairs."""
    n, m = len(y), len(x)
    between = sum(np.linalg.norm(y[i] - x[j]) for i in range(n) for j in range(m)) / (n * m)
    within_y = sum(np.linalg.norm(y[i] - y[k]) for i in range(n) for k in range(n) if i != k) / (
        n * (n - 1)
    )
    within_x = sum(np.linalg.norm(x[j] - x[k]) for j in range(m) for k in range(m) if j != k) / (
        m * (m - 1)
    )
    return 2 * between - within_y - within_x


def test_energy_distance_matches_a_double_loop():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(6, 3)) + np.array([1.0, 0.0, -0.5])
    x = rng.normal(size=(5, 3)) * 2.0
    assert _energy_distance(y, x) == pytest.approx(_energy_reference(y, x), rel=1e-12)
    # a large offset does not break the Gram-matrix distances
    assert _energy_distance(y + 1e4, x + 1e4) == pytest.approx(_energy_reference(y, x), rel=1e-6)
    # identical samples: the unbiased statistic is negative (within means skip i = i')
    assert _energy_distance(x, x) < 0


def test_permutations_index_one_pooled_distance_matrix_correctly():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(9, 4))
    d = _pairwise_distances(z)
    ref = np.array([[np.linalg.norm(a - b) for b in z] for a in z])
    np.testing.assert_allclose(d, ref, atol=1e-12)
    n = 4
    a = np.zeros((6, 9))
    for row in a:
        row[rng.choice(9, n, replace=False)] = 1.0
    got = _energy_from_assignments(d, a, n)
    want = [_energy_reference(z[row == 1], z[row == 0]) for row in a]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_table_matches_direct_statistics_on_a_tiny_mudata():
    rng = np.random.default_rng(2)
    labels = ["control"] * 7 + ["A"] * 5 + ["B"] * 4
    x = rng.normal(size=(len(labels), 3))
    x[7:12] += 2.0
    a = ad.AnnData(x)
    a.obs_names = [f"c{i}" for i in range(len(labels))]
    a.obs["perturbation"] = pd.Categorical(labels)
    mdata = md.MuData({"m": a})
    t = gs.tl.perturbation_effects(mdata, n_permutations=99, max_cells=50).set_index("perturbation")
    lab = np.array(labels)
    ctrl = x[lab == "control"]
    scale = np.sqrt(np.mean(np.sum((ctrl - ctrl.mean(0)) ** 2, axis=1)))
    for p in ("A", "B"):
        y = x[lab == p]
        assert t.loc[p, "energy_distance"] == pytest.approx(_energy_reference(y, ctrl))
        shift = np.linalg.norm(y.mean(0) - ctrl.mean(0)) / scale
        assert t.loc[p, "mean_shift"] == pytest.approx(shift)
        assert t.loc[p, "n_cells"] == len(y) and t.loc[p, "n_control"] == 7
        assert 1 / 100 <= t.loc[p, "p_value"] <= 1
        assert t.loc[p, "p_value"] * 100 == pytest.approx(round(t.loc[p, "p_value"] * 100))
    np.testing.assert_allclose(
        t["p_adjusted"].to_numpy(), false_discovery_control(t["p_value"].to_numpy())
    )


def test_benjamini_hochberg_against_hand_values_and_scipy():
    p = np.array([0.01, 0.04, 0.03, 0.2, np.nan])
    np.testing.assert_allclose(_bh(p), [0.04, 0.16 / 3, 0.16 / 3, 0.2, np.nan])
    q = np.random.default_rng(0).uniform(size=30) ** 2
    np.testing.assert_allclose(_bh(q), false_discovery_control(q))


# ------------------------------------------------------------------------------------------
# (c) the real Papalexi screen
# ------------------------------------------------------------------------------------------
def test_papalexi_interferon_gamma_pathway_knockouts_are_the_strongest_rna_effects():
    path = DATA_DIR / PAPALEXI
    if not path.is_file():
        pytest.skip(f"real data file absent: {path} (../shared/data/{PAPALEXI}) not found")
    import scanpy as sc

    adata = gs.datasets.papalexi_thp1(path)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    assert sp.issparse(adata.X)
    mdata = md.MuData({"rna": adata})
    t = gs.tl.perturbation_effects(
        mdata,
        group_key="target_top",
        control="non-targeting",
        max_cells=150,
        n_permutations=99,
    )
    assert len(t) == 25 and (t["n_control"] == 2134).all()
    # the IFN-gamma receptor / JAK-STAT knockouts: far the strongest (about 0.8-1.5, then
    # SMAD4 about 0.5 and the rest below 0.25 on these data)
    pathway = {"IFNGR1", "IFNGR2", "JAK2", "STAT1"}
    assert set(t["perturbation"].iloc[:4]) == pathway, t.head(10)
    assert (t.set_index("perturbation").loc[sorted(pathway), "p_adjusted"] < 0.05).all()
    assert len(pd.DataFrame(mdata.uns["perturbation_effects"]["agreement"])) == 0  # one modality


# ------------------------------------------------------------------------------------------
# (d) sparse input
# ------------------------------------------------------------------------------------------
def test_sparse_features_give_the_same_numbers_as_dense(screen, effects):
    sparse = screen.copy()
    for name in sparse.mod:
        a = sparse.mod[name]
        a.X = sp.csr_matrix(np.asarray(a.X))
    t = gs.tl.perturbation_effects(sparse, max_cells=100, n_permutations=199)
    pd.testing.assert_frame_equal(t, effects, rtol=1e-10)
    # a layer instead of .X, in CSC format
    layered = screen.copy()
    for name in layered.mod:
        a = layered.mod[name]
        a.layers["feat"] = sp.csc_matrix(np.asarray(a.X))
        a.X = np.zeros(a.shape, dtype=np.float32)
    t2 = gs.tl.perturbation_effects(layered, layer="feat", max_cells=100, n_permutations=199)
    pd.testing.assert_frame_equal(t2, effects, rtol=1e-10)
    assert layered.uns["perturbation_effects"]["params"]["layer"] == "feat"


def test_obsm_representation(screen):
    mdata = screen.copy()
    for name in mdata.mod:
        a = mdata.mod[name]
        a.obsm["X_feat"] = np.asarray(a.X)[:, :5].copy()
    t = gs.tl.perturbation_effects(mdata, use_rep="X_feat", n_permutations=0)
    assert t["p_value"].isna().all() and t["p_adjusted"].isna().all()
    small = md.MuData({name: screen.mod[name][:, :5].copy() for name in screen.mod})
    ref = gs.tl.perturbation_effects(small, n_permutations=0)
    pd.testing.assert_frame_equal(t, ref, rtol=1e-10)
    assert mdata.uns["perturbation_effects"]["params"]["use_rep"] == "X_feat"


# ------------------------------------------------------------------------------------------
# (e) bad inputs
# ------------------------------------------------------------------------------------------
def _snapshot(mdata):
    return (
        set(mdata.uns.keys()),
        {m: np.asarray(mdata.mod[m].X).copy() for m in mdata.mod},
        {m: mdata.mod[m].obs.copy() for m in mdata.mod},
    )


def _assert_unchanged(mdata, snap):
    keys, xs, obs = snap
    assert set(mdata.uns.keys()) == keys
    for m in mdata.mod:
        np.testing.assert_array_equal(np.asarray(mdata.mod[m].X), xs[m])
        pd.testing.assert_frame_equal(mdata.mod[m].obs, obs[m])


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"modalities": ["rna", "atac"]}, KeyError, r"`modalities`.*'atac'"),
        ({"modalities": []}, ValueError, "`modalities`"),
        ({"group_key": "guide"}, KeyError, r"`group_key`='guide'"),
        ({"control": "NT"}, KeyError, r"`control`='NT'.*labels"),
        ({"use_rep": "X_groove"}, KeyError, r"`use_rep`='X_groove'.*tl.latent"),
        ({"layer": "counts"}, KeyError, r"`layer`='counts'"),
        ({"use_rep": "X_pca", "layer": "counts"}, ValueError, "`layer`"),
        ({"n_permutations": -1}, ValueError, r"`n_permutations`.*>= 0"),
        ({"n_permutations": 2.5}, ValueError, "`n_permutations`"),
        ({"max_cells": 1}, ValueError, r"`max_cells`.*>= 2"),
        ({"seed": -1}, ValueError, "`seed`"),
        ({"key_added": ""}, ValueError, "`key_added`"),
    ],
)
def test_bad_arguments_raise_naming_them_and_leave_mdata_unchanged(screen, kwargs, exc, match):
    mdata = screen.copy()
    snap = _snapshot(mdata)
    with pytest.raises(exc, match=match):
        gs.tl.perturbation_effects(mdata, **kwargs)
    _assert_unchanged(mdata, snap)


def test_bad_objects_and_data_raise(screen):
    with pytest.raises(TypeError, match="`mdata` must be a MuData"):
        gs.tl.perturbation_effects(screen.mod["rna"])
    view = screen[screen.obs_names[:200]]
    assert view.is_view
    with pytest.raises(ValueError, match="view"):
        gs.tl.perturbation_effects(view)

    mdata = screen.copy()
    mdata.mod["protein"].X[5, 2] = np.nan
    snap = _snapshot(mdata)
    with pytest.raises(ValueError, match=r"'protein' contains NaN or inf"):
        gs.tl.perturbation_effects(mdata)
    _assert_unchanged(mdata, snap)
    mdata.mod["protein"].X[5, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        gs.tl.perturbation_effects(mdata, modalities=["protein"])
    mdata.mod["protein"].obsm["X_bad"] = np.full((mdata.mod["protein"].n_obs, 2), np.nan)
    with pytest.raises(ValueError, match=r"`use_rep`='X_bad'.*NaN"):
        gs.tl.perturbation_effects(mdata, modalities=["protein"], use_rep="X_bad")
    assert "perturbation_effects" not in mdata.uns


def test_groups_with_fewer_than_two_cells(screen):
    mdata = screen.copy()
    rna = mdata.mod["rna"]
    _relabel(rna, np.array([0]), "LONE")
    snap = _snapshot(mdata)
    with pytest.warns(UserWarning, match=r"skipped 1 label.*'LONE'"):
        t = gs.tl.perturbation_effects(mdata, n_permutations=9, max_cells=20)
    assert "LONE" not in set(t["perturbation"])

    # the control with one cell: an error naming `control`
    labels = rna.obs["perturbation"].astype(str).to_numpy()
    one_control = mdata.copy()
    ctrl = np.flatnonzero(labels == "control")
    _relabel(one_control.mod["rna"], ctrl[1:], "SHAM")
    snap = _snapshot(one_control)
    with pytest.raises(ValueError, match=r"`control`='control' has 1 cell in modality 'rna'"):
        gs.tl.perturbation_effects(one_control)
    _assert_unchanged(one_control, snap)

    # nothing left: an error
    obs = pd.DataFrame({"p": ["control", "control", "A"]}, index=["a", "b", "c"])
    tiny = md.MuData({"m": ad.AnnData(np.zeros((3, 2)), obs=obs)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match="No perturbation"):
            gs.tl.perturbation_effects(tiny, group_key="p")
    assert "perturbation_effects" not in tiny.uns


def test_missing_labels_are_ignored_and_recorded_key_is_used(screen):
    mdata = screen.copy()
    for name in mdata.mod:
        a = mdata.mod[name]
        a.obs["guide"] = a.obs["perturbation"].astype(object)
        a.obs.loc[a.obs_names[:10], "guide"] = np.nan
    mdata.uns["groove_sc"] = {"label_key": "guide"}
    t = gs.tl.perturbation_effects(mdata, n_permutations=0, max_cells=20)
    assert mdata.uns["perturbation_effects"]["params"]["group_key"] == "guide"
    n_ctrl = 80 - int(
        (mdata.mod["rna"].obs["perturbation"].astype(str).to_numpy()[:10] == "control").sum()
    )
    assert (t.loc[t["modality"] == "rna", "n_control"] == n_ctrl).all()


# ------------------------------------------------------------------------------------------
# (f) the plot
# ------------------------------------------------------------------------------------------
def test_plot_scatter_highlights_and_titles_the_agreement(screen):
    mdata = screen.copy()
    gs.tl.perturbation_effects(mdata, max_cells=60, n_permutations=99)
    agreement = pd.DataFrame(mdata.uns["perturbation_effects"]["agreement"])
    rho = agreement.set_index("statistic").loc["energy_distance", "spearman"]
    fig = gs.pl.perturbation_effects(mdata, show=False, return_fig=True, n_labels=3)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert f"Spearman \u03c1 = {rho:.2f}" in ax.get_title()
    assert "(n = 8 perturbations)" in ax.get_title()
    assert ax.get_xlabel() == "energy distance in rna"
    assert ax.get_ylabel() == "energy distance in protein"
    assert sum(len(c.get_offsets()) for c in ax.collections) == 8
    assert len(ax.texts) == 3
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lab.startswith("significant in both") for lab in labels)
    assert "P00" in {t.get_text() for t in ax.texts}  # strongest: P00's shift in rna

    # swapped axes, mean shift, into given Axes
    _, given = plt.subplots()
    out = gs.pl.perturbation_effects(
        mdata, x="protein", y="rna", statistic="mean_shift", ax=given, show=False
    )
    assert out is given
    rho_ms = agreement.set_index("statistic").loc["mean_shift", "spearman"]
    assert f"Spearman \u03c1 = {rho_ms:.2f}" in given.get_title()
    assert given.get_xlabel() == "mean shift in protein"


def test_plot_errors_name_the_tool_and_arguments(screen):
    mdata = screen.copy()
    with pytest.raises(KeyError, match=r"tl\.perturbation_effects"):
        gs.pl.perturbation_effects(mdata, show=False)
    gs.tl.perturbation_effects(mdata, n_permutations=0, max_cells=20)
    with pytest.raises(KeyError, match="`x`='atac'"):
        gs.pl.perturbation_effects(mdata, x="atac", show=False)
    with pytest.raises(ValueError, match="`x` and `y`"):
        gs.pl.perturbation_effects(mdata, x="rna", y="rna", show=False)
    with pytest.raises(ValueError, match="`statistic`"):
        gs.pl.perturbation_effects(mdata, statistic="p_value", show=False)
    with pytest.raises(ValueError, match="`n_labels`"):
        gs.pl.perturbation_effects(mdata, n_labels=-1, show=False)
    # no p-values: nothing highlighted, the legend says so
    ax = gs.pl.perturbation_effects(mdata, show=False)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["p-values not computed (8)"]
    gs.tl.perturbation_effects(mdata, modalities="rna", n_permutations=0, key_added="one")
    with pytest.raises(ValueError, match="Two modalities"):
        gs.pl.perturbation_effects(mdata, key="one", show=False)
