from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest

import groove_sc as gs
from groove_sc.data import from_anndatas, split_weakly_paired
from groove_sc.datasets import simulate
from tests._shared import bad_input, fails, fit_toy, make_toy_mdata

md.set_options(pull_on_update=False)


@pytest.fixture
def joint() -> md.MuData:
    return simulate(n_perturbations=8, cells_per_perturbation=[20, 25, 30, 35, 40, 45, 50, 7])


def _pids(adata: ad.AnnData) -> set:
    return set(adata.obs["pair_id"].tolist())


def test_train_disjoint_test_paired(joint):
    train, test = split_weakly_paired(joint, test_size=0.2, seed=0)
    a_tr, b_tr = train.mod["rna"], train.mod["protein"]
    a_te, b_te = test.mod["rna"], test.mod["protein"]
    n = joint.mod["rna"].n_obs
    # training cells are disjoint between modalities and from the test cells
    assert _pids(a_tr).isdisjoint(_pids(b_tr))
    assert _pids(a_te).isdisjoint(_pids(a_tr) | _pids(b_tr))
    assert _pids(a_tr) | _pids(b_tr) | _pids(a_te) == set(range(n))
    assert a_tr.n_obs + b_tr.n_obs + a_te.n_obs == n
    assert abs(a_te.n_obs - 0.2 * n) <= 8  # rounding per label
    assert abs(a_tr.n_obs - b_tr.n_obs) <= 8
    # test: row i of both modalities is the same cell
    assert list(a_te.obs_names) == list(b_te.obs_names)
    np.testing.assert_array_equal(a_te.obs["pair_id"], b_te.obs["pair_id"])
    np.testing.assert_array_equal(a_te.obsm["z_shared"], b_te.obsm["z_shared"])
    assert test.n_obs == a_te.n_obs
    # data copied from the right rows
    src = joint.mod["protein"]
    rows = src.obs["pair_id"].to_numpy()
    lookup = pd.Series(np.arange(src.n_obs), index=rows)
    np.testing.assert_array_equal(b_te.X, src.X[lookup[b_te.obs["pair_id"]].to_numpy()])
    np.testing.assert_array_equal(b_tr.X, src.X[lookup[b_tr.obs["pair_id"]].to_numpy()])
    # train obs_names are prefixed and MuData sees disjoint cells
    assert all(name.startswith("rna:") for name in a_tr.obs_names)
    assert all(name.startswith("protein:") for name in b_tr.obs_names)
    assert train.n_obs == a_tr.n_obs + b_tr.n_obs
    for adata in (a_tr, b_tr, a_te, b_te):
        assert not adata.is_view
        assert adata.X.dtype == np.float32
        assert {"perturbation", "perturbation_true"} <= set(adata.obs.columns)
        assert "z_shared" in adata.obsm


def test_stratified(joint):
    train, test = split_weakly_paired(joint, test_size=0.2, seed=3)
    labels = joint.mod["rna"].obs["perturbation"]
    sizes = labels.value_counts()
    test_counts = test.mod["rna"].obs["perturbation"].value_counts()
    assert set(test_counts[test_counts > 0].index) == set(sizes.index)  # every label in test
    for label, n_l in sizes.items():
        assert test_counts[label] == max(1, round(0.2 * n_l))
    a_counts = train.mod["rna"].obs["perturbation"].value_counts()
    b_counts = train.mod["protein"].obs["perturbation"].value_counts()
    assert (a_counts - b_counts).abs().max() <= 1
    assert (a_counts > 0).all()
    assert (b_counts > 0).all()
    # the full category set is kept in every output modality
    for mdata in (train, test):
        for adata in mdata.mod.values():
            assert list(adata.obs["perturbation"].cat.categories) == list(labels.cat.categories)


def test_unstratified(joint):
    train, test = split_weakly_paired(joint, test_size=0.3, stratify=False, seed=1)
    n = joint.mod["rna"].n_obs
    assert test.mod["rna"].n_obs == round(0.3 * n)
    assert abs(train.mod["rna"].n_obs - train.mod["protein"].n_obs) <= 1
    assert _pids(train.mod["rna"]).isdisjoint(_pids(train.mod["protein"]))


