import warnings
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from mudata import MuData
from scvi.data import AnnDataManager

import groove_sc as gs
from groove_sc.model import GROOVE
from groove_sc.tl import foscttm, label_transfer_accuracy
from tests._shared import MODEL, QUIET, TRAIN_ONE_EPOCH, bad_input, fails, fit_toy, make_toy_mdata

EPOCHS = 60  # label transfer 0.904 at 40 epochs, 0.918 at 60 (defaults beta 0.3, tau 0.5)


def _transfer(model, test):
    z = model.get_latent_representation(test)
    a, b = model.modalities
    la = test.mod[a].obs["perturbation"].to_numpy()
    lb = test.mod[b].obs["perturbation"].to_numpy()
    return (
        label_transfer_accuracy(z[a], la, z[b], lb) + label_transfer_accuracy(z[b], lb, z[a], la)
    ) / 2, foscttm(z[a], z[b])


@pytest.fixture(scope="module")
def data():
    mdata = gs.datasets.simulate(
        n_perturbations=20, cells_per_perturbation=100, shared_fraction=1.0, seed=0
    )
    return gs.data.split_weakly_paired(mdata, "perturbation", test_size=0.2, seed=0)


def _fit(train, quiet, epochs=EPOCHS, **kwargs):
    train = train.copy()
    GROOVE.setup_mudata(train, perturbation_key="perturbation")
    model = GROOVE(train, **kwargs)
    model.train(max_epochs=epochs, **quiet)
    return model


@pytest.fixture(scope="module")
def trained(data, quiet_trainer):
    return _fit(data[0], quiet_trainer)  # the package defaults (beta 0.3, tau 0.5)


def test_groupclip_learns_cross_modal_labels_and_beats_no_groupclip(data, trained, quiet_trainer):
    test = data[1]
    acc, fos = _transfer(trained, test)
    baseline = _fit(data[0], quiet_trainer, beta=0.0)
    acc0, fos0 = _transfer(baseline, test)
    assert acc >= 0.9
    assert acc - acc0 >= 0.3, (acc, acc0)
    assert fos < 0.1 < fos0


def test_history_records_every_loss_term_per_epoch(trained):
    hist = trained.history
    a, b = trained.modalities
    for term in (
        "loss",
        f"reconstruction_{a}",
        f"reconstruction_{b}",
        "groupclip",
        "backtranslation",
    ):
        for split in ("train", "validation"):
            key = f"{term}_{split}"
            assert key in hist, key
            assert len(hist[key]) == EPOCHS
            assert np.isfinite(hist[key].to_numpy(dtype=float)).all()
    groupclip = hist["groupclip_train"].to_numpy(dtype=float).ravel()
    assert groupclip[-5:].mean() < groupclip[:5].mean()


class _ModeRecorder(Callback):
    def __init__(self):
        self.modes = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.modes.append(pl_module.module.training)


def test_second_train_call_runs_in_train_mode(data, quiet_trainer):
    model = _fit(data[0], quiet_trainer, epochs=1)
    assert not model.module.training  # scvi leaves the module in eval mode after training
    recorder = _ModeRecorder()
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.train(max_epochs=2, callbacks=[recorder], **quiet_trainer)
    assert recorder.modes and all(recorder.modes)
    after = model.module.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_same_seed_same_latents(data, quiet_trainer):
    z1 = _fit(data[0], quiet_trainer, epochs=2).get_latent_representation(data[1])
    z2 = _fit(data[0], quiet_trainer, epochs=2).get_latent_representation(data[1])
    z3 = _fit(data[0], quiet_trainer, epochs=2, seed=1).get_latent_representation(data[1])
    for m in z1:
        np.testing.assert_array_equal(z1[m], z2[m])
        assert not np.allclose(z1[m], z3[m])


def test_save_load_round_trip(trained, data, tmp_path):
    test = data[1]
    z = trained.get_latent_representation(test)
    trained.save(tmp_path / "model", save_anndata=True)
    loaded = GROOVE.load(tmp_path / "model")
    z_loaded = loaded.get_latent_representation(test)
    for m in z:
        np.testing.assert_array_equal(z[m], z_loaded[m])
    assert loaded.modalities == trained.modalities
    assert loaded.module.beta == trained.module.beta


