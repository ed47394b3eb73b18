"""scvi-tools and scanpy conventions a new user tries on day one."""

import anndata as ad
import mudata as md
import numpy as np
import pytest
import scanpy as sc

import groove_sc as gs
from groove_sc.model import GROOVE


@pytest.fixture(scope="module")
def weak():
    mdata = gs.datasets.simulate(n_perturbations=4, cells_per_perturbation=40, seed=0)
    train, test = gs.data.split_weakly_paired(mdata, "perturbation", seed=0)
    return train, test


@pytest.fixture(scope="module")
def model(weak, quiet_trainer):
    train = weak[0].copy()
    GROOVE.setup_mudata(train, perturbation_key="perturbation")
    m = GROOVE(train, n_latent=4, n_hidden=16)
    m.train(max_epochs=3, **quiet_trainer)
    return m


def test_nb_refuses_non_integer_counts(weak):
    train = weak[0].copy()
    for m in train.mod:
        train.mod[m].X = np.abs(train.mod[m].X) * 1.37
    GROOVE.setup_mudata(train, perturbation_key="perturbation")
    with pytest.raises(ValueError, match=r"non-integer values.*layers"):
        GROOVE(train, likelihood="nb")


def test_gaussian_on_raw_counts_warns(weak):
    train = weak[0].copy()
    rng = np.random.default_rng(0)
    for m in train.mod:
        train.mod[m].X = rng.poisson(30, size=train.mod[m].shape).astype(np.float32)
    GROOVE.setup_mudata(train, perturbation_key="perturbation")
    with pytest.warns(UserWarning, match="look like raw counts"):
        GROOVE(train)


def test_a_one_modality_query_is_mapped(model, weak):
    test = weak[1]
    query = md.MuData({"rna": test.mod["rna"].copy()})
    z = model.get_latent_representation(query)
    assert list(z) == ["rna"] and z["rna"].shape == (test.mod["rna"].n_obs, 4)
    np.testing.assert_allclose(z["rna"], model.get_latent_representation(test)["rna"])
    z1 = model.get_latent_representation(test.mod["rna"], modality="rna")
    np.testing.assert_allclose(z1, z["rna"])
    gs.tl.latent(model, query)
    assert query.mod["rna"].obsm["X_groove"].shape == (test.mod["rna"].n_obs, 4)
    pred = model.translate(test.mod["rna"], source="rna", target="protein")
    assert pred.shape == (test.mod["rna"].n_obs, test.mod["protein"].n_vars)
    with pytest.raises(ValueError, match="modality="):
        model.get_latent_representation(test.mod["rna"])
    with pytest.raises(KeyError, match="none of the model's modalities"):
        model.get_latent_representation(md.MuData({"atac": test.mod["rna"].copy()}))


def test_scvi_style_calls(model, capsys):
    assert "GROOVE model on modalities" in repr(model) and "trained" in repr(model)
    model.view_anndata_setup()
    out = capsys.readouterr().out
    assert "perturbation_key='perturbation'" in out and "rna:" in out
    z = model.get_latent_representation(give_mean=True)
    assert set(z) == {"rna", "protein"}
    with pytest.raises(NotImplementedError, match="translate"):
        model.get_normalized_expression()


def test_scvi_style_train_arguments(weak, quiet_trainer):
    train = weak[0].copy()
    GROOVE.setup_mudata(train, perturbation_key="perturbation")
    m = GROOVE(train, n_latent=4, n_hidden=16)
    m.train(max_epochs=2, train_size=0.8, **quiet_trainer)
    n_val = {k: len(v) for k, v in m.validation_indices.items()}
    assert n_val == {k: int(np.floor(0.2 * train.mod[k].n_obs)) for k in train.mod}
    with pytest.raises(TypeError, match="accelerator='gpu'"):
        m.train(max_epochs=1, use_gpu=True)
    with pytest.raises(TypeError, match="validation_size"):
        m.train(max_epochs=1, datasplitter_kwargs={"shuffle": True})
    with pytest.raises(TypeError, match=r"the learning rate is `lr`"):
        m.train(max_epochs=1, plan_kwargs={"learning_rate": 1e-2})


def test_anndata_query_is_not_modified(model, weak):
    adata = weak[1].mod["protein"].copy()
    before = adata.copy()
    model.get_latent_representation(adata, modality="protein")
    assert adata.obsm.keys() == before.obsm.keys()
    assert isinstance(adata, ad.AnnData)