def test_input_unchanged(joint):
    before = {k: (a.obs.copy(), a.X.copy(), a.obs_names.copy()) for k, a in joint.mod.items()}
    uns_before = dict(joint.uns["simulation"])
    train, test = split_weakly_paired(joint, seed=0)
    train.mod["rna"].X[:] = -99.0
    train.mod["rna"].obs["perturbation_true"] = "x"
    test.uns["simulation"]["seed"] = 1234
    for k, (obs, x, names) in before.items():
        pd.testing.assert_frame_equal(joint.mod[k].obs, obs)
        np.testing.assert_array_equal(joint.mod[k].X, x)
        assert joint.mod[k].obs_names.equals(names)
    assert dict(joint.uns["simulation"]) == uns_before
    assert "split" not in joint.uns


def test_deterministic(joint):
    t1, s1 = split_weakly_paired(joint, seed=5)
    t2, s2 = split_weakly_paired(joint, seed=5)
    t3, _ = split_weakly_paired(joint, seed=6)
    assert list(t1.mod["rna"].obs_names) == list(t2.mod["rna"].obs_names)
    assert list(s1.mod["protein"].obs_names) == list(s2.mod["protein"].obs_names)
    assert list(t1.mod["rna"].obs_names) != list(t3.mod["rna"].obs_names)


def test_split_record(joint):
    train, test = split_weakly_paired(joint, test_size=0.25, seed=9)
    rec = train.uns["split"]
    assert rec["seed"] == 9
    assert rec["test_size"] == 0.25
    assert rec["label_key"] == "perturbation"
    assert rec["modalities"] == ["rna", "protein"]
    assert rec["n_test"] == test.mod["rna"].n_obs
    assert rec["n_train_rna"] == train.mod["rna"].n_obs
    assert test.uns["split"]["role"] == "test"
    assert "simulation" in train.uns  # the input's uns is carried over


def test_missing_labels_go_to_training():
    joint = simulate(n_perturbations=6, cells_per_perturbation=20, missing_labels=2, seed=2)
    missing = set(joint.uns["simulation"]["missing_in_protein"])
    only_rna = _pids(joint.mod["rna"]) - _pids(joint.mod["protein"])
    assert len(only_rna) == 40
    train, test = split_weakly_paired(joint, seed=0)
    assert only_rna <= _pids(train.mod["rna"])
    assert only_rna.isdisjoint(_pids(test.mod["rna"]) | _pids(train.mod["protein"]))
    assert set(test.mod["rna"].obs["perturbation"]).isdisjoint(missing)
    assert _pids(train.mod["rna"]).isdisjoint(_pids(train.mod["protein"]))
    np.testing.assert_array_equal(
        test.mod["rna"].obsm["z_shared"], test.mod["protein"].obsm["z_shared"]
    )
    assert train.uns["split"]["n_only_rna"] == 40


def test_pair_id_matching_survives_row_order():
    joint = simulate(n_perturbations=4, cells_per_perturbation=25, seed=1)
    prot = joint.mod["protein"]
    shuffled = prot[np.random.default_rng(0).permutation(prot.n_obs)].copy()
    mixed = md.MuData({"rna": joint.mod["rna"].copy(), "protein": shuffled})
    _, test = split_weakly_paired(mixed, seed=0)
    np.testing.assert_array_equal(
        test.mod["rna"].obsm["z_shared"], test.mod["protein"].obsm["z_shared"]
    )


def test_without_pair_id_uses_obs_names():
    joint = simulate(n_perturbations=4, cells_per_perturbation=25, seed=1)
    mods = {}
    for name, adata in joint.mod.items():
        adata = adata.copy()
        del adata.obs["pair_id"]
        mods[name] = adata
    train, test = split_weakly_paired(md.MuData(mods), seed=0)
    a_te, b_te = test.mod["rna"], test.mod["protein"]
    np.testing.assert_array_equal(a_te.obs["pair_id"], b_te.obs["pair_id"])
    np.testing.assert_array_equal(a_te.obsm["z_shared"], b_te.obsm["z_shared"])
    # created pair_id is the row position in the input
    positions = joint.mod["rna"].obs_names.get_indexer(a_te.obs_names)
    np.testing.assert_array_equal(a_te.obs["pair_id"], positions)
    assert _pids(train.mod["rna"]).isdisjoint(_pids(train.mod["protein"]))