def test_load_onto_new_data_with_unseen_labels(trained, data, tmp_path):
    trained.save(tmp_path / "model")
    new = data[1].copy()
    for m in new.mod:
        obs = new.mod[m].obs
        obs["perturbation"] = obs["perturbation"].astype(str)
        obs.loc[obs.index[:10], "perturbation"] = "UNSEEN_KO"
    loaded = GROOVE.load(tmp_path / "model", mdata=new)
    z = loaded.get_latent_representation()
    np.testing.assert_allclose(
        z[trained.modalities[0]],
        trained.get_latent_representation(data[1], modality=trained.modalities[0]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_latent_rows_follow_obsmap_not_modality_order(trained, data):
    test = data[1]
    a, b = trained.modalities
    # a MuData whose union rows list modality b's cells first, with distinct names
    mods = {}
    for m in (b, a):
        ad = test.mod[m].copy()
        ad.obs_names = [f"{m}:{n}" for n in ad.obs_names]
        mods[m] = ad
    reordered = MuData(mods)
    gs.tl.latent(trained, reordered, key_added="X_test")
    z = trained.get_latent_representation(test)
    for m in (a, b):
        np.testing.assert_allclose(reordered.mod[m].obsm["X_test"], z[m])
        rows = reordered.obsmap[m].ravel()
        np.testing.assert_allclose(
            reordered.obsm["X_test"][rows > 0][np.argsort(rows[rows > 0])], z[m]
        )
    assert reordered.obs_names[0].startswith(f"{b}:")


def test_latent_copy_leaves_input_untouched(trained, data):
    test = data[1]
    out = gs.tl.latent(trained, test, key_added="X_copy", copy=True)
    assert "X_copy" in out.obsm and "X_copy" not in test.obsm
    for m in trained.modalities:
        assert "X_copy" not in test.mod[m].obsm


def test_translate_predicts_the_other_modality(trained, data):
    test = data[1]
    a, b = trained.modalities
    pred = trained.translate(test, source=a, target=b)
    assert list(pred.var_names) == list(test.mod[b].var_names)
    assert list(pred.obs_names) == list(test.mod[a].obs_names)
    observed = np.asarray(test.mod[b].X)
    centred_obs = observed - observed.mean(0)
    centred_pred = pred.X - pred.X.mean(0)

    # per-cell correlation after removing the mean profile, true partner vs a shuffled partner
    def corr(u, v):
        u = u - u.mean(1, keepdims=True)
        v = v - v.mean(1, keepdims=True)
        return (u * v).sum(1) / np.sqrt((u * u).sum(1) * (v * v).sum(1))

    matched = corr(centred_pred, centred_obs).mean()
    shuffled = corr(
        centred_pred, centred_obs[np.random.default_rng(0).permutation(len(observed))]
    ).mean()
    assert matched > 0.5 > shuffled + 0.3
    with pytest.raises(KeyError, match="target"):
        trained.translate(test, source=a, target="atac")


def test_feature_order_change_is_handled(trained, data):
    test = data[1]
    a = trained.modalities[0]
    shuffled = test.copy()
    order = np.random.default_rng(0).permutation(shuffled.mod[a].n_vars)
    shuffled.mod[a] = shuffled.mod[a][:, order].copy()
    np.testing.assert_allclose(
        trained.get_latent_representation(shuffled, modality=a),
        trained.get_latent_representation(test, modality=a),
        rtol=1e-5,
        atol=1e-6,
    )
    fewer = test.copy()
    fewer.mod[a] = fewer.mod[a][:, 1:].copy()
    with pytest.raises(ValueError, match="features"):
        trained.get_latent_representation(fewer)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"groupclip": "out"},
        {"variational": True, "projection_head": True},
        {"alpha": 0.0},
        {"beta": 0.0, "alpha": 0.0},
    ],
)
def test_ablations_and_variants_train(data, quiet_trainer, kwargs):
    model = _fit(data[0], quiet_trainer, epochs=2, **kwargs)
    hist = model.history
    assert np.isfinite(hist["loss_train"].to_numpy(dtype=float)).all()
    assert ("backtranslation_train" in hist) == (kwargs.get("alpha", 1.0) > 0)
    if kwargs.get("variational"):
        assert "kl_train" in hist