def test_global_mudata_works_with_scanpy_after_latent(model, weak):
    test = weak[1].copy()
    gs.tl.latent(model, test)
    assert set(test.obs["modality"].dropna()) <= {"rna", "protein"}
    assert "perturbation" in test.obs
    train = weak[0].copy()
    with pytest.warns(UserWarning):  # training cells
        gs.tl.latent(model, train)
    assert (test.obs["modality"] == "rna").all()  # paired test cells: the first modality
    assert set(train.obs["modality"]) == {"rna", "protein"}
    sc.pp.neighbors(train, use_rep="X_groove", n_neighbors=5)
    sc.tl.umap(train)
    fig = sc.pl.umap(train, color=["modality", "perturbation"], show=False, return_fig=True)
    assert fig is not None
    # clustering works too (igraph and leidenalg come with the test and jupyter extras)
    sc.tl.leiden(train, resolution=0.5, flavor="igraph", n_iterations=2, random_state=0)
    assert train.obs["leiden"].nunique() >= 2


def test_one_label_key_from_files_to_plots(weak, quiet_trainer):
    """The label column named once in from_anndatas is the default of setup, tl and pl."""
    import matplotlib.pyplot as plt

    train = weak[0]
    adatas = {}
    for m in train.mod:
        a = train.mod[m].copy()
        a.obs = a.obs.rename(columns={"perturbation": "target_gene"})
        adatas[m] = a
    mdata = gs.data.from_anndatas(adatas, label_key="target_gene")
    assert gs.data.recorded_label_key(mdata) == "target_gene"
    GROOVE.setup_mudata(mdata)  # no key: the recorded one
    model = GROOVE(mdata, n_latent=4, n_hidden=16)
    assert model.perturbation_key == "target_gene"
    model.train(max_epochs=2, **quiet_trainer)
    test = md.MuData({m: weak[1].mod[m].copy() for m in weak[1].mod})
    for m in test.mod:
        test.mod[m].obs = test.mod[m].obs.rename(columns={"perturbation": "target_gene"})
    gs.tl.latent(model, test)  # the model's key is recorded on the query
    assert gs.data.recorded_label_key(test) == "target_gene"
    gs.tl.align(test, source="rna", target="protein")
    assert test.uns["groove_coupling"]["params"]["group_key"] == "target_gene"
    scores = gs.tl.matching_metrics(test, source="rna", target="protein")
    assert np.isfinite(scores["trace_ratio"])  # the uniform reference uses target_gene
    fig = gs.pl.latent(test, show=False, return_fig=True)
    titles = [ax.get_title() for ax in fig.axes]
    assert any("target_gene" in t for t in titles), titles
    fig2 = gs.pl.coupling(test, show=False, return_fig=True)
    assert "target_gene" in fig2.axes[0].get_title()
    plt.close("all")
    # an explicit key still wins, and a missing one is named
    with pytest.raises(KeyError, match=r"group_key.*'perturbation'"):
        gs.tl.align(test, source="rna", target="protein", group_key="perturbation")
    with pytest.raises(ValueError, match="give one of them"):
        GROOVE.setup_mudata(mdata, perturbation_key="a", label_key="b")


def test_tl_computes_the_embedding_and_pl_only_draws_it(model, weak, monkeypatch):
    import matplotlib.pyplot as plt

    test = weak[1].copy()
    gs.tl.latent(model, test)
    gs.tl.embedding(test)
    first = {m: test.mod[m].obsm["X_groove_umap"].copy() for m in test.mod}
    assert all(v.shape == (test.mod[m].n_obs, 2) for m, v in first.items())
    gs.tl.embedding(test)  # same seed, same coordinates
    for m in test.mod:
        np.testing.assert_array_equal(test.mod[m].obsm["X_groove_umap"], first[m])

    def no_recompute(*args, **kwargs):
        raise AssertionError("pl.latent recomputed the embedding")

    monkeypatch.setattr("groove_sc.pl._latent.joint_embedding", no_recompute)
    fig = gs.pl.latent(test, show=False, return_fig=True)
    assert fig.axes[0].get_xlabel() == "UMAP1"
    plt.close("all")
    gs.tl.latent(model, test)  # a new latent: the stored embedding is stale and dropped
    assert all("X_groove_umap" not in test.mod[m].obsm for m in test.mod)
    with pytest.raises(KeyError, match=r"use_rep.*tl.latent"):
        gs.tl.embedding(test, use_rep="X_missing")


def test_pl_imputation_on_weakly_paired_data_compares_label_means(weak):
    import matplotlib.pyplot as plt

    train = weak[0].copy()
    for m in train.mod:
        train.mod[m].obsm["X_groove"] = train.mod[m].X[:, :3].copy()
    gs.tl.align(train, source="rna", target="protein", method="uniform")
    gs.tl.impute(train, source="rna", target="protein")
    axes = gs.pl.imputation(train, source="rna", target="protein", n_features=2, show=False)
    assert axes[0].get_xlabel() == "observed mean per perturbation (protein)"
    # under the uniform coupling each label's imputed mean is its observed mean: r = 1
    assert axes[0].get_title().endswith("r = 1.00")
    plt.close("all")