def test_modalities_argument_selects_two(joint):
    atac = joint["rna"].copy()
    atac.var_names = [f"atac_{i}" for i in range(atac.n_vars)]
    three = md.MuData({**{k: v.copy() for k, v in joint.mod.items()}, "atac": atac})
    with pytest.raises(ValueError, match="modalities"):
        split_weakly_paired(three)
    train, test = split_weakly_paired(three, modalities=["protein", "atac"])
    assert list(train.mod) == ["protein", "atac"]
    assert list(test.mod) == ["protein", "atac"]
    with pytest.raises(ValueError, match="unknown modality"):
        split_weakly_paired(three, modalities=["rna", "adt"])
    with pytest.raises(ValueError, match="modalities"):
        split_weakly_paired(three, modalities=["rna", "rna"])


def test_errors(joint):
    with pytest.raises(KeyError, match=r"label_key='cell_type'.*'rna'.*perturbation"):
        split_weakly_paired(joint, "cell_type")
    for bad in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="test_size"):
            split_weakly_paired(joint, test_size=bad)
    with pytest.raises(ValueError, match="view"):
        split_weakly_paired(joint[:50])
    with pytest.raises(TypeError, match="mdata"):
        split_weakly_paired(joint.mod["rna"])
    # pair_id only in one modality
    one = joint.copy()
    del one.mod["protein"].obs["pair_id"]
    with pytest.raises(ValueError, match="pair_id"):
        split_weakly_paired(one)
    # no common cell
    a = joint.mod["rna"][:50].copy()
    b = joint.mod["protein"][50:].copy()
    with pytest.raises(ValueError, match="share no cell"):
        split_weakly_paired(md.MuData({"rna": a, "protein": b}))


def test_real_like_sparse_counts():
    joint = simulate(n_perturbations=4, cells_per_perturbation=20, likelihood="nb")
    from scipy import sparse

    for adata in joint.mod.values():
        adata.X = sparse.csr_matrix(adata.X)
    train, test = split_weakly_paired(joint, seed=0)
    assert sparse.issparse(train.mod["rna"].X)
    assert "counts" in test.mod["protein"].layers


# ------------------------------------------------------------------------------ from_anndatas
def _adata(names, labels, n_vars=3, key="perturbation"):
    x = np.arange(len(names) * n_vars, dtype=np.float32).reshape(len(names), n_vars)
    return ad.AnnData(x, obs=pd.DataFrame({key: labels}, index=names))


def test_from_anndatas_no_collision():
    a = _adata(["a1", "a2", "a3"], ["x", "y", "x"])
    b = _adata(["b1", "b2"], ["x", "y"], n_vars=2)
    b.var_names = ["p0", "p1"]
    mdata = from_anndatas({"rna": a, "protein": b})
    assert list(mdata.mod) == ["rna", "protein"]
    assert list(mdata.mod["rna"].obs_names) == ["a1", "a2", "a3"]
    assert mdata.n_obs == 5
    mdata.mod["rna"].X[:] = 0
    assert a.X.sum() > 0  # copied


def test_from_anndatas_collision_prefixes_and_warns():
    a = _adata(["c1", "c2", "c3"], ["x", "y", "x"])
    b = _adata(["c1", "c2"], ["x", "y"], n_vars=2)
    b.var_names = ["p0", "p1"]
    with pytest.warns(UserWarning, match="Prefixing obs_names"):
        mdata = from_anndatas({"rna": a, "protein": b})
    assert list(mdata.mod["rna"].obs_names) == ["rna:c1", "rna:c2", "rna:c3"]
    assert list(mdata.mod["protein"].obs_names) == ["protein:c1", "protein:c2"]
    assert mdata.n_obs == 5
    assert list(a.obs_names) == ["c1", "c2", "c3"]  # input untouched


def test_from_anndatas_errors():
    a = _adata(["a1", "a2"], ["x", "y"])
    b = _adata(["b1", "b2"], ["x", "y"], key="group")
    b.var_names = ["p0", "p1", "p2"]
    with pytest.raises(KeyError, match=r"label_key='perturbation'.*'protein'.*group"):
        from_anndatas({"rna": a, "protein": b})
    assert from_anndatas({"rna": a, "protein": b}, label_key=None).n_obs == 4
    with pytest.raises(ValueError, match="exactly two"):
        from_anndatas({"rna": a})
    with pytest.raises(TypeError, match="AnnData"):
        from_anndatas({"rna": a, "protein": np.zeros((2, 2))})
    with pytest.raises(TypeError, match="mapping"):
        from_anndatas([a, b])