def test_negative_binomial_counts_and_batch_covariate(quiet_trainer):
    mdata = gs.datasets.simulate(
        n_perturbations=6, cells_per_perturbation=40, likelihood=("nb", "gaussian"), seed=1
    )
    train, test = gs.data.split_weakly_paired(mdata, "perturbation", seed=1)
    for d in (train, test):
        for m in d.mod:
            d.mod[m].obs["plate"] = np.where(np.arange(d.mod[m].n_obs) % 2, "p1", "p2")
    GROOVE.setup_mudata(train, perturbation_key="perturbation", batch_key="plate")
    model = GROOVE(train, likelihood={"rna": "nb", "protein": "gaussian"})
    model.train(max_epochs=3, **quiet_trainer)
    assert np.isfinite(model.history["reconstruction_rna_train"].to_numpy(dtype=float)).all()
    pred = model.translate(test, source="protein", target="rna", library_size=1000)
    assert (pred.X >= 0).all()
    np.testing.assert_allclose(pred.X.sum(1), 1000, rtol=1e-4)
    test.mod["rna"].obs["plate"] = "p3"
    with pytest.raises(ValueError, match="batches unseen"):
        model.get_latent_representation(test)


def test_nb_rejects_negative_values(data):
    train = data[0].copy()
    GROOVE.setup_mudata(train, perturbation_key="perturbation")
    with pytest.raises(ValueError, match="negative"):
        GROOVE(train, likelihood="nb")  # simulated protein/rna are standardised, not counts


# ---------------------------------------------------------------- setup_mudata errors
def _snapshot(mdata):
    return {m: (mdata.mod[m].obs.copy(), np.asarray(mdata.mod[m].X).copy()) for m in mdata.mod}


def _assert_unchanged(mdata, snap):
    for m, (obs, x) in snap.items():
        pd.testing.assert_frame_equal(mdata.mod[m].obs, obs)
        np.testing.assert_array_equal(np.asarray(mdata.mod[m].X), x)


def test_setup_wrong_modality_name(data):
    train = data[0].copy()
    snap = _snapshot(train)
    with pytest.raises(KeyError, match=r"modalities.*'atac'"):
        GROOVE.setup_mudata(train, modalities=["rna", "atac"])
    _assert_unchanged(train, snap)


def test_setup_missing_label_column(data):
    train = data[0].copy()
    snap = _snapshot(train)
    with pytest.raises(KeyError, match=r"perturbation_key.*'guide'"):
        GROOVE.setup_mudata(train, perturbation_key="guide")
    _assert_unchanged(train, snap)


def test_setup_view_is_rejected(data):
    train = data[0]
    view = train[train.obs_names[:50]]
    assert view.is_view
    with pytest.raises(ValueError, match=r"mdata.*view"):
        GROOVE.setup_mudata(view)


def test_setup_nan_and_no_shared_labels(data):
    train = data[0].copy()
    train.mod["rna"].X[0, 0] = np.nan
    snap = _snapshot(train)
    with pytest.raises(ValueError, match="NaN"):
        GROOVE.setup_mudata(train)
    train = data[0].copy()
    train.mod["protein"].obs["perturbation"] = "other"
    with pytest.raises(ValueError, match="both modalities"):
        GROOVE.setup_mudata(train)
    _ = snap


