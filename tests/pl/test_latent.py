"""``pl.latent``: what is drawn (titles, labels, points, legends)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex

import groove_sc as gs
from tests.pl._objects import _legend_texts, _n_points, _paired


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