# ------------------------------------------------------------------ split_disjoint
def _weak(seed=0):
    mdata = gs.datasets.simulate(n_perturbations=5, cells_per_perturbation=31, seed=seed)
    train, _ = gs.data.split_weakly_paired(mdata, "perturbation", seed=seed)
    return train


def test_split_disjoint_parts_are_disjoint_stratified_and_cover_the_cells():
    train = _weak()
    parts = gs.data.split_disjoint(train, "perturbation", n_parts=2, seed=3)
    assert len(parts) == 2
    for m in train.mod:
        names = [set(p.mod[m].obs_names) for p in parts]
        assert not names[0] & names[1]
        assert names[0] | names[1] == set(train.mod[m].obs_names)
        counts = [p.mod[m].obs["perturbation"].value_counts().sort_index() for p in parts]
        assert (abs(counts[0] - counts[1]) <= 1).all()  # each label dealt out evenly
    assert parts[1].uns["split"] == {
        "protocol": "disjoint",
        "part": 1,
        "n_parts": 2,
        "label_key": "perturbation",
        "seed": 3,
    }


def test_split_disjoint_is_seeded_and_leaves_the_input_alone():
    train = _weak()
    before = {m: train.mod[m].obs_names.copy() for m in train.mod}
    a = gs.data.split_disjoint(train, "perturbation", seed=1)
    b = gs.data.split_disjoint(train, "perturbation", seed=1)
    c = gs.data.split_disjoint(train, "perturbation", seed=2)
    for m in train.mod:
        assert list(a[0].mod[m].obs_names) == list(b[0].mod[m].obs_names)
        assert train.mod[m].obs_names.equals(before[m])
    assert any(list(a[0].mod[m].obs_names) != list(c[0].mod[m].obs_names) for m in train.mod)


def test_split_disjoint_errors_name_the_argument():
    train = _weak()
    with pytest.raises(ValueError, match="n_parts"):
        gs.data.split_disjoint(train, "perturbation", n_parts=1)
    with pytest.raises(KeyError, match="label_key='nope'"):
        gs.data.split_disjoint(train, "nope")
    with pytest.raises(ValueError, match="unknown modality"):
        gs.data.split_disjoint(train, "perturbation", modalities=["rna", "atac"])
    with pytest.raises(ValueError, match="view"):
        gs.data.split_disjoint(train[:10], "perturbation")


# ------------------------------------------------------------------- bad input (issue 6)
@bad_input
def test_split_missing_label_key():
    sim = gs.datasets.simulate(n_perturbations=2, cells_per_perturbation=10, seed=0)
    fails(sim, lambda: gs.data.split_weakly_paired(sim, "pert"), KeyError, "pert")


@bad_input
def test_split_unknown_modality():
    sim = gs.datasets.simulate(n_perturbations=2, cells_per_perturbation=10, seed=0)
    fails(
        sim,
        lambda: gs.data.split_weakly_paired(sim, modalities=["rna", "atac"]),
        ValueError,
        r"`modalities` contains unknown modality names \['atac'\]",
    )


@bad_input
def test_split_bad_test_size():
    sim = gs.datasets.simulate(n_perturbations=2, cells_per_perturbation=10, seed=0)
    fails(sim, lambda: gs.data.split_weakly_paired(sim, test_size=1.5), ValueError, "test_size")


@bad_input
def test_split_label_with_one_cell():
    sim = gs.datasets.simulate(n_perturbations=2, cells_per_perturbation=[10, 1], seed=0)
    train, test = gs.data.split_weakly_paired(sim, test_size=0.3, seed=0)
    n = sum(x.n_obs for x in (train.mod["rna"], test.mod["rna"]))
    assert n <= sim.mod["rna"].n_obs


@bad_input
def test_from_anndatas_prefixes_colliding_names():
    m = make_toy_mdata(same_names=True)
    with pytest.warns(UserWarning):
        fixed = gs.data.from_anndatas(dict(m.mod))
    assert fixed.n_obs == m.mod["rna"].n_obs + m.mod["protein"].n_obs
    model = fit_toy(fixed)
    assert model.get_latent_representation(modality="rna").shape == (60, 4)