def test_setup_refuses_colliding_names_and_warns_on_one_modality_labels(data):
    a = data[1].mod["rna"].copy()
    b = data[1].mod["protein"].copy()
    b.obs["perturbation"] = b.obs["perturbation"].astype(str)
    b.obs.loc[b.obs_names[:5], "perturbation"] = "only_b"
    mdata = MuData({"rna": a, "protein": b})  # same obs_names: the paired test cells
    before = mdata.n_obs
    with pytest.raises(ValueError, match=r"obs_names occur in both modalities.*from_anndatas"):
        GROOVE.setup_mudata(mdata)
    assert "_groove_labels" not in mdata.mod["rna"].obs and mdata.n_obs == before
    fixed = gs.data.from_anndatas({"rna": a, "protein": b}, label_key="perturbation")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GROOVE.setup_mudata(fixed)
    messages = " ".join(str(w.message) for w in caught)
    assert "only in modality 'protein'" in messages
    assert list(fixed.mod["rna"].obs["_groove_labels"].cat.categories) == list(
        fixed.mod["protein"].obs["_groove_labels"].cat.categories
    )


def test_setup_anndata_points_to_setup_mudata():
    with pytest.raises(NotImplementedError, match="setup_mudata"):
        GROOVE.setup_anndata(None)


# ------------------------------------------------------------------- bad input (issue 6)
@bad_input
def test_label_with_one_cell():
    m = make_toy_mdata({"p0": 20, "p1": 20, "single": 1}, {"p0": 20, "p1": 20, "single": 1})
    model = fit_toy(m)
    z = model.get_latent_representation()
    assert z["rna"].shape == (41, 4) and np.isfinite(z["protein"]).all()


@bad_input
def test_extremely_imbalanced_labels():
    m = make_toy_mdata({"p0": 100, "p1": 2, "p2": 2}, {"p0": 3, "p1": 40, "p2": 2})
    model = fit_toy(m)
    z = model.get_latent_representation()
    assert z["rna"].shape == (104, 4) and np.isfinite(z["rna"]).all()


@bad_input
def test_unknown_likelihood():
    m = make_toy_mdata()
    GROOVE.setup_mudata(m)
    fails(m, lambda: GROOVE(m, likelihood="poisson"), ValueError, "likelihood")


@bad_input
def test_likelihood_dict_missing_modality():
    m = make_toy_mdata()
    GROOVE.setup_mudata(m)
    fails(m, lambda: GROOVE(m, likelihood={"rna": "nb"}), KeyError, "likelihood.*protein")


@bad_input
def test_nb_counts_train():
    m = make_toy_mdata(dtype=np.int64)
    GROOVE.setup_mudata(m)
    model = GROOVE(m, likelihood="nb", **MODEL)
    model.train(**TRAIN_ONE_EPOCH)
    out = model.translate(source="rna", target="protein")
    assert out.shape == (60, 6) and np.isfinite(out.X).all() and (out.X >= 0).all()


@bad_input
def test_all_zero_cells_and_features():
    m = make_toy_mdata()
    m.mod["rna"].X[:5] = 0
    m.mod["protein"].X[:, 0] = 0
    model = fit_toy(m)
    z = model.get_latent_representation()
    assert np.isfinite(z["rna"]).all() and np.isfinite(z["protein"]).all()
    out = model.translate(source="protein", target="rna")
    assert out.shape == (60, 8) and np.isfinite(out.X).all()


@bad_input
def test_all_zero_features_nb():
    m = make_toy_mdata()
    m.mod["rna"].X[:, :2] = 0
    m.mod["rna"].X[:3] = 0
    GROOVE.setup_mudata(m)
    model = GROOVE(m, likelihood="nb", **MODEL)
    model.train(**TRAIN_ONE_EPOCH)
    assert np.isfinite(model.get_latent_representation(modality="rna")).all()


@bad_input
def test_dtype_float64():
    _train_dtype(np.float64, sparse_x=False)


@bad_input
def test_dtype_int32():
    _train_dtype(np.int32, sparse_x=False)


@bad_input
def test_sparse_float32():
    _train_dtype(np.float32, sparse_x=True)


@bad_input
def test_sparse_float64():
    _train_dtype(np.float64, sparse_x=True)


def _train_dtype(dtype, sparse_x):
    m = make_toy_mdata(dtype=dtype, sparse_x=sparse_x)
    model = fit_toy(m)
    z = model.get_latent_representation(m)
    assert z["rna"].dtype == np.float32 and z["rna"].shape == (60, 4)
    assert np.isfinite(z["rna"]).all()


@bad_input
def test_sparse_and_dense_give_same_latent(toy_model):
    model = toy_model
    dense = make_toy_mdata()
    sp = make_toy_mdata(sparse_x=True)
    za = model.get_latent_representation(dense)
    zb = model.get_latent_representation(sp)
    np.testing.assert_allclose(za["rna"], zb["rna"], rtol=1e-5, atol=1e-6)


@bad_input
def test_feature_order_changed(toy_model):
    model = toy_model
    m = make_toy_mdata()
    ref = model.get_latent_representation(m)
    perm = m.copy()
    perm.mod["rna"] = perm.mod["rna"][:, ::-1].copy()
    perm.update()
    z = model.get_latent_representation(perm)
    np.testing.assert_allclose(z["rna"], ref["rna"], rtol=1e-5, atol=1e-6)


@bad_input
def test_feature_missing_in_new_data(toy_model):
    model = toy_model
    m = make_toy_mdata()
    m.mod["rna"] = m.mod["rna"][:, 1:].copy()
    m.update()
    fails(m, lambda: model.get_latent_representation(m), ValueError, "features.*missing")


@bad_input
def test_latent_unknown_modality(toy_model):
    model = toy_model
    fails(model.adata, lambda: model.get_latent_representation(modality="atac"), KeyError, "atac")


@bad_input
def test_latent_new_data_missing_modality(toy_model):
    model = toy_model
    m = MuData({"rna": make_toy_mdata().mod["rna"], "other": make_toy_mdata().mod["protein"]})
    # a query with one of the model's modalities is mapped; asking for the absent one fails
    assert list(model.get_latent_representation(m)) == ["rna"]
    fails(m, lambda: model.get_latent_representation(m, modality="protein"), KeyError, "protein")
    none = MuData({"atac": make_toy_mdata().mod["rna"]})
    fails(none, lambda: model.get_latent_representation(none), KeyError, "none of the model")


@bad_input
def test_latent_new_data_nan(toy_model):
    model = toy_model
    m = make_toy_mdata()
    m.mod["protein"].X[1, 1] = np.nan
    fails(m, lambda: model.get_latent_representation(m), ValueError, "NaN")


@bad_input
def test_latent_new_data_unseen_labels(toy_model):
    model = toy_model
    m = make_toy_mdata({"new": 10}, {"new2": 5})
    z = model.get_latent_representation(m)
    assert z["rna"].shape == (10, 4) and z["protein"].shape == (5, 4)


@bad_input
def test_translate_unknown_modality(toy_model):
    model = toy_model
    fails(model.adata, lambda: model.translate(source="rna", target="atac"), KeyError, "atac")


@bad_input
def test_translate_same_modality(toy_model):
    model = toy_model
    fails(model.adata, lambda: model.translate(source="rna", target="rna"), ValueError, "differ")


@bad_input
def test_train_zero_epochs(toy_model):
    model = toy_model
    fails(model.adata, lambda: model.train(max_epochs=0, **QUIET), ValueError, "max_epochs")


@bad_input
def test_latent_empty_selection(toy_model):
    model = toy_model
    m = make_toy_mdata()
    m.mod["rna"] = m.mod["rna"][:0].copy()
    m.update()
    z = model.get_latent_representation(m)
    assert z["rna"].shape == (0, 4)
    assert z["protein"].shape == (60, 4)


@bad_input
def test_batch_unseen_at_inference():
    m = make_toy_mdata()
    for mod in m.mod.values():
        mod.obs["batch"] = np.where(np.arange(mod.n_obs) % 2, "b1", "b2")
    model = fit_toy(m, batch_key="batch")
    new = make_toy_mdata()
    for mod in new.mod.values():
        mod.obs["batch"] = "b3"
    fails(new, lambda: model.get_latent_representation(new), ValueError, "unseen.*b3")


@bad_input
def test_train_bad_sizes(toy_model):
    model = toy_model
    for kw, match in (
        ({"batch_size": 0}, r"`batch_size` must be an integer >= 1, got 0"),
        ({"cells_per_label": 0}, r"`cells_per_label` must be an integer >= 1, got 0"),
        ({"max_epochs": 1.5}, r"`max_epochs` must be an integer >= 1, got 1\.5"),
        ({"validation_size": 1.5}, r"`validation_size` must be in \[0, 1\) or None, got 1\.5"),
    ):
        fails(
            model.adata, lambda kw=kw: model.train(**{**TRAIN_ONE_EPOCH, **kw}), ValueError, match
        )


@bad_input
def test_model_bad_sizes():
    m = make_toy_mdata()
    GROOVE.setup_mudata(m)
    fails(m, lambda: GROOVE(m, n_latent=0), ValueError, r"`n_latent` must be an integer >= 1")
    fails(m, lambda: GROOVE(m, dropout_rate=1.0), ValueError, r"`dropout_rate` must be in")
    fails(m, lambda: GROOVE(m, tau=0), ValueError, r"`tau` must be > 0")


@bad_input
def test_latent_bad_batch_size(toy_model):
    model = toy_model
    fails(
        model.adata,
        lambda: model.get_latent_representation(batch_size=0),
        ValueError,
        r"`batch_size` must be an integer >= 1, got 0",
    )


@bad_input
def test_setup_failing_registration_leaves_mdata_unchanged():
    m = make_toy_mdata()
    with mock.patch.object(
        AnnDataManager, "register_fields", side_effect=RuntimeError("registration failed")
    ):
        fails(m, lambda: GROOVE.setup_mudata(m), RuntimeError, "registration failed")
    assert "_groove_labels" not in m.mod["rna"].obs


# --------------------------------------------------------------------------- DDP training
DDP_SCRIPT = """
import json, sys, warnings
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(1)
from lightning.pytorch.callbacks import Callback
import mudata as md
import groove_sc as gs


class Record(Callback):
    def on_train_end(self, trainer, pl_module):
        self.out = {"rank": trainer.global_rank, "world_size": trainer.world_size,
                    "global_step": trainer.global_step, "n_batches": trainer.num_training_batches}


if __name__ == "__main__":
    mdata = gs.datasets.simulate(n_perturbations=10, cells_per_perturbation=40, seed=0)
    mods = {m: a.copy() for m, a in mdata.mod.items()}
    for m, a in mods.items():  # every simulated cell trains: keep the modalities' names apart
        a.obs_names = m + ":" + a.obs_names
    mdata = md.MuData(mods)
    gs.model.GROOVE.setup_mudata(mdata, perturbation_key="perturbation")
    model = gs.model.GROOVE(mdata, seed=0)
    initial = float(sum(p.double().sum() for p in model.module.parameters()))
    rec = Record()
    model.train(max_epochs=3, accelerator="cpu", devices=2, strategy="ddp", batch_size=64,
                enable_progress_bar=False, callbacks=[rec])
    checksum = float(sum(p.double().sum() for p in model.module.parameters()))
    with open(f"rank{rec.out['rank']}.json", "w") as fh:
        json.dump({**rec.out, "initial": initial, "checksum": checksum}, fh)
"""


def test_ddp_training_on_two_cpu_processes(tmp_path):
    """`strategy="ddp"` reaches Lightning: two processes split the steps, weights stay equal."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "train_ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank*.json"))]
    assert sorted(r["rank"] for r in rows) == [0, 1]
    # 360 training cells per modality, batch 64: 6 steps per epoch in one process, 3 per rank
    assert all(r["world_size"] == 2 and r["n_batches"] == 3 for r in rows)
    assert all(r["global_step"] == 3 * 3 * 2 for r in rows)  # 2 optimiser steps per batch
    # gradients are averaged across ranks: both replicas hold the same trained weights
    assert rows[0]["checksum"] == pytest.approx(rows[1]["checksum"], rel=1e-9)
    assert rows[0]["checksum"] != pytest.approx(rows[0]["initial"], rel=1e-6)
